"""Tissues around the liver in the simulation, and the ice that reaches other organs.

The simulation grid takes each voxel's tissue from the body model (`cryoplan.imaging.body.BodyModel`):
liver and tumour as before, and the other tissues with their own properties from the tissue library
(`cryoplan.thermal.TISSUES`: fat, muscle, kidney, lung, bone, blood [1]). After the final simulation, every
structure's volume inside the 0 °C and the lethal isotherm is measured, with the distance from each isotherm
to the organs a freeze must spare and to the skin, and the risks are flagged: bowel or stomach inside the
ice (perforation), skin within `SKIN_WARNING_MM` of the ice (skin injury; warming advised), other organs
inside the ice.

References
----------
.. [1] Hasgall PA, Di Gennaro F, Baumgartner C, et al. IT'IS Database for thermal and electromagnetic
   parameters of biological tissues, version 4.1, 2022 (the library's fat, muscle, kidney, lung, bone and
   blood values).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.imaging.body import BodyModel
from cryoplan.imaging.volume import Volume
from cryoplan.planning.coverage import Risk
from cryoplan.thermal import TISSUES, Grid, Tissue

#: Tissue library names by label number of the simulation's tissue map.
TISSUE_LABELS = {0: "liver", 1: "tumour", 2: "fat", 3: "muscle", 4: "kidney", 5: "lung", 6: "bone", 7: "blood"}
_LABEL = {name: number for number, name in TISSUE_LABELS.items()}
#: The library tissue each body-model name is simulated as. Solid organs without a tissue of their own take
#: muscle's properties (the library's soft tissue), gas inside the body lung's, air outside it fat's (the most
#: insulating tissue of the library).
SIMULATED_AS = {
    "liver": "liver",
    "tumour": "tumour",
    "bile_duct": "liver",
    "fat": "fat",
    "air": "fat",
    "kidney": "kidney",
    "adrenal": "kidney",
    "lung": "lung",
    "trachea": "lung",
    "gas": "lung",
    "bone": "bone",
    "rib": "bone",
    "costal_cartilage": "bone",
    "sternum": "bone",
    "vertebra": "bone",
    "hepatic_vein": "blood",
    "portal_vein": "blood",
    "ivc": "blood",
    "aorta": "blood",
    "other_vessel": "blood",
}
#: Organs whose distance to each isotherm is reported, with the body-model names that make them up.
SPARED = {
    "lung": ("lung", "gas"),
    "bowel": ("small_bowel", "colon", "duodenum"),
    "stomach": ("stomach",),
    "kidney": ("kidney",),
    "adrenal": ("adrenal",),
    "gallbladder": ("gallbladder",),
    "skin": ("air",),
}
#: Skin closer than this to the ice is flagged, mm (a planning threshold: ice spreads a few mm further than
#: planned when probes deviate, and the skin needs warming before it reaches it).
SKIN_WARNING_MM = 10.0
# Names that are tissue classes or the target, not organs to report inside the ice.
_TISSUE_CLASSES = ("liver", "tumour", "fat", "soft_tissue", "muscle", "air")


def tissue_names_on(model: BodyModel, grid: Grid) -> tuple[np.ndarray, float]:
    """The body model's tissue name at every voxel centre of `grid` (nearest image voxel; beyond the image,
    the nearest voxel at its edge), and the share of the grid that lies beyond the image (%)."""
    image = model.image
    index = image.lps_to_index(grid.centres_mm().reshape(-1, 3))
    rounded = np.rint(index)
    beyond = np.any((rounded < 0) | (rounded > np.asarray(image.shape) - 1), axis=1)
    clamped = np.clip(rounded, 0, np.asarray(image.shape) - 1)
    names = np.array(model.tissue_names(image.index_to_lps(clamped)))
    return names.reshape(grid.shape), 100.0 * float(beyond.mean())


def _simulated_label(name: str) -> int:
    """The `TISSUE_LABELS` number a body-model name is simulated as (`SIMULATED_AS`; other names, unlabelled
    soft tissue included, as muscle)."""
    return _LABEL[SIMULATED_AS.get(name, "muscle")]


def tissue_map(
    names: np.ndarray, lesion_masks: dict[str, np.ndarray], liver: np.ndarray
) -> tuple[np.ndarray, dict[int, Tissue]]:
    """Tissue labels (`TISSUE_LABELS`) of the simulation grid and their library tissues.

    Every name maps through `SIMULATED_AS` (other names as muscle); the planner's liver and tumour masks win.
    """
    labels = np.full(names.shape, _LABEL["muscle"], dtype=np.int32)
    for name in np.unique(names):
        labels[names == name] = _simulated_label(str(name))
    labels[liver] = _LABEL["liver"]
    for mask in lesion_masks.values():
        labels[mask] = _LABEL["tumour"]
    return labels, tissue_table()


def tissue_table() -> dict[int, Tissue]:
    """The library tissue of each `TISSUE_LABELS` number."""
    return {number: TISSUES[name] for number, name in TISSUE_LABELS.items()}


def tissue_label_volume(model: BodyModel, liver: np.ndarray, lesions: Iterable[np.ndarray]) -> Volume:
    """The tissue labels of `tissue_map` at every voxel of the body model's image, for a simulation on a grid
    of its own (the re-fit of `cryoplan.planning.margins.verify_margins`).

    Parameters
    ----------
    model : BodyModel
        The body model of the image.
    liver, lesions : numpy.ndarray
        The planner's liver and lesion masks on the image grid; they win over the body model's names.
    """
    codes, names = model.voxel_tissue_codes
    labels = np.array([_simulated_label(name) for name in names], dtype=np.uint8)[codes]
    labels[liver] = _LABEL["liver"]
    for mask in lesions:
        labels[mask] = _LABEL["tumour"]
    return model.image.with_array(labels)


@dataclass
class OrganExposure:
    """What the ice of one planning unit reaches besides the liver and the tumour."""

    isotherms_c: tuple[float, float]
    volumes_ml: dict[str, tuple[float, ...]]  # name → (inside 0 °C, inside the lethal isotherm)
    distances_mm: dict[str, tuple[float | None, ...]]  # organ → (to 0 °C, to lethal); None: not in grid
    grid_reach_mm: float
    beyond_image_pct: float
    simulated_as: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ice, lethal = self.isotherms_c
        return {
            "isotherms_c": [ice, lethal],
            "volumes_ml": [
                {"structure": name, "inside_0c_ml": round(a, 2), "inside_lethal_ml": round(b, 2)}
                for name, (a, b) in self.volumes_ml.items()
            ],
            "distances_mm": [
                {
                    "structure": name,
                    "to_0c_mm": None if a is None else round(a, 1),
                    "to_lethal_mm": None if b is None else round(b, 1),
                }
                for name, (a, b) in self.distances_mm.items()
            ],
            "grid_reach_mm": self.grid_reach_mm,
            "grid_beyond_image_pct": round(self.beyond_image_pct, 1),
            "simulated_as": self.simulated_as,
        }


def organ_exposure(
    min_temperature_c: np.ndarray,
    names: np.ndarray,
    spacing_mm: float,
    lethal_isotherm_c: float,
    grid_reach_mm: float,
    beyond_image_pct: float,
) -> OrganExposure:
    """Volumes of every structure inside the 0 °C and the lethal isotherm, and the distance (mm, true
    spacing, between voxel centres) from each isotherm to the organs of `SPARED`: 0 when the organ is
    inside it, None when the organ is not on the simulation grid (farther than its reach)."""
    voxel_ml = spacing_mm**3 / 1000.0
    zones = [min_temperature_c <= 0.0, min_temperature_c <= lethal_isotherm_c]
    volumes: dict[str, tuple[float, ...]] = {}
    for name in np.unique(names):
        if str(name) in _TISSUE_CLASSES:
            continue
        mask = names == name
        inside = tuple(float(np.sum(mask & zone)) * voxel_ml for zone in zones)
        if inside[0] > 0:
            volumes[str(name)] = inside
    distances: dict[str, tuple[float | None, ...]] = {}
    outside = [
        ndimage.distance_transform_edt(~zone, sampling=[spacing_mm] * 3) if zone.any() else None for zone in zones
    ]
    for organ, parts in SPARED.items():
        mask = np.isin(names, parts)
        if not mask.any():
            if organ == "skin":  # the skin lies beyond the grid: farther than its reach from every isotherm
                distances[organ] = (None, None)
            continue
        distances[organ] = tuple(None if d is None else float(d[mask].min()) for d in outside)
    simulated = {str(n): SIMULATED_AS.get(str(n), "muscle") for n in np.unique(names)}
    return OrganExposure((0.0, lethal_isotherm_c), volumes, distances, grid_reach_mm, beyond_image_pct, simulated)


def organ_risks(exposure: OrganExposure, lesion_id: str | None = None) -> list[Risk]:
    """Flags: bowel or stomach inside the ice, skin within `SKIN_WARNING_MM` of it, other organs inside it."""
    risks = []
    bowel = {n: v for n, v in exposure.volumes_ml.items() if n in ("stomach", "duodenum", "small_bowel", "colon")}
    for name, (ice, lethal) in bowel.items():
        risks.append(
            Risk(
                "bowel_in_ice",
                f"{name.replace('_', ' ')}: {ice:.2f} ml inside the 0 °C ice ({lethal:.2f} ml inside the lethal "
                "isotherm): risk of perforation; displace it (hydrodissection) or re-plan",
                lesion_id,
            )
        )
    skin = exposure.distances_mm.get("skin")
    if skin is not None and skin[0] is not None and skin[0] < SKIN_WARNING_MM:
        risks.append(
            Risk(
                "skin_injury",
                f"the skin is {skin[0]:.1f} mm from the 0 °C ice (less than {SKIN_WARNING_MM:g} mm): skin injury "
                "possible; warming advised (warm saline on the skin at the entry)",
                lesion_id,
            )
        )
    for name, (ice, lethal) in exposure.volumes_ml.items():
        if name in bowel or name == "bile_duct" or SIMULATED_AS.get(name) in ("blood", "bone"):
            continue
        risks.append(
            Risk(
                "organ_in_ice",
                f"{name.replace('_', ' ')}: {ice:.2f} ml inside the 0 °C ice ({lethal:.2f} ml inside the lethal "
                "isotherm)",
                lesion_id,
            )
        )
    return risks
