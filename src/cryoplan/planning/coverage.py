"""Lethal-isotherm coverage of tumours from a simulated (or observed) temperature field.

All functions take the minimum temperature reached per voxel and boolean masks on the same grid, plus
the grid's voxel spacing in millimetres, so distances are measured with the true (possibly anisotropic)
spacing. Nothing here knows how the temperatures were obtained.

Conventions
-----------
* A voxel is *covered* by the isotherm T when its minimum temperature is ≤ T.
* The margin of a zone (the lethal zone T ≤ −20 °C, or the ice ball T ≤ 0 °C) around a tumour is the
  signed distance from the tumour to the zone's edge: positive where the tumour surface lies inside the
  zone, negative where tumour is left outside it. The edge is taken halfway between the last voxel
  centre inside and the first outside. The minimal margin is the smallest signed distance over all
  tumour voxels; the mean margin averages it over the tumour's surface voxels. This is the minimal
  ablative margin of the ablation literature (Kaye et al., Radiology 2019;293:664; Laimer et al.,
  Eur Radiol 2020) computed in 3-D.
* The margin shell ("tumour + margin") is every voxel within `margin_mm` of the tumour, restricted to
  liver and tumour when a liver mask is given (tissue outside the liver is not part of a margin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.errors import InputError

DEFAULT_ISOTHERMS_C = (0.0, -20.0, -40.0)
#: Voxel spacing along the array axes, mm.
Spacing = Sequence[float] | np.ndarray


def signed_distance_mm(zone: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """Signed distance to the edge of `zone` in millimetres: positive inside, negative outside.

    Parameters
    ----------
    zone : numpy.ndarray of bool
        The region (lethal zone, ice ball, ...).
    spacing_mm : sequence of 3 float
        Voxel spacing along the array axes.

    Returns
    -------
    numpy.ndarray of float32
        Euclidean distance (Danielsson's exact EDT as implemented by SciPy, with the true anisotropic
        sampling) from each voxel centre to the nearest voxel centre on the other side, minus half the
        smallest voxel size so that the edge lies halfway between the two.
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    zone = np.asarray(zone, dtype=bool)
    half = 0.5 * float(spacing.min())
    if zone.all():
        return np.full(zone.shape, np.inf, dtype=np.float32)
    if not zone.any():
        return np.full(zone.shape, -np.inf, dtype=np.float32)
    inside = ndimage.distance_transform_edt(zone, sampling=spacing)
    outside = ndimage.distance_transform_edt(~zone, sampling=spacing)
    return np.asarray(np.where(zone, inside - half, -(outside - half)), dtype=np.float32)


def margin_shell(
    tumour: np.ndarray, margin_mm: float, spacing_mm: Spacing, liver: np.ndarray | None = None
) -> np.ndarray:
    """Tumour plus every voxel within `margin_mm` of it (restricted to liver ∪ tumour when given).

    Distances run from the tumour's edge, half the finest voxel size beyond its outer voxel centres (the
    convention of `signed_distance_mm`).
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    distance = ndimage.distance_transform_edt(~tumour, sampling=spacing)
    shell = distance <= margin_mm + 0.5 * spacing.min()
    if liver is not None:
        shell &= liver | tumour
    return np.asarray(shell)


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with at least one 6-neighbour outside it."""
    return np.asarray(mask & ~ndimage.binary_erosion(mask, border_value=0))


@dataclass
class ZoneMargin:
    """Margin of a zone around a tumour, in millimetres."""

    min_margin_mm: float
    mean_margin_mm: float


def zone_margin(tumour: np.ndarray, zone: np.ndarray, spacing_mm: Spacing) -> ZoneMargin:
    """Minimal and mean signed margin of `zone` around `tumour` (see the module's conventions)."""
    if not tumour.any():
        raise InputError("tumour", "a non-empty tumour mask")
    distance = signed_distance_mm(zone, spacing_mm)
    return ZoneMargin(
        min_margin_mm=float(distance[tumour].min()),
        mean_margin_mm=float(distance[surface(tumour)].mean()),
    )


def margin_tolerance_mm(spacing_mm: Spacing) -> float:
    """Grid tolerance of a measured minimal margin: half the largest voxel spacing.

    The zone's edge is placed halfway between voxel centres (`signed_distance_mm`), so a margin measured on
    a grid is known to within half a voxel step along the coarsest axis.
    """
    return 0.5 * float(np.max(np.asarray(spacing_mm, dtype=np.float64)))


