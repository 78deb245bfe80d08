"""Intraprocedural verification: has the ice ball reached the margin?

The pre-procedural image (with its tumour segmentation) is registered to the intraprocedural CT
(SimpleITK: rigid, then an optional B-spline), the ice ball is segmented on the intraprocedural CT when
no mask is given (the hypodense region around the probes), and the minimal ablative margin is measured
from the tumour to the ice edge and to the lethal isotherm predicted inside the observed ice. With the
probes' positions the lethal zone comes from the simulation re-fitted to the observed ice ball
(`cryoplan.planning.refit`); without them, from the ice eroded by the lethal isotherm's depth behind the
ice edge in the probe's isotherm chart. Everything is measured on the intraprocedural grid with its true
spacing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from cryoplan.errors import InputError
from cryoplan.imaging.body import FAT_HU, image_modality
from cryoplan.imaging.registration import Registration, register, resample_image, resample_labels, resample_mask
from cryoplan.imaging.volume import Volume
from cryoplan.planning.coverage import margin_met, margin_shell, margin_tolerance_mm, signed_distance_mm, surface
from cryoplan.planning.refit import IceFit, fit_flow_fraction, lethal_zone_inside_ice
from cryoplan.progress import Progress
from cryoplan.thermal import DEFAULT_PROTOCOL, ProbePlacement, Protocol

# scikit-image's filters carry no annotations; this is the signature of the one used here.
otsu_threshold: Callable[[np.ndarray], float] = threshold_otsu

# Voxels brighter than this on CT are metal (probes), not tissue.
METAL_HU = 1000.0


EDGE_SHELL_MM = 4.0
"""Half-width of the band around a first ice estimate in which the ice threshold is re-estimated."""
SEED_STEP_MM = 1.0
"""Spacing of the seed points along a probe's shaft."""


#: Attenuation of fluid on CT at most, HU: simple fluid measures −9 to 20 HU (Silverman et al., Bosniak
#: classification of cystic renal masses, version 2019, Radiology 2019;292:475–488).
FLUID_MAX_HU = 20.0


