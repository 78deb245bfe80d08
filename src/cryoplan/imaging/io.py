"""Reading and writing images and segmentations: DICOM series, NIfTI, NRRD and DICOM-SEG, all into the one
`Volume` convention of `volume.py` (array ``[i, j, k]``, affine from voxel index to LPS millimetres).

Orientation is converted here and nowhere else: NIfTI stores RAS world coordinates (x to the patient's
Right is negative in LPS), NRRD names its space, DICOM gives the patient position and orientation of each
slice (PS3.3 C.7.6.2). A DICOM series is sorted by slice position along the normal of its image plane,
never by InstanceNumber.

Readers warn with `ImagingWarning` when they change or doubt the geometry (gantry tilt resampled, uneven
slices resampled, qform/sform disagreement, labels resampled), and raise `InputError` naming the file when
the input cannot be used as it is.
"""

from __future__ import annotations

import gzip
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_directory, atomic_path

#: NIfTI world is RAS, the Volume world LPS: flip x and y (and back).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4"

#: Tolerances: a slice-position spread below this is one position (mm); a relative spacing variation
#: below this is even; a tilt below this angle (degrees) is none.
_POSITION_TOL_MM = 1e-3
_SPACING_REL_TOL = 0.01
_TILT_TOL_DEG = 0.05


class ImagingWarning(UserWarning):
    """The reader changed or doubts the geometry of an input (resampling, conflicting header fields)."""


def orientation_code(affine: np.ndarray) -> str:
    """Axis code of a voxel-to-LPS affine: for each voxel axis the patient direction it points to.

    Letters as in DICOM and nibabel's ``aff2axcodes``: L/R, P/A, S/I. An image read from a RAS-oriented
    NIfTI file gives "RAS"; a DICOM axial series usually "LPS".
    """
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    code = ""
    for column in np.asarray(affine)[:3, :3].T:
        axis = int(np.argmax(np.abs(column)))
        code += letters[axis][0 if column[axis] > 0 else 1]
    return code


# --------------------------------------------------------------------------------------------------- read


def read_volume(path: str | Path, series_uid: str | None = None, modality: str | None = None) -> Volume:
    """Read an image: a NIfTI or NRRD file, or a folder holding a DICOM series.

    Parameters
    ----------
    path : str or Path
        ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr`` file, or a folder of DICOM files of one series.
    series_uid : str, optional
        SeriesInstanceUID to read when the folder holds several series.
    modality : str, optional
        Modality to record ("CT", "MR"); DICOM carries its own. For NIfTI and NRRD, which do not, an image
        with values at or below -500 (air in Hounsfield units) is taken as "CT", any other as unknown ("").

    Returns
    -------
    Volume
        The image in the LPS convention of `Volume`; CT values in Hounsfield units after rescale.

    Raises
    ------
    InputError
        Missing or unreadable file, several series and none chosen, a geometry that cannot be used.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "an existing image file or DICOM folder", "not found")
    if path.is_dir():
        volume = _read_dicom_series(path, series_uid)
    elif series_uid is not None:
        raise InputError("series", "a DICOM folder when a series UID is given", str(path))
    else:
        volume = _read_file(path)
        if modality is None:
            modality = "CT" if volume.array.size and float(volume.array.min()) <= -500 else ""
    if modality is not None:
        volume = volume.with_array(volume.array, modality=modality)
    return volume


def read_labels(path: str | Path, reference: Volume | None = None, resample: bool = False) -> Volume:
    """Read an integer label map: NIfTI, NRRD, or a DICOM-SEG (segment numbers become label values).

    Parameters
    ----------
    path : str or Path
        Label file.
    reference : Volume, optional
        The image the labels belong to. A label map on the same voxel grid up to axis order and direction
        (for example a RAS-ordered NIfTI of a DICOM series) is reordered exactly onto it; one on any other
        grid is an error unless `resample` is true.
    resample : bool
        Resample a label map on another grid onto `reference` by nearest neighbour (with an
        `ImagingWarning`).

    Returns
    -------
    Volume
        Labels (non-negative integers, smallest fitting dtype) with modality "SEG".
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "an existing label file (NIfTI, NRRD or DICOM-SEG)", "not found")
    if _is_dicom_file(path):
        labels = _read_dicom_seg(path, reference, resample)
    else:
        image = _read_file(path)
        labels = image.with_array(_as_label_array(image.array, str(path)), modality="SEG")
    if reference is not None:
        labels = _onto_reference(labels, reference, resample, str(path))
    return labels


