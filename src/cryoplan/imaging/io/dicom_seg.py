"""DICOM Segmentation (SEG) in and out: frames placed on the image grid they reference, segments as labels.

References
----------
DICOM PS3.3 A.51 (Segmentation IOD) and C.8.20; highdicom (Herrmann et al., J Digit Imaging 2022;35:1719).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr.coding import CodedConcept
from numpy.typing import NDArray
from pydicom.sr._snomed_dict import mapping as _snomed_mapping

from cryoplan import __version__
from cryoplan.errors import InputError
from cryoplan.imaging.io.common import (
    POSITION_TOL_MM,
    SEG_SOP_CLASS,
    ImagingWarning,
    dcmread,
    derived_uid,
    functional_group,
    is_unit_axis,
)
from cryoplan.imaging.io.dicom_series import Series, find_series, plain_stack, source_datasets
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path


def dicom_segment_numbers(path: Path) -> dict[str, int]:
    """Structure name → SegmentNumber of a DICOM-SEG file.

    A segment whose SegmentedPropertyType is a SNOMED CT code of a known structure (10200004 Liver,
    108369006 Neoplasm, ...) is named by that code, whatever its label says ("Leber", "Segment_1"); any
    other segment by its SegmentLabel.
    """
    dataset = dcmread(path, stop_before_pixels=True)
    if "SegmentSequence" not in dataset:
        raise InputError(str(path), "a DICOM-SEG file (with a SegmentSequence)", str(dataset.get("Modality", "?")))
    names = {}
    for item in dataset.SegmentSequence:
        code = item.get("SegmentedPropertyTypeCodeSequence")
        coded = code[0] if code else None
        scheme = str(coded.get("CodingSchemeDesignator", "")) if coded is not None else ""
        value = str(coded.get("CodeValue", "")) if coded is not None else ""
        if scheme == "SRT":  # SNOMED RT, which older SEGs use (T-62000 for the liver), translated to SNOMED CT
            value, scheme = SNOMED_RT_TO_CT.get(value, value), "SCT"
        name = _NAME_OF_CODE.get(value) if scheme == "SCT" else None
        names[name or str(item.SegmentLabel)] = int(item.SegmentNumber)
    return names


def read_dicom_seg(path: Path, reference: Volume | None, resample: bool) -> Volume:
    dataset = dcmread(path)
    if dataset.file_meta.get("MediaStorageSOPClassUID") != SEG_SOP_CLASS:
        raise InputError(str(path), "a DICOM Segmentation (SEG) file as labels", str(dataset.get("Modality", "?")))
    referenced = [str(item.SeriesInstanceUID) for item in dataset.get("ReferencedSeriesSequence") or []]
    if reference is not None and reference.series_uid and referenced and reference.series_uid not in referenced:
        raise InputError(
            str(path),
            f"a DICOM-SEG drawn on the image's series {reference.series_uid}",
            f"one referencing series {', '.join(referenced)}",
        )
    try:
        frames = dataset.pixel_array
    except Exception as error:
        raise InputError(str(path), "decodable segmentation frames", f"{type(error).__name__}: {error}") from None
    frames = frames.reshape((-1,) + frames.shape[-2:])
    if dataset.SegmentationType == "FRACTIONAL":
        frames = frames >= (int(dataset.MaximumFractionalValue) + 1) // 2
    frames = frames.astype(bool)
    n_frames = frames.shape[0]
    orientation = np.asarray(functional_group(dataset, 0, "PlaneOrientationSequence").ImageOrientationPatient, float)
    measures = functional_group(dataset, 0, "PixelMeasuresSequence")
    row_spacing, column_spacing = (float(v) for v in measures.PixelSpacing)
    positions = np.asarray(
        [functional_group(dataset, f, "PlanePositionSequence").ImagePositionPatient for f in range(n_frames)], float
    )
    segments = np.asarray(
        [functional_group(dataset, f, "SegmentIdentificationSequence").ReferencedSegmentNumber for f in range(n_frames)]
    )
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    # The grid the frames define themselves: sorted positions, one slice every SpacingBetweenSlices (or,
    # where it is not declared, the smallest step between distinct positions).
    distances = positions @ normal
    unique = np.unique(np.round(distances / POSITION_TOL_MM) * POSITION_TOL_MM)
    declared = float(measures.get("SpacingBetweenSlices", 0) or 0)
    if declared > 0:
        step = declared
    elif len(unique) > 1:
        step = float(np.min(np.diff(unique)))
    else:
        step = float(measures.get("SliceThickness", 0) or 1.0)
    origin_frame = int(np.argmin(distances))
    affine = np.eye(4)
    affine[:3, 0] = row_direction * column_spacing
    affine[:3, 1] = column_direction * row_spacing
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[origin_frame]
    own_shape = (int(dataset.Columns), int(dataset.Rows), int(round((unique[-1] - unique[0]) / step)) + 1)
    target = reference if reference is not None else Volume(np.zeros(own_shape, np.uint8), affine)
    labels = _place_frames(frames, positions, segments, affine, target)
    if labels is None and reference is not None and resample:
        # on its own grid here; `read_labels` then resamples it onto the reference with a warning
        labels = _place_frames(frames, positions, segments, affine, Volume(np.zeros(own_shape, np.uint8), affine))
    if labels is None:
        raise InputError(
            str(path), "SEG frames on the pixel grid of the image (or --resample-labels)", "frames off the grid"
        )
    return labels


def _place_frames(
    frames: NDArray[np.bool_],
    positions: NDArray[np.float64],
    segments: NDArray[np.integer[Any]],
    frame_affine: NDArray[np.float64],
    target: Volume,
) -> Volume | None:
    """Write each SEG frame into `target`'s grid; None when frames do not fall exactly on its voxels."""
    to_index = np.linalg.inv(target.affine)
    # one pixel along a frame row, along a column, and one SEG slice must each be one voxel of the target
    steps = [to_index[:3, :3] @ frame_affine[:3, axis] for axis in range(3)]
    if not all(is_unit_axis(step) for step in steps):
        return None
    step_i, step_j = steps[0], steps[1]
    top = int(segments.max()) if len(segments) else 0
    labels = np.zeros(target.shape, dtype=np.uint8 if top < 2**8 else np.uint16)
    for f in range(frames.shape[0]):
        origin = to_index[:3, :3] @ positions[f] + to_index[:3, 3]
        if np.max(np.abs(origin - np.round(origin))) > 1e-2:
            return None
        set_i, set_j = np.nonzero(frames[f].T)
        if set_i.size == 0:
            continue
        index = np.round(origin[:, None] + np.outer(step_i, set_i) + np.outer(step_j, set_j)).astype(int)
        if np.any(index < 0) or np.any(index >= np.asarray(target.shape)[:, None]):
            raise InputError("labels", "segment frames inside the image's field of view", "frames beyond it")
        labels[index[0], index[1], index[2]] = segments[f]
    return target.with_array(labels, modality="SEG")