def segment_ice(
    intra_image: Volume,
    seeds_lps: np.ndarray,
    *,
    threshold_hu: float | None = None,
    search_radius_mm: float = 40.0,
    before: Volume | None = None,
) -> tuple[np.ndarray, float]:
    """Segment the ice ball on an intraprocedural CT: the hypodense region connected to the seeds.

    Frozen tissue is hypoattenuating on CT (≈ 0 HU against ≈ 50–100 HU for liver; Sandison et al.,
    Med Phys 1998;25:1200). The image is smoothed (Gaussian, σ = 1 mm), and the ice is the below-threshold
    region within `search_radius_mm` of the seeds (points along the probes' cooled shafts, the tips, or the
    tumour) connected to them, with holes (the metal probes) filled. Unless given, the threshold between
    ice and the tissue around it is found by Otsu's method (IEEE SMC 1979;9:62) in two passes: over the
    soft-tissue voxels (above fat's −30 HU, below 300 HU) of the search region, then over those within
    `EDGE_SHELL_MM` of the first estimate's edge. The search region also holds tissue that the ice never
    meets (muscle, vessels), whose intensities pull a single threshold away from the one between ice and
    liver; the band about the edge holds the two tissues the edge separates, the two-class histogram Otsu's
    method assumes. Fat (`cryoplan.imaging.body.FAT_HU`) is never ice: frozen and unfrozen fat look alike
    on CT, and fat below any threshold would otherwise join the ice where the ball reaches the capsule.

    Fluid (bile in the gallbladder, bowel contents, cysts) is as hypodense as ice. Given `before`, the
    pre-procedural CT on the intraprocedural grid (registered), a voxel that was fluid there (below
    `FLUID_MAX_HU` after the same smoothing) is not ice: the ice is tissue that became hypodense. Tumours,
    hypodense against liver but denser than fluid, stay candidates.

    Returns
    -------
    (ice, threshold_hu) : (numpy.ndarray of bool, float)
    """
    spacing = intra_image.spacing_mm
    image = np.asarray(intra_image.array, dtype=np.float32)
    # Metal (the probes) is left out of the smoothing (normalised convolution) and joined to the ice,
    # so that a probe shaft neither brightens the ice around it nor cuts a channel out of it.
    metal = image > METAL_HU
    tissue = (~metal).astype(np.float32)
    sigma = 1.0 / spacing
    smoothed = ndimage.gaussian_filter(np.where(metal, 0.0, image), sigma) / np.maximum(
        ndimage.gaussian_filter(tissue, sigma), 1e-6
    )
    seeds_index = np.rint(intra_image.lps_to_index(np.atleast_2d(seeds_lps))).astype(int)
    inside = np.all((seeds_index >= 0) & (seeds_index < np.array(intra_image.shape)), axis=1)
    if not inside.any():
        raise InputError("probes", "probe tips or a tumour inside the intraprocedural image")
    seeds_index = seeds_index[inside]
    seed_mask = np.zeros(intra_image.shape, dtype=bool)
    seed_mask[tuple(seeds_index.T)] = True
    seed_distance = ndimage.distance_transform_edt(~seed_mask, sampling=spacing)
    near = seed_distance <= search_radius_mm
    # An opening by a 2 mm ball removes probe shafts outside the ice and noise specks.
    radius = np.ceil(2.0 / spacing).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in radius], indexing="ij"), axis=-1)
    ball = np.linalg.norm(offsets * spacing, axis=-1) <= 2.0

    fluid_before = None
    if before is not None:
        fluid_before = ndimage.gaussian_filter(np.asarray(before.array, dtype=np.float32), sigma) < FLUID_MAX_HU

    def grown(threshold: float) -> np.ndarray:
        candidate = near & ((~metal & (smoothed > FAT_HU[1]) & (smoothed < threshold)) | metal)
        if fluid_before is not None:
            candidate &= metal | ~fluid_before
        candidate = ndimage.binary_opening(candidate, structure=ball)
        labels, _ = ndimage.label(candidate)
        seeded = np.unique(labels[(seed_distance <= 3.0) & candidate])
        seeded = seeded[seeded > 0]
        if seeded.size == 0:
            return np.zeros(intra_image.shape, dtype=bool)
        filled: np.ndarray = ndimage.binary_fill_holes(np.isin(labels, seeded))
        return filled

    if threshold_hu is not None:
        return grown(threshold_hu), threshold_hu
    soft = near & ~metal & (smoothed > FAT_HU[1]) & (smoothed < 300)
    if soft.sum() < 50:
        raise InputError("intra_image", "a CT with soft tissue around the probes")
    threshold = float(otsu_threshold(smoothed[soft]))
    first = grown(threshold)
    if first.any():
        band = np.where(
            first,
            ndimage.distance_transform_edt(first, sampling=spacing),
            ndimage.distance_transform_edt(~first, sampling=spacing),
        )
        edge = soft & (band <= EDGE_SHELL_MM)
        if edge.sum() >= 50 and np.ptp(smoothed[edge]) > 0:
            threshold = float(otsu_threshold(smoothed[edge]))
            return grown(threshold), threshold
    return first, threshold


def probe_seeds_lps(probes: Sequence[ProbePlacement]) -> np.ndarray:
    """Points every `SEED_STEP_MM` along each probe from its tip to the proximal end of its cooled segment
    (`ProbePlacement.active_segment_mm`): the ice forms about the cooled shaft, which reaches further from the
    tip than the ice's far edge from it."""
    points = []
    for placement in probes:
        end = placement.active_segment_mm()[1]
        length = float(np.linalg.norm(end - placement.tip_mm))
        steps = np.linspace(0.0, 1.0, max(2, int(np.ceil(length / SEED_STEP_MM)) + 1))
        points.append(placement.tip_mm + steps[:, None] * (end - placement.tip_mm))
    return np.vstack(points)