def segment_label_map(path: str | Path) -> dict[str, int]:
    """SegmentLabel → SegmentNumber of a DICOM-SEG file (the names its author gave the segments)."""
    path = Path(path)
    if not path.is_file() or not _is_dicom_file(path):
        raise InputError(str(path), "a DICOM-SEG file")
    dataset = _dcmread(path)
    if "SegmentSequence" not in dataset:
        raise InputError(str(path), "a DICOM-SEG file (with a SegmentSequence)", str(dataset.get("Modality", "?")))
    return {str(item.SegmentLabel): int(item.SegmentNumber) for item in dataset.SegmentSequence}


def _read_file(path: Path) -> Volume:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path)
    if name.endswith((".nrrd", ".nhdr")):
        return _read_nrrd(path)
    if _is_dicom_file(path):
        raise InputError(str(path), "the folder of the DICOM series, not one of its files (or a DICOM-SEG as labels)")
    raise InputError(str(path), "a .nii, .nii.gz, .nrrd or .nhdr file, or a DICOM folder", path.suffix or path.name)


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        array = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises several types for truncated or foreign files
        raise InputError(str(path), "a readable NIfTI file", f"{type(error).__name__}: {error}") from None
    header = image.header
    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    if qform_code > 0 and sform_code > 0 and not np.allclose(image.get_qform(), image.get_sform(), atol=1e-3):
        warnings.warn(
            f"{path.name}: qform and sform disagree by up to "
            f"{np.abs(image.get_qform() - image.get_sform()).max():.3g} mm; using the sform",
            ImagingWarning,
            stacklevel=3,
        )
    if qform_code == 0 and sform_code == 0:
        warnings.warn(
            f"{path.name}: no qform or sform; orientation unknown, voxel sizes only", ImagingWarning, stacklevel=3
        )
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(str(path), "a 3-D image", f"shape {array.shape}")
    return Volume(np.ascontiguousarray(array), RAS_TO_LPS @ image.affine)


_NRRD_SPACES = {
    "left-posterior-superior": (1, 1, 1),
    "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1),
    "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1),
    "las": (1, -1, 1),
}


def _read_nrrd(path: Path) -> Volume:
    import nrrd

    try:
        array, header = nrrd.read(str(path))
    except Exception as error:
        raise InputError(str(path), "a readable NRRD file", f"{type(error).__name__}: {error}") from None
    space = str(header.get("space", "")).lower()
    if space not in _NRRD_SPACES or "space directions" not in header:
        raise InputError(
            f"{path}.space", "an anatomical NRRD space (LPS, RAS or LAS) with space directions", space or None
        )
    directions = np.asarray(header["space directions"], dtype=np.float64)
    if array.ndim != 3 or directions.shape != (3, 3) or not np.all(np.isfinite(directions)):
        raise InputError(str(path), "a 3-D scalar NRRD image", f"shape {array.shape}")
    affine = np.eye(4)
    affine[:3, :3] = directions.T  # pynrrd gives one row per axis
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    flip = np.diag([*_NRRD_SPACES[space], 1.0])
    return Volume(np.ascontiguousarray(array), flip @ affine)


def _as_label_array(array: np.ndarray, field: str) -> np.ndarray:
    """Integer labels in the smallest dtype that holds them; non-integer or negative values are an error."""
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(field, "a label map of whole numbers", "non-integer values")
    if array.size and array.min() < 0:
        raise InputError(field, "non-negative label values", int(array.min()))
    top = int(array.max()) if array.size else 0
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    return array.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------- DICOM