def margin_met(min_margin_mm: float, margin_mm: float, spacing_mm: Spacing) -> bool:
    """The success criterion of a lesion, shared by the planner and `verify`: the lethal zone reaches the
    required margin everywhere around the tumour, i.e. the minimal margin is at least `margin_mm` less the
    grid tolerance (`margin_tolerance_mm`).

    The minimal ablative margin, not a share of the tumour + margin volume, predicts local tumour
    progression after ablation (Kaye et al., Radiology 2019;293:664–671; Laimer et al., Eur Radiol
    2020;30:2463–2472).

    Parameters
    ----------
    min_margin_mm : float
        Minimal signed margin of the lethal zone around the tumour (``inf`` when the zone fills the grid).
    margin_mm : float
        Required margin.
    spacing_mm : sequence of 3 float
        Voxel spacing of the grid the margin was measured on.

    Examples
    --------
    >>> margin_met(4.6, 5.0, (1.0, 1.0, 1.0)), margin_met(4.4, 5.0, (1.0, 1.0, 1.0))
    (True, False)
    """
    return bool(min_margin_mm >= margin_mm - margin_tolerance_mm(spacing_mm))


@dataclass
class LesionCoverage:
    """Coverage of one lesion by the isotherms of a temperature field.

    Attributes
    ----------
    lesion_id : str
    lethal_isotherm_c, margin_mm : float
        The planning isotherm and the margin asked for.
    tumour_covered_pct, margin_covered_pct : float
        Percentage of the tumour, and of tumour + margin, at or below the lethal isotherm.
    covered_pct_by_isotherm : dict
        ``{isotherm_c: (tumour_pct, tumour_plus_margin_pct)}`` for every reported isotherm.
    min_margin_mm, mean_margin_mm : float
        Signed margin of the lethal zone around the tumour.
    ice_min_margin_mm, ice_mean_margin_mm : float
        Signed margin of the ice ball (0 °C) around the tumour.
    tumour_min_temperature_c : float
        Warmest minimum temperature inside the tumour (the worst-treated voxel).
    margin_met : bool
        The success criterion (`margin_met`): the lethal zone reaches the margin everywhere, within
        `margin_tolerance_mm`.
    margin_tolerance_mm : float
        The grid tolerance of that criterion.
    """

    lesion_id: str
    lethal_isotherm_c: float
    margin_mm: float
    tumour_covered_pct: float
    margin_covered_pct: float
    covered_pct_by_isotherm: dict[float, tuple[float, float]]
    min_margin_mm: float
    mean_margin_mm: float
    ice_min_margin_mm: float
    ice_mean_margin_mm: float
    tumour_min_temperature_c: float
    margin_met: bool = False
    margin_tolerance_mm: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "lethal_isotherm_c": self.lethal_isotherm_c,
            "margin_met": self.margin_met,
            "margin_tolerance_mm": round(self.margin_tolerance_mm, 2),
            "tumour_covered_pct": round(self.tumour_covered_pct, 2),
            "margin_mm": self.margin_mm,
            "margin_covered_pct": round(self.margin_covered_pct, 2),
            "min_margin_mm": _finite_round(self.min_margin_mm),
            "mean_margin_mm": _finite_round(self.mean_margin_mm),
            "ice_min_margin_mm": _finite_round(self.ice_min_margin_mm),
            "ice_mean_margin_mm": _finite_round(self.ice_mean_margin_mm),
            "tumour_warmest_min_temperature_c": round(self.tumour_min_temperature_c, 1),
            "by_isotherm": [
                {"isotherm_c": t, "tumour_covered_pct": round(a, 2), "margin_covered_pct": round(b, 2)}
                for t, (a, b) in sorted(self.covered_pct_by_isotherm.items(), reverse=True)
            ],
        }