STRUCTURE_CODES = {
    # SNOMED CT codes for the segmented property type (category "Anatomical structure" 91723000,
    # or "Morphologically abnormal structure" 49755003 for the tumour), DICOM PS3.16 CID 7150/7151.
    "liver": ("10200004", "Liver"),
    "tumour": ("108369006", "Neoplasm"),
    "hepatic_vein": ("8993003", "Hepatic vein"),
    "portal_vein": ("32764006", "Portal vein"),
    "ivc": ("64131007", "Inferior vena cava"),
    "aorta": ("15825003", "Aorta"),
    "bile_duct": ("28273000", "Bile duct"),
    "gallbladder": ("28231008", "Gallbladder"),
    "bone": ("272673000", "Bone"),
    "vessels": ("59820001", "Blood vessel"),
}

SNOMED_RT_TO_CT: dict[str, str] = _snomed_mapping["SRT"]  # pydicom's table of the two SNOMED editions
_NAME_OF_CODE = {code: name for name, (code, _) in STRUCTURE_CODES.items()}

#: Local codes for what SNOMED CT and DICOM have no concept of (PS3.3 8.2: a coding scheme designator
#: starting with "99" is private; it is declared in the CodingSchemeIdentificationSequence).
LOCAL_SCHEME = "99CRYOPLAN"
_LOCAL_CODES = {
    "isotherm": ("ISOTHERM", "Region at or below a simulated isotherm"),
    "margin": ("ABLATIVE_MARGIN", "Tumour and its ablative margin"),
    "simulation": ("BIOHEAT_SIM", "Bioheat simulation"),
}