def _is_dicom_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _dcmread(path: Path, stop_before_pixels: bool = False):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as error:
        raise InputError(str(path), "a readable DICOM file", f"{type(error).__name__}: {error}") from None


@dataclass
class _Series:
    """Header-only datasets of one series sorted along the slice normal, and the geometry they define."""

    files: list[Path]
    headers: list
    positions: np.ndarray  # (n, 3) ImagePositionPatient in sorted order, LPS mm
    row_direction: np.ndarray  # direction of increasing column index (i)
    column_direction: np.ndarray  # direction of increasing row index (j)
    pixel_spacing: tuple[float, float]  # (along i, along j) mm


def _find_series(folder: Path, series_uid: str | None) -> _Series:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"
    )
    if not files:
        raise InputError(str(folder), "a folder holding DICOM files", "empty")
    groups: dict[str, list[tuple[Path, object]]] = {}
    for file in files:
        header = _dcmread(file, stop_before_pixels=True)
        uid = str(header.get("SeriesInstanceUID", ""))  # empty in some anonymised exports: one group
        groups.setdefault(uid, []).append((file, header))
    if series_uid is None and len(groups) > 1:
        listing = "; ".join(
            f"{uid or '(no SeriesInstanceUID)'} ({items[0][1].get('Modality', '?')}, {len(items)} files"
            f"{', ' + str(items[0][1].SeriesDescription) if items[0][1].get('SeriesDescription') else ''})"
            for uid, items in groups.items()
        )
        raise InputError(str(folder), f"one DICOM series, or --series UID to choose among {len(groups)}: {listing}")
    if series_uid is not None and series_uid not in groups:
        raise InputError("series", f"a SeriesInstanceUID in {folder}: {', '.join(groups)}", series_uid)
    items = groups[series_uid if series_uid is not None else next(iter(groups))]
    first = items[0][1]
    if first.file_meta.get("MediaStorageSOPClassUID") == SEG_SOP_CLASS or first.get("Modality") == "SEG":
        raise InputError(str(folder), "an image series (a DICOM-SEG is read as labels)", "a SEG series")
    for file, header in items:
        if int(header.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(str(file), "single-frame DICOM images (one slice per file)", "a multi-frame file")
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            if keyword not in header:
                raise InputError(f"{file}.{keyword}", "present in every image of the series", "missing")
    orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    for file, header in items:
        if not np.allclose(np.asarray(header.ImageOrientationPatient, dtype=np.float64), orientation, atol=1e-4):
            raise InputError(f"{file}.ImageOrientationPatient", "the same image orientation in every slice")
        if (header.Rows, header.Columns) != (first.Rows, first.Columns):
            raise InputError(f"{file}.Rows", f"{first.Rows}×{first.Columns} pixels like the rest of the series")
        if not np.allclose(np.asarray(header.PixelSpacing, float), np.asarray(first.PixelSpacing, float), atol=1e-4):
            raise InputError(f"{file}.PixelSpacing", "the same pixel spacing in every slice")
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    positions = np.asarray([header.ImagePositionPatient for _, header in items], dtype=np.float64)
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    distances = positions @ normal
    if len(distances) > 1 and np.min(np.diff(distances)) < _POSITION_TOL_MM:
        duplicate = int(np.argmin(np.diff(distances)))
        raise InputError(
            str(items[order[duplicate + 1]][0]),
            "one image per slice position",
            f"a second image at {distances[duplicate + 1]:.3f} mm along the normal",
        )
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)  # DICOM: between rows, between columns
    return _Series(
        files=[items[i][0] for i in order],
        headers=[items[i][1] for i in order],
        positions=positions,
        row_direction=row_direction,
        column_direction=column_direction,
        pixel_spacing=(column_spacing, row_spacing),
    )


