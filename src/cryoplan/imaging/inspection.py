"""`cryoplan inspect` as a function: read an image and its segmentation, measure the lesions, build the body
model and say what the image leaves out, all in one JSON document."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from cryoplan.imaging.anatomy import (
    MIN_LESION_DIAMETER_MM,
    STRUCTURES,
    Anatomy,
    LesionMeasurement,
    load_anatomy,
    measure_lesions,
)
from cryoplan.imaging.body import BodyModel, ImageWarning, build_body_model, field_of_view_warnings
from cryoplan.imaging.io import ImagingWarning, orientation_code
from cryoplan.imaging.volume import Volume

#: Version of the `inspection_document` layout (keys added since version 1 are optional to readers).
SCHEMA_VERSION = 1


def inspection_document(
    volume: Volume,
    anatomy: Anatomy | None,
    lesions: list[LesionMeasurement],
    notes: list[str],
    body: BodyModel | None = None,
    image_warnings: list[ImageWarning] | None = None,
    min_lesion_diameter_mm: float = MIN_LESION_DIAMETER_MM,
) -> dict[str, Any]:
    """The JSON document of `cryoplan inspect`.

    ``warnings`` holds the readers' notes (resampling, header conflicts); ``image_warnings`` what the field
    of view and the slices leave out (`cryoplan.imaging.body.field_of_view_warnings`), each with a code;
    ``body`` the sides the field of view cuts and the path-relevant organs no label gives.
    """
    structures = {}
    if anatomy is not None:
        structures = {
            name: {"volume_ml": round(anatomy.volume_ml(name), 3)} for name in STRUCTURES if name in anatomy.masks
        }
    liver = structures.get("liver", {}).get("volume_ml")
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {
            "shape": list(volume.shape),
            "spacing_mm": [round(float(s), 4) for s in volume.spacing_mm],
            "orientation": orientation_code(volume.affine),
            "modality": volume.modality or None,
        },
        "liver_volume_ml": liver,
        "total_tumour_volume_ml": round(float(sum(lesion.volume_ml for lesion in lesions)), 3),
        "min_lesion_diameter_mm": min_lesion_diameter_mm,
        "lesions": [lesion.to_json() for lesion in lesions],
        "structures": structures,
        "body": None
        if body is None
        else {
            "modality": body.modality,
            "cut_sides": list(body.cut_sides),
            "unknown_structures": list(body.unknown),
        },
        "image_warnings": [w.to_json() for w in image_warnings or []],
        "warnings": notes,
    }


def inspect_image(
    image: str | Path,
    labels: str | Path | None = None,
    label_preset: str | None = None,
    label_map: dict[str, int | list[int]] | None = None,
    masks: dict[str, str | Path] | None = None,
    segments: str | Path | None = None,
    series_uid: str | None = None,
    resample_labels: bool = False,
    min_voxels: int = 1,
    min_lesion_diameter_mm: float = MIN_LESION_DIAMETER_MM,
    margin_mm: float = 5.0,
) -> dict[str, Any]:
    """Read, segment and measure: the JSON contract of `cryoplan inspect` (see `inspection_document`).

    Reader warnings (resampling, header conflicts) are collected into the document's ``warnings``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImagingWarning)
        volume, anatomy = load_anatomy(
            image, labels, label_preset, label_map, masks, segments, series_uid, resample_labels
        )
    lesions = measure_lesions(anatomy, min_voxels, min_lesion_diameter_mm) if anatomy is not None else []
    notes = [str(w.message) for w in caught if issubclass(w.category, ImagingWarning)]
    body = build_body_model(volume, anatomy)
    planned = [lesion.id for lesion in lesions if not lesion.below_min_size]
    image_warnings = field_of_view_warnings(body, margin_mm, planned)
    return inspection_document(volume, anatomy, lesions, notes, body, image_warnings, min_lesion_diameter_mm)