#: Recommended display colours (sRGB): anatomy in Slicer's usual tints, isotherms from light to dark blue
#: as they get colder, the margin orange, the tumour green.
_COLOURS = {
    "liver": (221, 130, 101),
    "tumour": (128, 174, 128),
    "margin": (241, 158, 60),
    "hepatic_vein": (0, 151, 206),
    "portal_vein": (0, 112, 165),
    "ivc": (0, 151, 206),
    "aorta": (216, 101, 79),
    "bile_duct": (111, 184, 210),
    "gallbladder": (139, 150, 98),
    "bone": (241, 214, 145),
    "vessels": (0, 151, 206),
}
_ISOTHERM = re.compile(r"^isotherm (-?\d+(?:\.\d+)?) ?C$")


def _isotherm_colour(temperature_c: float) -> tuple[int, int, int]:
    """Light blue at 0 °C to dark blue at −40 °C and below."""
    t = min(max(-temperature_c / 40.0, 0.0), 1.0)
    return (int(round(160 * (1 - t))), int(round(220 - 150 * t)), int(round(255 - 55 * t)))


def segment_concepts(name: str) -> tuple[CodedConcept, CodedConcept]:
    """Segmented property category and type of a segment, from its name."""
    if _ISOTHERM.match(name):
        code, meaning = _LOCAL_CODES["isotherm"]
        return CodedConcept("309825002", "SCT", "Spatial and Relational Concept"), CodedConcept(
            code, LOCAL_SCHEME, meaning
        )
    if name == "margin":
        code, meaning = _LOCAL_CODES["margin"]
        return CodedConcept("309825002", "SCT", "Spatial and Relational Concept"), CodedConcept(
            code, LOCAL_SCHEME, meaning
        )
    if name == "tumour":
        return CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure"), CodedConcept(
            *STRUCTURE_CODES[name][:1], "SCT", STRUCTURE_CODES[name][1]
        )
    if name in STRUCTURE_CODES:
        return CodedConcept("91723000", "SCT", "Anatomical Structure"), CodedConcept(
            STRUCTURE_CODES[name][0], "SCT", STRUCTURE_CODES[name][1]
        )
    return CodedConcept("85756007", "SCT", "Tissue"), CodedConcept("85756007", "SCT", "Tissue")


def segment_colour(name: str) -> tuple[int, int, int]:
    """Recommended display colour (sRGB 0–255) of a segment, from its name."""
    isotherm = _ISOTHERM.match(name)
    if isotherm:
        return _isotherm_colour(float(isotherm.group(1)))
    return _COLOURS.get(name, (128, 128, 128))


def _segment_description(number: int, name: str) -> hd.seg.SegmentDescription:
    """The coded concepts, algorithm and colour of one segment, from its name."""
    category, kind = segment_concepts(name)
    if _ISOTHERM.match(name):
        code, meaning = _LOCAL_CODES["simulation"]
        algorithm = hd.AlgorithmIdentificationSequence(
            name="cryoplan thermal simulation", version=__version__, family=CodedConcept(code, LOCAL_SCHEME, meaning)
        )
    else:
        algorithm = hd.AlgorithmIdentificationSequence(
            name="cryoplan", version=__version__, family=CodedConcept("123104", "DCM", "Morphological Operations")
        )
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*segment_colour(name)),
    )


