"""The planner's anatomy: the masks it plans on, built from the imaging anatomy, and how lesions group into
planning units."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import (
    VESSELS,
    Anatomy,
    lesion_components,
    measure_lesions,
)
from cryoplan.imaging.body import BodyModel, build_body_model
from cryoplan.imaging.volume import Volume
from cryoplan.planning.settings import DEFAULT_CLEARANCES_MM

T = TypeVar("T")

# A lesion with less than this share of its surroundings in the liver is not a liver lesion.
MIN_LIVER_CONTACT = 0.25
# Lesions whose tumour + margin regions come this close share one plan.
SHARED_PLAN_GAP_MM = 15.0


@dataclass
class PlanningAnatomy:
    """The masks the planner needs, on the image's grid.

    Attributes
    ----------
    grid : Volume
        Geometry of every mask (its array is the CT in HU when one was given).
    liver, body : numpy.ndarray of bool
    lesions : dict
        ``{lesion_id: tumour mask}``.
    vessels : numpy.ndarray of bool
        Lumen of every vessel (all vessel classes).
    bile_duct, gallbladder, bone, bowel : numpy.ndarray of bool or None
    heat_sink : dict
        ``{lesion_id: description}`` of lesions with a vessel of ≥ 3 mm within 10 mm (from imaging).
    body_model : BodyModel or None
        The body and its organs (`cryoplan.imaging.body`), when built from an image.
    """

    grid: Volume
    liver: np.ndarray
    body: np.ndarray
    lesions: dict[str, np.ndarray]
    vessels: np.ndarray
    bile_duct: np.ndarray | None = None
    gallbladder: np.ndarray | None = None
    bone: np.ndarray | None = None
    bowel: np.ndarray | None = None
    heat_sink: dict[str, str] = field(default_factory=dict)
    body_model: BodyModel | None = None
    _derived: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """What `compute` derives from the masks, computed once per `key`: the masks never change once the
        anatomy is built, and the planner asks for the same derived masks and points at every simulation."""
        if key not in self._derived:
            self._derived[key] = compute()
        value: T = self._derived[key]
        return value

    def large_vessels(self, min_calibre_mm: float) -> np.ndarray:
        """Vessel voxels belonging to a segment of at least `min_calibre_mm` (a morphological opening:
        the union of the inscribed balls of that diameter); read-only."""

        def opened() -> np.ndarray:
            mask = large_vessel_mask(self.vessels, self.grid.spacing_mm, min_calibre_mm)
            mask.flags.writeable = False
            return mask

        return self.derived(("large_vessels", min_calibre_mm), opened)

    def obstacles(self, min_calibre_mm: float) -> dict[str, np.ndarray]:
        """What a probe path keeps its clearance from, by structure name (`DEFAULT_CLEARANCES_MM`).

        With a body model: every labelled organ of the clearance table (vessels only where their calibre
        is at least `min_calibre_mm`), bone and cartilage by label or HU, and gas inside the body that no
        label names. Without one: large vessels, bile ducts, gallbladder, bone and bowel.
        """
        if self.body_model is None:
            found = {"other_vessel": self.large_vessels(min_calibre_mm)}
            for name, mask in (("bile_duct", self.bile_duct), ("gallbladder", self.gallbladder)):
                if mask is not None:
                    found[name] = mask
            if self.bone is not None:
                found["bone"] = self.bone
            if self.bowel is not None:
                found["small_bowel"] = self.bowel
            return found
        model = self.body_model
        spacing = self.grid.spacing_mm
        found = {}
        named = np.zeros(self.grid.shape, dtype=bool)
        for name in DEFAULT_CLEARANCES_MM:
            mask = model.structures.get(name)
            if mask is None or name == "bone":
                continue
            if name in (*VESSELS, "other_vessel"):
                mask = large_vessel_mask(mask, spacing, min_calibre_mm)
            found[name] = mask
            named |= model.structures[name]
        bone = model.bone & ~named
        if bone.any():
            found["bone"] = bone
        gas = model.internal_gas & ~named
        if gas.any():
            found["gas"] = gas
        return found


def vessel_lumen(anatomy: Anatomy) -> np.ndarray:
    """Lumen of every vessel class the segmentation gives (`cryoplan.imaging.anatomy.VESSELS`), as one mask."""
    lumen = np.zeros(anatomy.grid.shape, dtype=bool)
    for name in VESSELS:
        if name in anatomy.masks:
            lumen |= anatomy.masks[name]
    return lumen


def large_vessel_mask(vessels: np.ndarray, spacing_mm: ArrayLike, min_calibre_mm: float) -> np.ndarray:
    """Voxels of `vessels` inside a ball of diameter `min_calibre_mm` that fits in the lumen.

    The inscribed radius at a voxel is taken as its Euclidean distance (true spacing) to the nearest voxel
    centre outside the lumen; a centre is accepted when that distance exceeds the radius less half the
    finest voxel, so that a vessel whose calibre is within a voxel of the threshold counts as large
    (the safe side for probe paths).
    """
    if not vessels.any():
        return np.zeros_like(vessels, dtype=bool)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    radius = 0.5 * min_calibre_mm
    inscribed = ndimage.distance_transform_edt(vessels, sampling=spacing)
    centres = inscribed > radius - 0.5 * spacing.min()
    if not centres.any():
        return np.zeros_like(vessels, dtype=bool)
    large: np.ndarray = (ndimage.distance_transform_edt(~centres, sampling=spacing) <= radius) & vessels
    return large


def vessel_components(lumen: np.ndarray, spacing_mm: ArrayLike) -> list[tuple[np.ndarray, float]]:
    """Connected vessel segments with their calibre: twice the largest distance from a lumen voxel to the
    nearest voxel outside it (Euclidean distance transform with the true spacing)."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    labels, count = ndimage.label(lumen)
    inscribed = ndimage.distance_transform_edt(lumen, sampling=spacing)
    components = []
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        mask = np.zeros(lumen.shape, dtype=bool)
        mask[box] = labels[box] == number
        calibre = float(2 * inscribed[mask].max())
        components.append((mask, calibre))
    return components