def _read_dicom_series(folder: Path, series_uid: str | None) -> Volume:
    series = _find_series(folder, series_uid)
    headers = series.headers
    n = len(headers)
    rows, columns = int(headers[0].Rows), int(headers[0].Columns)
    slopes = [float(h.get("RescaleSlope", 1) or 1) for h in headers]
    intercepts = [float(h.get("RescaleIntercept", 0) or 0) for h in headers]
    dtype = _rescaled_dtype(headers[0], slopes, intercepts)
    array = np.empty((columns, rows, n), dtype=dtype)
    for k, file in enumerate(series.files):
        dataset = _dcmread(file)
        try:
            pixels = dataset.pixel_array
        except Exception as error:  # truncated data, missing decoder, wrong length
            raise InputError(str(file), "decodable pixel data", f"{type(error).__name__}: {error}") from None
        if pixels.shape != (rows, columns):
            raise InputError(str(file), f"one {rows}×{columns} image", f"pixel array of shape {pixels.shape}")
        values = (
            pixels.T * slopes[k] + intercepts[k]
            if dtype == np.float32
            else pixels.T.astype(np.int32) + int(intercepts[k])
        )
        array[:, :, k] = values
    spacing_i, spacing_j = series.pixel_spacing
    normal = np.cross(series.row_direction, series.column_direction)
    distances = series.positions @ normal
    affine = np.eye(4)
    affine[:3, 0] = series.row_direction * spacing_i
    affine[:3, 1] = series.column_direction * spacing_j
    affine[:3, 3] = series.positions[0]
    modality = str(headers[0].get("Modality", ""))
    if n == 1:
        thickness = float(headers[0].get("SpacingBetweenSlices", 0) or headers[0].get("SliceThickness", 0) or 1.0)
        affine[:3, 2] = normal * thickness
        return Volume(array, affine, modality)
    array = _undo_gantry_tilt(array, series, folder)
    steps = np.diff(distances)
    if steps.max() - steps.min() > _SPACING_REL_TOL * np.median(steps):
        array, step = _even_slices(array, distances, folder)
    else:
        step = (distances[-1] - distances[0]) / (n - 1)
    affine[:3, 2] = normal * step
    return Volume(array, affine, modality)