@contextlib.contextmanager
def copied_names_allowed() -> Iterator[None]:
    """Silence highdicom's doubt about single-component person names: the name is the source's, copied
    as it is (changing it would break the link to the patient)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        yield


def declare_local_scheme(dataset: pydicom.Dataset) -> None:
    """Add the private coding scheme to the CodingSchemeIdentificationSequence (PS3.3 C.12.1.1.2)."""
    item = pydicom.Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "cryoplan local codes"
    item.CodingSchemeResponsibleOrganization = "cryoplan"
    dataset.CodingSchemeIdentificationSequence = [item]


def source_grid_shape(series: Series) -> tuple[int, int, int]:
    """Shape of the `Volume` that `read_volume` gives for the series, which masks to export must have."""
    return (int(series.headers[0].Columns), int(series.headers[0].Rows), len(series.files))


def write_dicom_seg(
    masks: dict[str, np.ndarray],
    source: str | Path,
    path: str | Path,
    description: str,
    series_uid: str | None = None,
    series_number: int = 900,
) -> None:
    """Write binary masks as a DICOM Segmentation whose frames reference the source series' images.

    Every segment is coded (SNOMED CT for anatomy and the tumour; local codes, declared in the object, for
    isotherms and the margin), computed AUTOMATICally by cryoplan (its version in the algorithm
    identification), with a recommended display colour. The source's UIDs are repaired as on reading, so a
    series without SOP or study UIDs outside its file meta still gives a valid SEG.

    Parameters
    ----------
    masks : dict of str to numpy.ndarray
        Segment label → boolean array on the grid of the source series as `read_volume` returns it.
        Known structure names ("liver", "tumour", "portal_vein", ...) get their SNOMED CT type, "margin"
        the margin concept, "isotherm -40 C" and the like the isotherm concept; others the generic type
        "Tissue" with the name as SegmentLabel.
    source : str or Path
        Folder of the DICOM series the masks were drawn on.
    path : str or Path
        Output ``.dcm`` file (written atomically).
    description : str
        SeriesDescription of the SEG.
    series_uid : str, optional
        SeriesInstanceUID of the source when its folder holds several series.
    series_number : int
        SeriesNumber of the SEG.

    References
    ----------
    DICOM PS3.3 A.51 (Segmentation IOD) and C.8.20.2 (Segment Description); built with highdicom (Herrmann
    et al., J Digit Imaging 2022;35:1719).
    """
    if not masks:
        raise InputError("masks", "at least one mask to write", "none")
    series, images = export_source(source, series_uid)
    shape = source_grid_shape(series)
    for name, mask in masks.items():
        if np.shape(mask) != shape:
            raise InputError(
                f"masks.{name}", f"a mask of shape {list(shape)} (the source series grid)", list(np.shape(mask))
            )
    pixel_array = np.stack(
        [np.stack([np.asarray(mask, bool)[:, :, k].T for k in range(shape[2])]) for mask in masks.values()], axis=-1
    )
    descriptions = [_segment_description(number, name) for number, name in enumerate(masks, start=1)]
    source_uid = str(images[0].SeriesInstanceUID)
    content = hashlib.sha256(np.packbits(pixel_array).tobytes()).hexdigest()
    with copied_names_allowed():
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=pixel_array.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=derived_uid("seg-series", source_uid, description, *masks, content),
            series_number=series_number,
            sop_instance_uid=derived_uid("seg-instance", source_uid, description, *masks, content),
            instance_number=1,
            manufacturer="cryoplan",
            manufacturer_model_name="cryoplan",
            software_versions=__version__,
            device_serial_number="0",
            series_description=description[:64],
            omit_empty_frames=False,
        )
    if any(
        item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == LOCAL_SCHEME for item in seg.SegmentSequence
    ):
        declare_local_scheme(seg)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)


def export_source(source: str | Path, series_uid: str | None) -> tuple[Series, list[pydicom.Dataset]]:
    """The source series and its full datasets, checked for export onto its own grid."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(str(source), "the folder of the source DICOM series", "not a folder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImagingWarning)  # said when the series was read for planning
        series = find_series(source, series_uid)
    if series.frames is not None:
        raise InputError(str(source), "a single-frame source series for DICOM export", "an enhanced multi-frame image")
    if not plain_stack(series):
        raise InputError(str(source), "a source series without gantry tilt or uneven spacing for DICOM export")
    return series, source_datasets(series)