def _finite_round(value: float, digits: int = 2) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def lesion_coverage(
    min_temperature_c: np.ndarray,
    tumour: np.ndarray,
    spacing_mm: Spacing,
    *,
    lesion_id: str = "L1",
    liver: np.ndarray | None = None,
    lethal_isotherm_c: float = -20.0,
    margin_mm: float = 5.0,
    isotherms_c: Sequence[float] = DEFAULT_ISOTHERMS_C,
) -> LesionCoverage:
    """Coverage of one tumour by the lethal isotherm and the ice ball.

    Parameters
    ----------
    min_temperature_c : numpy.ndarray
        Minimum temperature reached per voxel (°C).
    tumour : numpy.ndarray of bool
        The lesion on the same grid.
    spacing_mm : sequence of 3 float
        Voxel spacing of the grid.
    liver : numpy.ndarray of bool, optional
        Liver mask; when given the margin shell is restricted to liver ∪ tumour.
    lethal_isotherm_c : float
        Planning isotherm (−20 °C for a double freeze, −40 °C for a single one; Gage & Baust,
        Cryobiology 1998;37:171).
    margin_mm : float
        Margin asked for around the tumour (5–10 mm; Kaye et al., Radiology 2019).
    isotherms_c : sequence of float
        Isotherms to report coverage for (the lethal one is always added).

    Returns
    -------
    LesionCoverage
    """
    tumour = np.asarray(tumour, dtype=bool)
    if tumour.shape != min_temperature_c.shape:
        raise InputError("tumour", f"a mask of shape {min_temperature_c.shape}", tumour.shape)
    if not tumour.any():
        raise InputError(f"lesions.{lesion_id}", "a tumour with at least one voxel on the simulation grid")
    if not 0.0 <= margin_mm <= 20.0:
        raise InputError("margin_mm", "a margin between 0 and 20 mm", margin_mm)
    shell = margin_shell(tumour, margin_mm, spacing_mm, liver)
    temperatures = min_temperature_c
    by_isotherm = {}
    for isotherm in sorted(set(float(t) for t in isotherms_c) | {float(lethal_isotherm_c)}, reverse=True):
        by_isotherm[isotherm] = (
            100.0 * float(np.mean(temperatures[tumour] <= isotherm)),
            100.0 * float(np.mean(temperatures[shell] <= isotherm)),
        )
    lethal = zone_margin(tumour, temperatures <= lethal_isotherm_c, spacing_mm)
    ice = zone_margin(tumour, temperatures <= 0.0, spacing_mm)
    tumour_pct, margin_pct = by_isotherm[float(lethal_isotherm_c)]
    return LesionCoverage(
        lesion_id=lesion_id,
        lethal_isotherm_c=float(lethal_isotherm_c),
        margin_mm=float(margin_mm),
        tumour_covered_pct=tumour_pct,
        margin_covered_pct=margin_pct,
        covered_pct_by_isotherm=by_isotherm,
        min_margin_mm=lethal.min_margin_mm,
        mean_margin_mm=lethal.mean_margin_mm,
        ice_min_margin_mm=ice.min_margin_mm,
        ice_mean_margin_mm=ice.mean_margin_mm,
        tumour_min_temperature_c=float(temperatures[tumour].max()),
        margin_met=margin_met(lethal.min_margin_mm, margin_mm, spacing_mm),
        margin_tolerance_mm=margin_tolerance_mm(spacing_mm),
    )