def _ice_mask(
    intra_image: Volume,
    ice: Volume | None,
    registration: Registration | None,
    tumour: Volume,
    seeds_lps: np.ndarray | None,
    ice_threshold_hu: float | None,
    pre_image: Volume | None,
) -> tuple[np.ndarray, float | None]:
    """The given ice mask on the intraprocedural grid, or the segmented one seeded at the given points of the
    pre-procedural frame (probe shafts or tips, mapped through the registration) or at the registered
    tumour's centroid, what was fluid on a pre-procedural CT left out (`segment_ice`)."""
    if ice is not None:
        return resample_mask(ice, intra_image), None
    before = None
    if pre_image is not None and registration is not None and image_modality(pre_image) == "CT":
        # beyond the pre-procedural image nothing is known to have been fluid
        moved = resample_image(pre_image, intra_image, registration.transform, fill=np.inf)
        before = intra_image.with_array(moved)
    if seeds_lps is not None and len(seeds_lps):
        seeds = registration.pre_to_intra(seeds_lps) if registration is not None else np.atleast_2d(seeds_lps)
    else:
        transform = registration.transform if registration is not None else None
        tumour_intra = resample_mask(tumour, intra_image, transform)
        if not tumour_intra.any():
            raise InputError("tumour", "a tumour that lies inside the intraprocedural image after registration")
        seeds = intra_image.index_to_lps(np.argwhere(tumour_intra).mean(axis=0))[None, :]
    return segment_ice(intra_image, seeds, threshold_hu=ice_threshold_hu, before=before)


@dataclass
class MarginReport:
    """Outcome of the intraprocedural check.

    Attributes
    ----------
    registration : Registration or None
        None when the images were already on one frame (no registration asked for).
    lethal_zone_method : str
        ``refitted_simulation`` (the re-fitted simulation's lethal isotherm inside the observed ice) or
        ``erosion`` (the observed ice eroded by `lethal_depth_mm`).
    fit : IceFit or None
        The re-fit of the simulation to the observed ice, when the probes were given (also when it failed).
    ice_min_margin_mm, lethal_min_margin_mm : float
        Minimal signed margin from the tumour to the ice edge and to the predicted lethal isotherm.
    margin_covered_pct : float
        Percentage of tumour + margin inside the predicted lethal zone.
    verdict : str
        ``adequate`` (lethal margin ≥ the required margin everywhere, within the grid tolerance: the planner's
        criterion, `cryoplan.planning.coverage.margin_met`), ``insufficient``, or ``unverified``
        when the registration did not converge, no ice ball was found or the re-fit failed.
    margin_tolerance_mm : float
        Grid tolerance of the verdict (`cryoplan.planning.coverage.margin_tolerance_mm` of the
        intraprocedural grid).
    where : list of dict
        For an insufficient margin: the tumour-surface points with the smallest margins (LPS mm, side).
    """

    registration: Registration | None
    margin_mm: float
    lethal_isotherm_c: float
    lethal_depth_mm: float
    ice_threshold_hu: float | None
    ice_volume_ml: float
    ice_min_margin_mm: float | None
    ice_mean_margin_mm: float | None
    lethal_min_margin_mm: float | None
    margin_covered_pct: float | None
    verdict: str
    lethal_zone_method: str = "erosion"
    fit: IceFit | None = None
    reasons: list[str] = field(default_factory=list)
    where: list[dict[str, Any]] = field(default_factory=list)
    margin_tolerance_mm: float = 0.0
    # Arrays on the intraprocedural grid, for the margin map.
    tumour: np.ndarray | None = None
    ice: np.ndarray | None = None
    lethal: np.ndarray | None = None
    surface_margin_mm: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None or not np.isfinite(value) else round(float(value), 2)

        return {
            "schema_version": 1,
            "registration": None if self.registration is None else self.registration.to_dict(),
            "margin_mm": self.margin_mm,
            "margin_tolerance_mm": rounded(self.margin_tolerance_mm),
            "lethal_isotherm_c": self.lethal_isotherm_c,
            "lethal_zone_method": self.lethal_zone_method,
            "fit": None if self.fit is None else self.fit.to_dict(),
            "lethal_depth_behind_ice_edge_mm": rounded(self.lethal_depth_mm)
            if self.lethal_zone_method == "erosion"
            else None,
            "ice_threshold_hu": rounded(self.ice_threshold_hu),
            "ice_volume_ml": rounded(self.ice_volume_ml),
            "ice_min_margin_mm": rounded(self.ice_min_margin_mm),
            "ice_mean_margin_mm": rounded(self.ice_mean_margin_mm),
            "lethal_min_margin_mm": rounded(self.lethal_min_margin_mm),
            "margin_covered_pct": rounded(self.margin_covered_pct),
            "verdict": self.verdict,
            "reasons": self.reasons,
            "where": self.where,
        }


