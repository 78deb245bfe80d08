"""Lesions of a case filled from its images: a value typed in the case file is kept, a disagreement of more
than 3 mm between the typed and the measured value is flagged, and a lesion measured below the case's
minimum lesion size is marked ``below_min_size`` (listed, not planned or counted)."""

from __future__ import annotations

from typing import Any

from cryoplan.case import Case, Lesion
from cryoplan.imaging.anatomy import (
    MIN_LESION_DIAMETER_MM,
    Anatomy,
    LesionMeasurement,
    load_anatomy,
    measure_lesions,
)

#: Typed and measured lengths further apart than this are flagged (mm).
DISAGREEMENT_MM = 3.0

# Case lesion length field ← measurement attribute. The Couinaud segment is not measured here: a case
# file's imaging section names no segment map, so the typed segment stands.
_FIELDS = {
    "diameter_mm": "max_diameter_mm",
    "distance_to_bile_duct_mm": "distance_to_bile_duct_mm",
    "distance_to_major_vessel_mm": "distance_to_major_vessel_mm",
}


def measure_case_lesions(
    case: Case, min_voxels: int = 1, anatomy: Anatomy | None = None
) -> tuple[list[dict[str, object]], list[str]]:
    """The case's lesions with the gaps filled from its images, and the flags raised.

    Measured lesions are named L1, L2, … by decreasing volume; a typed lesion with the same id is that
    lesion. Each typed value is kept; an empty one is filled from the measurement (diameter = maximal 3-D
    diameter). Flags name the field: a typed length more than 3 mm from the measured one, a typed lesion
    the images do not hold.

    Parameters
    ----------
    case : Case
        A case whose ``imaging`` paths are absolute (as `cryoplan.case.load_case` returns them).
    min_voxels : int
        Smallest lesion counted, voxels.
    anatomy : Anatomy, optional
        The case's anatomy when it is already loaded (a planner's, or a phantom's for a case without
        images); otherwise it is loaded from the case's ``imaging`` section.

    Returns
    -------
    lesions : list of dict
        One dict per lesion with the fields of `cryoplan.case.Lesion` (typed lesions first, in their order,
        then lesions found only in the images).
    flags : list of str
        One line per disagreement.
    """
    typed = [lesion.model_dump() for lesion in case.lesions]
    imaging = case.imaging
    if anatomy is None:
        if imaging is None:
            return typed, []
        _, anatomy = load_anatomy(
            imaging.image,
            labels=imaging.labels,
            label_preset=imaging.label_preset,
            label_map=imaging.labels_map,
            masks=imaging.masks,
            series_uid=imaging.series_uid,
        )
    min_size = MIN_LESION_DIAMETER_MM
    if imaging is not None and imaging.min_lesion_diameter_mm is not None:
        min_size = imaging.min_lesion_diameter_mm
    measured = {m.id: m for m in (measure_lesions(anatomy, min_voxels, min_size) if anatomy is not None else [])}
    found = ", ".join(measured) or "none"
    lesions: list[dict[str, object]] = []
    flags: list[str] = []
    for number, lesion in enumerate(typed):
        measurement = measured.pop(lesion["id"], None)
        if measurement is None:
            if anatomy is not None:
                flags.append(f"lesions[{number}] (id {lesion['id']}): not found in the images (lesions there: {found})")
            lesions.append(lesion)
            continue
        lesions.append(_merge(lesion, measurement, number, flags))
    for measurement in measured.values():
        lesions.append({"segment": None, **measurement.case_fields()})
    return lesions, flags


def _merge(lesion: dict[str, Any], measurement: LesionMeasurement, number: int, flags: list[str]) -> dict[str, object]:
    merged = dict(lesion)
    for key, attr in _FIELDS.items():
        value = getattr(measurement, attr)
        if merged.get(key) is None:
            merged[key] = value
        elif value is not None and abs(merged[key] - value) > DISAGREEMENT_MM:
            flags.append(
                f"lesions[{number}].{key}: typed {merged[key]:g} mm, images {value:.1f} mm "
                f"(differ by {abs(merged[key] - value):.1f} mm > {DISAGREEMENT_MM:g} mm)"
            )
    return merged


def case_with_measured_lesions(
    case: Case, min_voxels: int = 1, anatomy: Anatomy | None = None
) -> tuple[Case, list[str]]:
    """The case with its lesions filled from its images (`measure_case_lesions`), and the flags raised.

    This is the one way a case's lesions come from its images: `cryoplan assess` and the planner's
    assessment both call it before `cryoplan.clinical.assess`. A case without an ``imaging`` section and
    without `anatomy` is returned as it is.
    """
    if case.imaging is None and anatomy is None:
        return case, []
    lesions, flags = measure_case_lesions(case, min_voxels, anatomy)
    return case.model_copy(update={"lesions": [Lesion.model_validate(lesion) for lesion in lesions]}), flags