def coverage_curve(
    min_temperature_c: np.ndarray, region: np.ndarray, temperatures_c: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of `region` colder than each temperature: the cryo analogue of a dose–volume histogram.

    Returns
    -------
    (temperatures_c, fraction) : tuple of numpy.ndarray
        ``fraction[i]`` is the fraction of the region whose minimum temperature is ≤ ``temperatures_c[i]``
        (non-decreasing in temperature).
    """
    if temperatures_c is None:
        temperatures_c = np.arange(-140.0, 37.5, 0.5)
    temperatures_c = np.asarray(temperatures_c, dtype=np.float64)
    values = np.sort(min_temperature_c[region].astype(np.float64))
    if values.size == 0:
        raise InputError("region", "a non-empty region for the coverage curve")
    fraction = np.searchsorted(values, temperatures_c, side="right") / values.size
    return temperatures_c, fraction


def vessel_wall(lumen: np.ndarray) -> np.ndarray:
    """Tissue voxels touching a vessel lumen (6-connectivity): where a vessel wall is frozen first."""
    return np.asarray(ndimage.binary_dilation(lumen) & ~lumen)


@dataclass
class Risk:
    """A flagged risk: a short code, the lesion it concerns (or None) and a sentence for the report."""

    code: str
    detail: str
    lesion_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "lesion_id": self.lesion_id, "detail": self.detail}


@dataclass
class CriticalStructures:
    """Minimum temperatures reached in the structures a freeze must spare (None when absent)."""

    bile_duct_min_temperature_c: float | None = None
    vessel_wall_min_temperature_c: float | None = None
    gallbladder_min_temperature_c: float | None = None
    bowel_min_temperature_c: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if v is None else round(v, 1)) for k, v in self.__dict__.items()}


def critical_structures(
    min_temperature_c: np.ndarray,
    *,
    bile_duct: np.ndarray | None = None,
    vessels: np.ndarray | None = None,
    gallbladder: np.ndarray | None = None,
    bowel: np.ndarray | None = None,
) -> CriticalStructures:
    """Minimum temperature in bile ducts, vessel walls, gallbladder and bowel (each mask optional)."""

    def coldest(mask: np.ndarray | None) -> float | None:
        if mask is None or not np.any(mask):
            return None
        return float(min_temperature_c[mask].min())

    return CriticalStructures(
        bile_duct_min_temperature_c=coldest(bile_duct),
        vessel_wall_min_temperature_c=coldest(None if vessels is None else vessel_wall(vessels)),
        gallbladder_min_temperature_c=coldest(gallbladder),
        bowel_min_temperature_c=coldest(bowel),
    )


@dataclass
class RiskLimits:
    """Thresholds for the risk flags.

    Attributes
    ----------
    critical_temperature_c : float
        Bile ducts, gallbladder and bowel should stay warmer than this (default −20 °C, the lethal
        isotherm: colder means the structure is in the lethal zone; biloma follows freezing of a
        central duct, Chang et al., AJR 2012).
    cryoshock_frozen_ml : float
        Frozen-volume alert for cryoshock. Not a guideline value: cryoshock has been linked to freezing
        large fractions of the liver (≈ 30–35 %; Seifert & Morris, World J Surg 1999); 500 ml is the
        default alert and is configurable.
    """

    critical_temperature_c: float = -20.0
    cryoshock_frozen_ml: float = 500.0


def risk_flags(
    lesions: list[LesionCoverage],
    critical: CriticalStructures,
    frozen_volume_ml: float,
    *,
    heat_sink_lesions: dict[str, str] | None = None,
    limits: RiskLimits = RiskLimits(),
) -> list[Risk]:
    """Risk flags of a plan: margin shortfall (`margin_met`), heat sink, biloma, gallbladder/bowel injury, cryoshock.

    Parameters
    ----------
    heat_sink_lesions : dict, optional
        ``{lesion_id: description of the vessel}`` for lesions with a vessel of ≥ 3 mm within 10 mm.
    """
    risks: list[Risk] = []
    for lesion in lesions:
        if not lesion.margin_met:
            risks.append(
                Risk(
                    "coverage_shortfall",
                    f"minimal margin of the {lesion.lethal_isotherm_c:g} °C isotherm {lesion.min_margin_mm:.1f} mm, "
                    f"required {lesion.margin_mm:g} mm everywhere (grid tolerance "
                    f"{lesion.margin_tolerance_mm:.1f} mm); tumour + margin covered {lesion.margin_covered_pct:.1f} %",
                    lesion.lesion_id,
                )
            )
        if heat_sink_lesions and lesion.lesion_id in heat_sink_lesions:
            risks.append(
                Risk(
                    "heat_sink",
                    f"{heat_sink_lesions[lesion.lesion_id]}; the plan simulates its heat sink, "
                    f"margin covered {lesion.margin_covered_pct:.1f} %",
                    lesion.lesion_id,
                )
            )
    limit = limits.critical_temperature_c
    for name, value, code in (
        ("bile duct", critical.bile_duct_min_temperature_c, "biloma"),
        ("gallbladder", critical.gallbladder_min_temperature_c, "gallbladder_injury"),
        ("bowel", critical.bowel_min_temperature_c, "bowel_injury"),
    ):
        if value is not None and value <= limit:
            risks.append(Risk(code, f"{name} reaches {value:.1f} °C (limit {limit:g} °C)"))
    if frozen_volume_ml > limits.cryoshock_frozen_ml:
        risks.append(
            Risk(
                "cryoshock",
                f"frozen volume {frozen_volume_ml:.0f} ml exceeds the alert of {limits.cryoshock_frozen_ml:g} ml "
                "(not a guideline value)",
            )
        )
    return risks


@dataclass
class Coverage:
    """Everything a plan's temperature field says about its lesions and the structures around them."""

    lesions: list[LesionCoverage]
    frozen_volume_ml: float
    frozen_liver_ml: float | None
    frozen_liver_fraction: float | None
    critical: CriticalStructures
    risks: list[Risk] = field(default_factory=list)


def coverage(
    min_temperature_c: np.ndarray,
    spacing_mm: Spacing,
    lesions: dict[str, np.ndarray],
    *,
    liver: np.ndarray | None = None,
    bile_duct: np.ndarray | None = None,
    vessels: np.ndarray | None = None,
    gallbladder: np.ndarray | None = None,
    bowel: np.ndarray | None = None,
    lethal_isotherm_c: float = -20.0,
    margin_mm: float = 5.0,
    isotherms_c: Sequence[float] = DEFAULT_ISOTHERMS_C,
    heat_sink_lesions: dict[str, str] | None = None,
    limits: RiskLimits = RiskLimits(),
) -> Coverage:
    """Coverage, frozen volumes, critical-structure temperatures and risk flags of a temperature field.

    Parameters
    ----------
    min_temperature_c : numpy.ndarray
        Minimum temperature per voxel (°C), e.g. ``ThermalResult.min_temperature_c``.
    spacing_mm : sequence of 3 float
        Voxel spacing of its grid.
    lesions : dict
        ``{lesion_id: tumour mask}`` on the same grid.
    liver, bile_duct, vessels, gallbladder, bowel : numpy.ndarray of bool, optional
        Structure masks on the same grid (vessels: lumen of the large vessels).

    Returns
    -------
    Coverage
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    per_lesion = [
        lesion_coverage(
            min_temperature_c,
            mask,
            spacing,
            lesion_id=lesion_id,
            liver=liver,
            lethal_isotherm_c=lethal_isotherm_c,
            margin_mm=margin_mm,
            isotherms_c=isotherms_c,
        )
        for lesion_id, mask in lesions.items()
    ]
    frozen = min_temperature_c <= 0.0
    frozen_volume_ml = float(frozen.sum()) * voxel_ml
    frozen_liver_ml = frozen_liver_fraction = None
    if liver is not None:
        healthy = liver & ~np.any(np.stack(list(lesions.values())), axis=0) if lesions else liver
        frozen_liver_ml = float((frozen & healthy).sum()) * voxel_ml
        frozen_liver_fraction = float((frozen & healthy).sum()) / max(int(healthy.sum()), 1)
    critical = critical_structures(
        min_temperature_c, bile_duct=bile_duct, vessels=vessels, gallbladder=gallbladder, bowel=bowel
    )
    return Coverage(
        lesions=per_lesion,
        frozen_volume_ml=frozen_volume_ml,
        frozen_liver_ml=frozen_liver_ml,
        frozen_liver_fraction=frozen_liver_fraction,
        critical=critical,
        risks=risk_flags(per_lesion, critical, frozen_volume_ml, heat_sink_lesions=heat_sink_lesions, limits=limits),
    )


def isotherm_depth_mm(
    min_temperature_c: np.ndarray, spacing_mm: Spacing, isotherm_c: float = -20.0, edge_c: float = 0.0
) -> float:
    """Median depth of the `isotherm_c` surface below the `edge_c` surface (the ice edge), in mm.

    Used to re-fit a simulation to an observed ice ball: the lethal zone predicted inside the observed
    ice is the ice eroded by this depth (lethal ice lies < 1 cm behind the leading edge; Littrup et al.,
    JVIR 2009;20:1343).
    """
    inner = min_temperature_c <= isotherm_c
    if not inner.any():
        raise InputError("isotherm_c", f"an isotherm reached by the simulation (none ≤ {isotherm_c:g} °C)")
    depth = signed_distance_mm(min_temperature_c <= edge_c, spacing_mm)
    return float(np.median(depth[surface(inner)]))


def coverage_curves(
    min_temperature_c: np.ndarray, lesion_masks: dict[str, np.ndarray], margin_masks: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Coverage curves (`coverage_curve`) of each lesion's tumour and tumour + margin on one temperature field."""
    curves = {}
    for lesion_id, mask in lesion_masks.items():
        curves[f"{lesion_id} tumour"] = coverage_curve(min_temperature_c, mask)
        curves[f"{lesion_id} tumour + margin"] = coverage_curve(min_temperature_c, margin_masks[lesion_id])
    return curves