def patient_side(vector_lps: np.ndarray) -> str:
    """Name the dominant patient directions of an LPS vector, e.g. "left-posterior"."""
    names = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))
    vector = np.asarray(vector_lps, dtype=np.float64)
    norm = np.linalg.norm(vector)
    if norm == 0:
        return "centre"
    unit = vector / norm
    parts = [names[axis][int(unit[axis] > 0)] for axis in np.argsort(-np.abs(unit)) if abs(unit[axis]) >= 0.4]
    return "-".join(parts)


def probes_in_intra(probes: Sequence[ProbePlacement], registration: Registration | None) -> list[ProbePlacement]:
    """Probe placements of the pre-procedural frame mapped into the intraprocedural one (tip, and the
    direction from a point 10 mm back along the needle)."""
    if registration is None:
        return list(probes)
    tips = registration.pre_to_intra(np.array([p.tip_mm for p in probes]))
    behind = registration.pre_to_intra(np.array([p.tip_mm - 10.0 * p.direction for p in probes]))
    return [replace(p, tip_mm=tip, direction=tip - back) for p, tip, back in zip(probes, tips, behind)]


def verify_margins(
    tumour: Volume,
    intra_image: Volume,
    *,
    pre_image: Volume | None = None,
    ice: Volume | None = None,
    probes: Sequence[ProbePlacement] | None = None,
    probe_tips_lps: np.ndarray | None = None,
    protocol: Protocol = DEFAULT_PROTOCOL,
    vessels: Volume | None = None,
    tissues: Volume | None = None,
    lethal_depth_mm: float,
    lethal_isotherm_c: float = -20.0,
    margin_mm: float = 5.0,
    deformable: bool = False,
    ice_threshold_hu: float | None = None,
    refit_grid_mm: float = 2.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> MarginReport:
    """Measure the margin reached by an ice ball and give a verdict.

    Parameters
    ----------
    tumour : Volume
        Tumour segmentation on the pre-procedural image's grid (or on the intraprocedural grid when
        `pre_image` is None).
    intra_image : Volume
        Intraprocedural CT (HU).
    pre_image : Volume, optional
        Pre-procedural image: when given it is registered onto `intra_image` and the tumour follows.
    ice : Volume, optional
        Ice-ball mask on any grid in the intraprocedural frame; segmented from `intra_image` when absent.
    probes : sequence of ProbePlacement, optional
        The probes (type, tip, direction) in the pre-procedural frame: their shafts from the tip to the end of
        the cooled segment seed the ice segmentation (`probe_seeds_lps`), and the simulation re-fitted to the
        observed ice (`cryoplan.planning.refit.fit_flow_fraction`) then predicts the lethal zone inside it.
    probe_tips_lps : numpy.ndarray, optional
        Probe tips (n, 3) in the pre-procedural frame when their directions are unknown: seeds only.
    protocol : Protocol
        The protocol delivered, for the re-fit (the CT is taken at the end of its last freeze).
    vessels : Volume, optional
        Large-vessel lumens on the pre-procedural grid: heat sinks of the re-fitted simulation.
    tissues : Volume, optional
        Tissue labels on the pre-procedural grid (`cryoplan.planning.organs.tissue_label_volume`): the
        re-fitted simulation then runs in the tissues the plan simulated (liver alone otherwise).
    lethal_depth_mm : float
        Depth of the lethal isotherm behind the ice edge (`cryoplan.planning.coverage.isotherm_depth_mm`
        on the probe's isotherm chart): the lethal zone is the ice eroded by it when no probes are given
        or the re-fit fails.
    lethal_isotherm_c : float
        Lethal isotherm (−20 °C after a double freeze, −40 °C after a single one; Gage & Baust,
        Cryobiology 1998;37:171–186).
    margin_mm : float
        Required minimal margin (default 5 mm).
    refit_grid_mm : float
        Grid of the re-fitted simulations.
    progress : callable, optional
        ``progress(label, fraction)`` for the re-fit's simulations.

    Returns
    -------
    MarginReport
    """
    if not 0 < margin_mm <= 20:
        raise InputError("margin_mm", "a margin between 0 and 20 mm", margin_mm)
    if not (np.isfinite(lethal_depth_mm) and 0 <= lethal_depth_mm <= 30):
        raise InputError("lethal_depth_mm", "a depth between 0 and 30 mm", lethal_depth_mm)
    if not -60.0 <= lethal_isotherm_c <= -10.0:
        raise InputError("lethal_isotherm_c", "a lethal isotherm between −60 and −10 °C", lethal_isotherm_c)
    for name, labels in (("vessels", vessels), ("tissues", tissues)):
        if labels is not None and pre_image is not None and not labels.same_grid(pre_image):
            raise InputError(name, "a segmentation on the pre-procedural image's grid")
    # The ice segmentation's seeds: the probes' cooled shafts when their directions are known, the tips.
    seeds_lps = probe_tips_lps
    if probes:
        shafts = probe_seeds_lps(probes)
        seeds_lps = shafts if probe_tips_lps is None else np.vstack([np.atleast_2d(probe_tips_lps), shafts])
    reasons: list[str] = []
    registration = None
    if not np.asarray(tumour.array).any():
        raise InputError("tumour", "a tumour segmentation with at least one voxel")
    if pre_image is not None:
        if not tumour.same_grid(pre_image):
            raise InputError("tumour", "a segmentation on the pre-procedural image's grid")
        registration = register(pre_image, intra_image, seed=seed)
        if deformable and registration.converged:
            # The ice ball (found after the rigid step) and 10 mm around it are kept out of the B-spline.
            ice_rigid = _ice_mask(intra_image, ice, registration, tumour, seeds_lps, ice_threshold_hu, pre_image)[0]
            if ice_rigid.any():
                exclude = ndimage.distance_transform_edt(~ice_rigid, sampling=intra_image.spacing_mm) <= 10.0
                refined = register(pre_image, intra_image, deformable=True, seed=seed, exclude=exclude)
                # A B-spline that matches the images worse than the rigid transform is not used.
                if refined.converged and refined.correlation > registration.correlation:
                    registration = refined
                else:
                    reasons_kept = (
                        f"B-spline refinement did not improve the match (correlation "
                        f"{refined.correlation:.3f} vs {registration.correlation:.3f}); rigid kept"
                    )
                    registration.stop_condition += f"; {reasons_kept}"
        if not registration.converged:
            reasons.append(
                f"registration did not converge ({registration.stop_condition}; "
                f"correlation {registration.correlation:.2f})"
            )
        transform = registration.transform
    else:
        transform = None
    tumour_intra = resample_mask(tumour, intra_image, transform)
    if not tumour_intra.any():
        raise InputError("tumour", "a tumour that lies inside the intraprocedural image after registration")
    spacing = intra_image.spacing_mm
    ice_mask, threshold = _ice_mask(intra_image, ice, registration, tumour, seeds_lps, ice_threshold_hu, pre_image)
    report = MarginReport(
        registration=registration,
        margin_mm=float(margin_mm),
        lethal_isotherm_c=float(lethal_isotherm_c),
        lethal_depth_mm=float(lethal_depth_mm),
        ice_threshold_hu=threshold,
        ice_volume_ml=float(ice_mask.sum()) * intra_image.voxel_volume_ml,
        ice_min_margin_mm=None,
        ice_mean_margin_mm=None,
        lethal_min_margin_mm=None,
        margin_covered_pct=None,
        verdict="unverified",
        reasons=reasons,
        margin_tolerance_mm=margin_tolerance_mm(spacing),
        tumour=tumour_intra,
        ice=ice_mask,
    )
    if not ice_mask.any():
        reasons.append("no ice ball found on the intraprocedural image")
        return report
    ice_distance = signed_distance_mm(ice_mask, spacing)
    lethal = None
    # The re-fit needs the probes where they are: it is skipped when the registration is not trusted.
    if probes and not reasons:
        vessels_intra = (
            None if vessels is None else intra_image.with_array(resample_mask(vessels, intra_image, transform))
        )
        tissues_intra = (
            None if tissues is None else intra_image.with_array(resample_labels(tissues, intra_image, transform))
        )
        report.fit = fit_flow_fraction(
            intra_image.with_array(ice_mask),
            probes_in_intra(probes, registration),
            protocol,
            vessels=vessels_intra,
            tissues=tissues_intra,
            lethal_isotherm_c=lethal_isotherm_c,
            grid_mm=refit_grid_mm,
            progress=progress,
        )
        if report.fit.accepted:
            lethal = lethal_zone_inside_ice(report.fit, intra_image, ice_mask, lethal_isotherm_c)
            report.lethal_zone_method = "refitted_simulation"
        else:
            reasons.append(
                f"simulation re-fit not used: {report.fit.failure}; lethal zone from the ice eroded "
                f"by {lethal_depth_mm:.1f} mm"
            )
    if lethal is None:
        lethal = ice_distance >= lethal_depth_mm
    lethal_distance = signed_distance_mm(lethal, spacing)
    tumour_surface = surface(tumour_intra)
    shell = margin_shell(tumour_intra, margin_mm, spacing)
    report.ice_min_margin_mm = float(ice_distance[tumour_intra].min())
    report.ice_mean_margin_mm = float(ice_distance[tumour_surface].mean())
    report.lethal_min_margin_mm = float(lethal_distance[tumour_intra].min())
    report.margin_covered_pct = 100.0 * float(np.mean(lethal[shell]))
    report.lethal = lethal
    report.surface_margin_mm = np.where(tumour_surface, lethal_distance, np.nan).astype(np.float32)
    if reasons:
        return report
    if not lethal.any():
        report.verdict = "insufficient"
        reasons.append(f"the lethal isotherm ({lethal_isotherm_c:g} °C) is not reached inside the observed ice")
        return report
    if margin_met(report.lethal_min_margin_mm, margin_mm, spacing):
        report.verdict = "adequate"
    else:
        report.verdict = "insufficient"
        centroid = intra_image.index_to_lps(np.argwhere(tumour_intra).mean(axis=0))
        short = np.argwhere(tumour_surface & (lethal_distance < margin_mm))
        worst = short[np.argsort(lethal_distance[tuple(short.T)])]
        sides: dict[str, dict[str, Any]] = {}
        for index in worst:
            point = intra_image.index_to_lps(index)
            side = patient_side(point - centroid)
            if side not in sides:
                sides[side] = {
                    "side": side,
                    "lps_mm": [round(float(v), 1) for v in point],
                    "lethal_margin_mm": round(float(lethal_distance[tuple(index)]), 2),
                }
        report.where = list(sides.values())[:6]
        area_pct = 100.0 * len(short) / max(int(tumour_surface.sum()), 1)
        reasons.append(
            f"lethal margin below {margin_mm:g} mm over {area_pct:.0f} % of the tumour surface, "
            f"worst {report.lethal_min_margin_mm:.1f} mm on the {report.where[0]['side']} side"
        )
    return report
