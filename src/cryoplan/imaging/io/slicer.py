"""3D Slicer files in and out: segmentations (``.seg.nrrd``, layered when segments overlap), scalar volumes
as NRRD, and probe trajectories as Markups JSON. Slicer works in LPS on disk, as `Volume` does.

References
----------
3D Slicer segmentation file format and Markups JSON schema v1.0.3 (Fedorov et al., Magn Reson Imaging
2012;30:1323); read and written with slicerio.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import slicerio

from cryoplan.errors import InputError
from cryoplan.imaging.io.common import ImagingWarning
from cryoplan.imaging.io.dicom_seg import STRUCTURE_CODES, segment_colour, segment_concepts
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)
_NAME_OF_CODE = {code: name for name, (code, _) in STRUCTURE_CODES.items()}


def is_slicer_segmentation(path: Path) -> bool:
    return path.name.lower().endswith(".seg.nrrd")


#: slicerio's segmentation: a JSON-like dict (``segments``, ``voxels``, ``ijkToLPS`` …) it leaves untyped.
Segmentation = dict[str, Any]


def _segment_name(segment: Mapping[str, Any]) -> str:
    """The structure a segment codes (SNOMED CT type of its terminology), else the name it was given."""
    kind = (segment.get("terminology") or {}).get("type") or []
    if len(kind) >= 2 and kind[0] == "SCT" and kind[1] in _NAME_OF_CODE:
        return _NAME_OF_CODE[kind[1]]
    return str(segment.get("name") or segment.get("id"))


def _read(path: Path, skip_voxels: bool = False) -> Segmentation:
    try:
        segmentation: Segmentation = slicerio.read_segmentation(str(path), skip_voxels=skip_voxels)
        return segmentation
    except Exception as error:  # slicerio raises several types for malformed headers
        raise InputError(str(path), "a readable 3D Slicer segmentation", f"{type(error).__name__}: {error}") from None


def slicer_segment_numbers(path: Path) -> dict[str, int]:
    """Segment name (its structure when coded) → the label `read_slicer_segmentation` gives it."""
    names = [_segment_name(segment) for segment in _read(path, skip_voxels=True).get("segments") or []]
    return {name: number for number, name in enumerate(names, start=1)}


def read_slicer_segmentation(path: Path) -> tuple[Volume, dict[str, int]]:
    """A Slicer segmentation as a label map and its segment names → label values.

    Segments become labels 1, 2, … in file order. Where segments overlap (a layered segmentation), the
    voxel takes the smaller segment, the convention of label maps (a tumour inside the liver keeps the
    tumour's label), with an `ImagingWarning` saying how many voxels were shared.
    """
    segmentation = _read(path)
    segments = segmentation.get("segments") or []
    if not segments:
        raise InputError(str(path), "a segmentation with at least one segment", "none")
    masks = {}
    for segment in segments:
        name = _segment_name(segment)
        if name in masks:
            raise InputError(f"{path}.{name}", "one segment per name", "two")
        masks[name] = slicerio.segment_mask(segmentation, segment)
    numbers = {name: number for number, name in enumerate(masks, start=1)}
    labels = np.zeros(next(iter(masks.values())).shape, dtype=np.uint8 if len(masks) < 255 else np.uint16)
    shared = np.zeros(labels.shape, dtype=np.uint8)
    for name in sorted(masks, key=lambda n: -int(np.count_nonzero(masks[n]))):  # largest first, smallest last
        shared += masks[name]
        labels[masks[name]] = numbers[name]
    overlapping = int(np.count_nonzero(shared > 1))
    if overlapping:
        warnings.warn(
            f"{path.name}: {overlapping} voxels belong to several segments; each keeps the smallest one's label",
            ImagingWarning,
            stacklevel=4,
        )
    return Volume(labels, np.asarray(segmentation["ijkToLPS"], dtype=np.float64), "SEG"), numbers


def write_slicer_segmentation(masks: dict[str, np.ndarray], affine: np.ndarray, path: str | Path) -> None:
    """Write masks as a Slicer ``.seg.nrrd``: overlapping segments go to layers of their own, each segment
    with its name, colour and terminology (the concepts of the DICOM-SEG export)."""
    if not masks:
        raise InputError("masks", "at least one mask to write", "none")
    shape = np.shape(next(iter(masks.values())))
    segmentation = slicerio.create_segmentation(shape, affine)
    segmentation["masterRepresentation"] = "Binary labelmap"
    segmentation["containedRepresentationNames"] = ["Binary labelmap"]
    for name, mask in masks.items():
        if np.shape(mask) != shape:
            raise InputError(f"masks.{name}", f"a mask of shape {list(shape)}", list(np.shape(mask)))
        category, kind = segment_concepts(name)
        slicerio.add_segment(
            segmentation,
            np.asarray(mask, dtype=bool),
            {
                "id": name,
                "name": name,
                "nameAutoGenerated": False,
                "color": [c / 255.0 for c in segment_colour(name)],
                "colorAutoGenerated": False,
                "terminology": {
                    "contextName": "cryoplan",
                    "category": [category.scheme_designator, category.value, category.meaning],
                    "type": [kind.scheme_designator, kind.value, kind.meaning],
                },
            },
        )
    path = Path(path)
    with atomic_path(path) as tmp:
        slicerio.write_segmentation(str(tmp), segmentation)


def write_nrrd(volume: Volume, path: str | Path) -> None:
    """Write a scalar volume as NRRD in LPS space (gzip), atomically."""
    header = {
        "space": "left-posterior-superior",
        "space directions": volume.affine[:3, :3].T,
        "space origin": volume.affine[:3, 3],
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), np.asarray(volume.array), header, index_order="F")


def write_probe_markups(probes: Sequence[Mapping[str, object]], path: str | Path) -> None:
    """Write probe trajectories as Slicer Markups JSON: one Line per probe, from its entry to its tip (LPS).

    Parameters
    ----------
    probes : list of dict
        Each with ``name``, ``entry_lps_mm`` and ``tip_lps_mm``.
    """
    markups = []
    for probe in probes:
        points = []
        for number, key in enumerate(("entry_lps_mm", "tip_lps_mm"), start=1):
            point = np.asarray(probe[key], dtype=np.float64)
            if point.shape != (3,) or not np.all(np.isfinite(point)):
                raise InputError(f"probes.{probe['name']}.{key}", "three finite LPS coordinates", probe[key])
            points.append({"id": str(number), "label": key.split("_")[0], "position": point.tolist()})
        markups.append(
            {
                "type": "Line",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "name": str(probe["name"]),
                "controlPoints": points,
            }
        )
    document = {"@schema": MARKUPS_SCHEMA, "markups": markups}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