def _rescaled_dtype(header, slopes: list[float], intercepts: list[float]) -> type:
    """int16 when the rescaled values are whole numbers that fit, float32 otherwise."""
    bits = int(header.get("BitsStored", 16))
    signed = int(header.get("PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    whole = all(s == 1 for s in slopes) and all(float(c).is_integer() for c in intercepts)
    fits = min(intercepts) + low >= -(2**15) and max(intercepts) + high < 2**15
    return np.int16 if whole and fits else np.float32


def _undo_gantry_tilt(array: np.ndarray, series: _Series, folder: Path) -> np.ndarray:
    """Shift each slice in its plane so that the stack is orthogonal (a tilted gantry shears the stack).

    With gantry tilt the slice origins drift within the image plane from slice to slice
    (PS3.3 C.7.6.2.1.1: the plane is still given by ImageOrientationPatient). Each slice keeps its plane;
    its pixels are moved by the drift, by linear interpolation, so the volume has an orthogonal affine.
    """
    offsets = series.positions - series.positions[0]
    drift_i = offsets @ series.row_direction / series.pixel_spacing[0]  # in pixels
    drift_j = offsets @ series.column_direction / series.pixel_spacing[1]
    normal_extent = abs(float(offsets[-1] @ np.cross(series.row_direction, series.column_direction)))
    drift_mm = float(np.hypot(offsets[-1] @ series.row_direction, offsets[-1] @ series.column_direction))
    tilt_deg = float(np.degrees(np.arctan2(drift_mm, normal_extent)))
    if tilt_deg < _TILT_TOL_DEG:
        return array
    warnings.warn(
        f"{folder.name}: gantry tilt of {tilt_deg:.2f}° (slice origins drift {drift_mm:.1f} mm in plane); "
        "slices shifted to an orthogonal grid by linear interpolation",
        ImagingWarning,
        stacklevel=4,
    )
    background = float(array.min())
    output = np.empty(array.shape, dtype=np.float32)
    for k in range(array.shape[2]):
        # pixel (i, j) of slice k lies at the orthogonal grid's (i + drift_i, j + drift_j): shift by the drift
        output[:, :, k] = ndimage.shift(
            array[:, :, k].astype(np.float32), (drift_i[k], drift_j[k]), order=1, cval=background
        )
    return output if array.dtype == np.float32 else np.round(output).astype(array.dtype)


def _even_slices(array: np.ndarray, distances: np.ndarray, folder: Path) -> tuple[np.ndarray, float]:
    """Resample unevenly spaced slices to the median spacing (linear along the normal); refuse gaps."""
    steps = np.diff(distances)
    median = float(np.median(steps))
    if steps.max() > 1.5 * median:
        gap = int(np.argmax(steps))
        raise InputError(
            str(folder),
            f"evenly spaced slices (median {median:.3g} mm)",
            f"a {steps[gap]:.3g} mm gap after slice {gap} (missing slices?)",
        )
    count = int(np.floor((distances[-1] - distances[0]) / median + 1e-6)) + 1
    targets = distances[0] + median * np.arange(count)
    warnings.warn(
        f"{folder.name}: uneven slice spacing ({steps.min():.3g}–{steps.max():.3g} mm); "
        f"resampled to {count} slices every {median:.3g} mm by linear interpolation",
        ImagingWarning,
        stacklevel=4,
    )
    fractional = np.interp(targets, distances, np.arange(len(distances)))
    lower = np.minimum(np.floor(fractional).astype(int), len(distances) - 2)
    weight = (fractional - lower).astype(np.float32)
    output = np.empty(array.shape[:2] + (count,), dtype=np.float32)
    for m in range(count):
        output[:, :, m] = (1 - weight[m]) * array[:, :, lower[m]] + weight[m] * array[:, :, lower[m] + 1]
    return (output if array.dtype == np.float32 else np.round(output).astype(array.dtype)), median


# ----------------------------------------------------------------------------------------- DICOM-SEG


def _functional_group(dataset, frame: int, sequence: str):
    """An item of a functional group for one frame: per-frame first, then shared (PS3.3 C.7.6.16)."""
    per_frame = dataset.PerFrameFunctionalGroupsSequence[frame]
    if sequence in per_frame:
        return per_frame[sequence].value[0]
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared and sequence in shared[0]:
        return shared[0][sequence].value[0]
    raise InputError(f"SEG.{sequence}", "present in the per-frame or shared functional groups", "missing")


def _read_dicom_seg(path: Path, reference: Volume | None, resample: bool) -> Volume:
    dataset = _dcmread(path)
    if dataset.file_meta.get("MediaStorageSOPClassUID") != SEG_SOP_CLASS:
        raise InputError(str(path), "a DICOM Segmentation (SEG) file as labels", str(dataset.get("Modality", "?")))
    try:
        frames = dataset.pixel_array
    except Exception as error:
        raise InputError(str(path), "decodable segmentation frames", f"{type(error).__name__}: {error}") from None
    frames = frames.reshape((-1,) + frames.shape[-2:])
    if dataset.SegmentationType == "FRACTIONAL":
        frames = frames >= (int(dataset.MaximumFractionalValue) + 1) // 2
    frames = frames.astype(bool)
    n_frames = frames.shape[0]
    orientation = np.asarray(_functional_group(dataset, 0, "PlaneOrientationSequence").ImageOrientationPatient, float)
    measures = _functional_group(dataset, 0, "PixelMeasuresSequence")
    row_spacing, column_spacing = (float(v) for v in measures.PixelSpacing)
    positions = np.asarray(
        [_functional_group(dataset, f, "PlanePositionSequence").ImagePositionPatient for f in range(n_frames)], float
    )
    segments = np.asarray(
        [
            _functional_group(dataset, f, "SegmentIdentificationSequence").ReferencedSegmentNumber
            for f in range(n_frames)
        ]
    )
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    # The grid the frames define themselves: sorted positions, one slice every SpacingBetweenSlices (or,
    # where it is not declared, the smallest step between distinct positions).
    distances = positions @ normal
    unique = np.unique(np.round(distances / _POSITION_TOL_MM) * _POSITION_TOL_MM)
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
        return _place_frames(frames, positions, segments, affine, Volume(np.zeros(own_shape, np.uint8), affine))
    if labels is None:
        raise InputError(
            str(path), "SEG frames on the pixel grid of the image (or --resample-labels)", "frames off the grid"
        )
    return labels


def _place_frames(frames, positions, segments, frame_affine, target: Volume) -> Volume | None:
    """Write each SEG frame into `target`'s grid; None when frames do not fall exactly on its voxels."""
    to_index = np.linalg.inv(target.affine)
    # one pixel along a frame row, along a column, and one SEG slice must each be one voxel of the target
    steps = [to_index[:3, :3] @ frame_affine[:3, axis] for axis in range(3)]
    if not all(_is_unit_axis(step) for step in steps):
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


def _is_unit_axis(vector: np.ndarray) -> bool:
    rounded = np.round(vector)
    return np.allclose(vector, rounded, atol=1e-3) and np.abs(rounded).sum() == 1


def _onto_reference(labels: Volume, reference: Volume, resample: bool, field: str) -> Volume:
    """Labels on `reference`'s grid: exactly when the grids coincide up to axis order/direction and
    whole-voxel offsets, by nearest neighbour (with a warning) when `resample`, else an `InputError`."""
    if labels.same_grid(reference):
        return labels
    mapping = np.linalg.inv(reference.affine) @ labels.affine
    steps = mapping[:3, :3]
    offset = mapping[:3, 3]
    if all(_is_unit_axis(steps[:, a]) for a in range(3)) and np.allclose(offset, np.round(offset), atol=1e-2):
        placed = np.zeros(reference.shape, dtype=labels.array.dtype)
        axes = [int(np.argmax(np.abs(steps[:, a]))) for a in range(3)]
        if sorted(axes) == [0, 1, 2]:
            index = [
                np.round(offset[axes[a]] + steps[axes[a], a] * np.arange(labels.shape[a])).astype(int) for a in range(3)
            ]
            inside = [(ix >= 0) & (ix < reference.shape[axes[a]]) for a, ix in enumerate(index)]
            kept = labels.array[np.ix_(inside[0], inside[1], inside[2])]
            lost = int(np.count_nonzero(labels.array)) - int(np.count_nonzero(kept))
            if lost:
                raise InputError(field, "labels inside the image's field of view", f"{lost} labelled voxels outside")
            order = np.argsort(axes)  # ref axis r receives label axis order[r]
            target = tuple(index[order[r]][inside[order[r]]] for r in range(3))
            placed[np.ix_(*target)] = np.transpose(kept, order)
            return reference.with_array(placed, modality="SEG")
    if not resample:
        raise InputError(
            field,
            f"a label map on the image grid (shape {list(reference.shape)}, spacing "
            f"{np.round(reference.spacing_mm, 3).tolist()} mm), or explicit resampling",
            f"shape {list(labels.shape)}, spacing {np.round(labels.spacing_mm, 3).tolist()} mm",
        )
    warnings.warn(
        f"{Path(field).name}: label map on another grid, resampled onto the image by nearest neighbour",
        ImagingWarning,
        stacklevel=3,
    )
    return resample_nearest(labels, reference)


def resample_nearest(labels: Volume, reference: Volume) -> Volume:
    """`labels` sampled at the voxel centres of `reference` by nearest neighbour (0 outside)."""
    to_index = np.linalg.inv(labels.affine) @ reference.affine
    ni, nj, nk = reference.shape
    grid_i, grid_j = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    output = np.zeros(reference.shape, dtype=labels.array.dtype)
    bounds = np.asarray(labels.shape)[:, None, None]
    for k in range(nk):
        index = np.floor(  # round half up, the same way everywhere (np.round rounds half to even)
            np.einsum("ab,bij->aij", to_index[:3, :3], np.stack([grid_i, grid_j, np.full_like(grid_i, k)]))
            + to_index[:3, 3][:, None, None]
            + 0.5
        ).astype(np.int64)
        inside = np.all((index >= 0) & (index < bounds), axis=0)
        output[:, :, k][inside] = labels.array[index[0][inside], index[1][inside], index[2][inside]]
    return reference.with_array(output, modality="SEG")


# -------------------------------------------------------------------------------------------- write


def write_nifti(volume: Volume, path: str | Path) -> None:
    """Write a NIfTI-1 file (``.nii`` or ``.nii.gz``), converting LPS to NIfTI's RAS; atomic.

    qform and sform both hold the affine (code 1, scanner anatomical), so every reader agrees.
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(str(path), "an output path ending in .nii or .nii.gz", path.name)
    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    affine = RAS_TO_LPS @ volume.affine  # the flip is its own inverse
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    data = image.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def derived_uid(*parts: object) -> str:
    """A UID in the 2.25 (UUID-derived) form computed from a hash of `parts` (PS3.5 B.2): the same
    inputs give the same UID, different inputs different ones with overwhelming probability."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    seed: int = 0,
    patient_name: str = "Phantom^Cryoplan",
    patient_id: str = "CRYOPLAN-PHANTOM",
    series_description: str = "cryoplan volume",
    study_uid: str | None = None,
) -> str:
    """Write a volume as a single-frame CT (or MR) image series, one uncompressed file per k slice.

    Each slice gets ImagePositionPatient = affine @ (0, 0, k), ImageOrientationPatient from the i and j
    columns, so a sheared affine writes a series with gantry tilt. CT values are stored as unsigned
    16-bit with RescaleIntercept -1024 (values are rounded and clipped to [-1024, 64511]).

    Parameters
    ----------
    seed : int
        Enters the UIDs, which are derived from it and from the volume's content: the same volume and
        seed give the same files; the study UID depends on the seed alone, so series written with one
        seed share a study.

    Returns
    -------
    str
        The SeriesInstanceUID written.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    spacing = volume.spacing_mm
    direction = volume.direction
    modality = volume.modality if volume.modality in ("CT", "MR") else "CT"
    sop_class = CT_SOP_CLASS if modality == "CT" else MR_SOP_CLASS
    study_uid = study_uid or derived_uid("study", seed)
    content = hashlib.sha256(memoryview(np.ascontiguousarray(volume.array)).cast("B"))
    content.update(volume.affine.tobytes())
    series_uid = derived_uid("series", seed, content.hexdigest())
    frame_uid = derived_uid("frame-of-reference", seed)
    intercept = -1024 if modality == "CT" else 0
    stored = np.clip(np.round(volume.array.astype(np.float64)) - intercept, 0, 65535).astype(np.uint16)
    thickness = float(abs(volume.affine[:3, 2] @ np.cross(direction[:, 0], direction[:, 1])))
    with atomic_directory(folder) as tmp:
        for k in range(volume.shape[2]):
            meta = FileMetaDataset()
            sop_uid = derived_uid("instance", series_uid, k)
            meta.MediaStorageSOPClassUID = sop_class
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = pydicom.Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            ds.PatientName, ds.PatientID = patient_name, patient_id
            ds.PatientBirthDate, ds.PatientSex = "", "O"
            ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "20260101", "120000", "", ""
            ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1 + seed % 1000, k + 1
            ds.Modality, ds.SeriesDescription, ds.Manufacturer = modality, series_description, "cryoplan"
            ds.PositionReferenceIndicator = ""
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
            ds.ImagePositionPatient = [float(v) for v in volume.index_to_lps([0, 0, k])]
            ds.ImageOrientationPatient = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
            ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # between rows (j), between columns (i)
            ds.SliceThickness = thickness
            ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, 1, "HU" if modality == "CT" else "US"
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
            ds.save_as(tmp / f"{modality}.{sop_uid}.dcm", enforce_file_format=True)
    return series_uid


_STRUCTURE_CODES = {
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
}


def write_dicom_seg(
    masks: dict[str, np.ndarray],
    source: str | Path,
    path: str | Path,
    description: str,
    series_uid: str | None = None,
) -> None:
    """Write binary masks as a DICOM Segmentation whose frames reference the source series' images.

    Parameters
    ----------
    masks : dict of str to numpy.ndarray
        Segment label → boolean array on the grid of the source series as `read_volume` returns it.
        Known structure names get their SNOMED CT type; others (isotherms, ablation zones) the generic
        type "Tissue" with the name as SegmentLabel.
    source : str or Path
        Folder of the DICOM series the masks were drawn on.
    path : str or Path
        Output ``.dcm`` file (written atomically).
    description : str
        SeriesDescription of the SEG.
    series_uid : str, optional
        SeriesInstanceUID of the source when its folder holds several series.

    References
    ----------
    DICOM PS3.3 A.51 (Segmentation IOD), built with highdicom (Herrmann et al., J Digit Imaging 2022).
    """
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    from cryoplan import __version__

    if not masks:
        raise InputError("masks", "at least one mask to write", "none")
    source = Path(source)
    if not source.is_dir():
        raise InputError(str(source), "the folder of the source DICOM series", "not a folder")
    series = _find_series(source, series_uid)
    shape = (int(series.headers[0].Columns), int(series.headers[0].Rows), len(series.files))
    for name, mask in masks.items():
        if np.shape(mask) != shape:
            raise InputError(
                f"masks.{name}", f"a mask of shape {list(shape)} (the source series grid)", list(np.shape(mask))
            )
    if not _plain_stack(series):
        raise InputError(str(source), "a source series without gantry tilt or uneven spacing for DICOM-SEG export")
    images = [_dcmread(file) for file in series.files]
    pixel_array = np.stack(
        [np.stack([np.asarray(mask, bool)[:, :, k].T for k in range(shape[2])]) for mask in masks.values()], axis=-1
    )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="cryoplan", version=__version__, family=CodedConcept("123109", "DCM", "Manual Processing")
    )
    descriptions = []
    for number, name in enumerate(masks, start=1):
        code, meaning = _STRUCTURE_CODES.get(name, ("85756007", "Tissue"))
        category = (
            ("49755003", "Morphologically abnormal structure")
            if name == "tumour"
            else ("91723000", "Anatomical structure")
        )
        if name not in _STRUCTURE_CODES:
            category = ("85756007", "Tissue")
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=CodedConcept(category[0], "SCT", category[1]),
                segmented_property_type=CodedConcept(code, "SCT", meaning),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
    source_uid = str(series.headers[0].SeriesInstanceUID)
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixel_array.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=derived_uid("seg-series", source_uid, description, *masks),
        series_number=900,
        sop_instance_uid=derived_uid("seg-instance", source_uid, description, *masks),
        instance_number=1,
        manufacturer="cryoplan",
        manufacturer_model_name="cryoplan",
        software_versions=__version__,
        device_serial_number="0",
        series_description=description[:64],
        omit_empty_frames=False,
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)


def _plain_stack(series: _Series) -> bool:
    """True when slices are evenly spaced along the normal with no in-plane drift (no resampling)."""
    if len(series.files) < 2:
        return True
    offsets = series.positions - series.positions[0]
    normal = np.cross(series.row_direction, series.column_direction)
    inplane = offsets - np.outer(offsets @ normal, normal)
    steps = np.diff(series.positions @ normal)
    return bool(np.abs(inplane).max() < 1e-2 and steps.max() - steps.min() <= _SPACING_REL_TOL * np.median(steps))