def planning_anatomy(
    ct: Volume, anatomy: Anatomy, min_voxels: int = 1
) -> tuple[PlanningAnatomy, dict[str, dict[str, object]]]:
    """The planner's masks, the body model (`cryoplan.imaging.body.build_body_model`) and the imaging
    measurements of each lesion.

    Raises
    ------
    InputError
        No liver, no tumour, or a tumour outside the liver.
    """
    masks = anatomy.masks
    if "liver" not in masks or not masks["liver"].any():
        raise InputError("imaging.labels.liver", "a liver segmentation")
    components = lesion_components(anatomy, min_voxels)
    if not components:
        raise InputError("imaging.labels.tumour", "at least one tumour voxel")
    measurements = {m.id: m for m in measure_lesions(anatomy, min_voxels)}
    lesions = {f"L{n}": mask for n, mask in enumerate(components, start=1)}
    liver = masks["liver"]
    for lesion_id, mask in lesions.items():
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        contact = float(np.mean(liver[shell] | masks["tumour"][shell])) if shell.any() else 0.0
        if contact < MIN_LIVER_CONTACT:
            raise InputError(
                f"lesions.{lesion_id}",
                "a tumour inside the liver",
                f"{100 * (1 - contact):.0f} % of its surroundings outside the liver",
            )
    vessels = vessel_lumen(anatomy)
    heat_sink = {
        m.id: f"{m.heat_sink_vessel.replace('_', ' ')} of {m.heat_sink_vessel_calibre_mm:.0f} mm within 10 mm"
        for m in measurements.values()
        if m.heat_sink and m.heat_sink_vessel
    }
    model = build_body_model(ct, anatomy)
    bowel = np.zeros(ct.shape, dtype=bool)
    for name in ("stomach", "duodenum", "small_bowel", "colon"):
        if name in masks:
            bowel |= masks[name]
    planning = PlanningAnatomy(
        grid=ct,
        liver=liver | masks["tumour"],
        body=model.body,
        lesions=lesions,
        vessels=vessels,
        bile_duct=masks.get("bile_duct"),
        gallbladder=masks.get("gallbladder"),
        bone=model.bone,
        bowel=bowel if bowel.any() else None,
        heat_sink=heat_sink,
        body_model=model,
    )
    return planning, {k: m.to_json() for k, m in measurements.items()}


def planning_units(anatomy: PlanningAnatomy, margin_mm: float) -> list[list[str]]:
    """Group lesions whose tumour + margin regions lie within `SHARED_PLAN_GAP_MM` of each other."""
    ids = list(anatomy.lesions)
    reach = (
        {i: ndimage.distance_transform_edt(~anatomy.lesions[i], sampling=anatomy.grid.spacing_mm) for i in ids}
        if len(ids) > 1
        else {}
    )
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            i = parent[i]
        return i

    for a in ids:
        for b in ids:
            if a < b and reach[a][anatomy.lesions[b]].min() <= 2 * margin_mm + SHARED_PLAN_GAP_MM:
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())
