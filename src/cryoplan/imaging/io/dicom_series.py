"""DICOM image series in and out.

A series is sorted by slice position along the normal of its image plane (PS3.3 C.7.6.2), never by
InstanceNumber. Gantry tilt and uneven slices are resampled to an orthogonal, even grid with an
`ImagingWarning`.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging.io.common import (
    CT_SOP_CLASS,
    ENHANCED_CT_SOP_CLASS,
    ENHANCED_MR_SOP_CLASS,
    MR_SOP_CLASS,
    POSITION_TOL_MM,
    SEG_SOP_CLASS,
    SPACING_REL_TOL,
    TILT_TOL_DEG,
    ImagingWarning,
    dcmread,
    derived_uid,
    functional_group,
)
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_directory


@dataclass
class Series:
    """Header-only datasets of one series sorted along the slice normal, and the geometry they define."""

    files: list[Path]
    headers: list[Dataset]
    positions: np.ndarray  # (n, 3) ImagePositionPatient in sorted order, LPS mm
    row_direction: np.ndarray  # direction of increasing column index (i)
    column_direction: np.ndarray  # direction of increasing row index (j)
    pixel_spacing: tuple[float, float]  # (along i, along j) mm
    frames: np.ndarray | None = None  # an enhanced multi-frame image: its frame indices in sorted order


#: ImageType values that mark an image outside the volume: a localizer (scout), a screen capture, a
#: dose report page (PS3.3 C.7.6.1.1.2 and C.8.2.1.1.1).
EXCLUDED_IMAGE_TYPES = ("LOCALIZER", "SCOUT", "SCREEN SAVE", "DOSE_INFO", "DOSE REPORT")

#: SOP classes read as image slices or frames: CT, MR, Enhanced CT, Enhanced MR, Legacy Converted Enhanced CT/MR.
IMAGE_SOP_CLASSES = (
    CT_SOP_CLASS,
    MR_SOP_CLASS,
    ENHANCED_CT_SOP_CLASS,
    ENHANCED_MR_SOP_CLASS,
    "1.2.840.10008.5.1.4.1.1.2.2",
    "1.2.840.10008.5.1.4.1.1.4.4",
)


def repair_uids(dataset: pydicom.Dataset) -> list[str]:
    """Fill UIDs that are missing or empty, in place; returns the keywords repaired.

    SOPClassUID and SOPInstanceUID are copied from the file meta (PS3.10 7.1: MediaStorageSOPClassUID and
    MediaStorageSOPInstanceUID hold the same values). A study or series UID, which the file meta does not
    carry, is derived from attributes every file of the series shares (frame of reference, study date and
    time, series number and description), so every file gets the same one and a SEG written on the series
    references what a second reading derives.
    """
    repaired = []
    meta = getattr(dataset, "file_meta", None) or {}
    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        value = str(meta.get(meta_keyword, "") or "")
        if not str(dataset.get(keyword, "") or "") and value:
            setattr(dataset, keyword, value)
            repaired.append(keyword)
    shared = [str(dataset.get(k, "") or "") for k in ("FrameOfReferenceUID", "PatientID", "StudyDate", "StudyTime")]
    if not str(dataset.get("StudyInstanceUID", "") or ""):
        dataset.StudyInstanceUID = derived_uid("study", *shared)
        repaired.append("StudyInstanceUID")
    if not str(dataset.get("SeriesInstanceUID", "") or ""):
        dataset.SeriesInstanceUID = derived_uid(
            "series",
            dataset.StudyInstanceUID,
            *shared,
            *(str(dataset.get(k, "") or "") for k in ("Modality", "SeriesNumber", "SeriesDescription", "SeriesTime")),
        )
        repaired.append("SeriesInstanceUID")
    return repaired


def _image_files(folder: Path) -> list[Path]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"
    )
    if not files:
        raise InputError(str(folder), "a folder holding DICOM files", "empty")
    return files


def _excluded_image_type(header: pydicom.Dataset) -> str | None:
    values = header.get("ImageType") or []
    values = [str(v).upper() for v in ([values] if isinstance(values, str) else values)]
    return next((v for v in values if v in EXCLUDED_IMAGE_TYPES), None)


def _is_axial(header: pydicom.Dataset) -> bool:
    orientation = header.get("ImageOrientationPatient")
    if orientation is None and "SharedFunctionalGroupsSequence" in header:
        shared = header.SharedFunctionalGroupsSequence[0]
        if "PlaneOrientationSequence" in shared:
            orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    if orientation is None or len(orientation) != 6:
        return False
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    return bool(abs(normal[2]) > 0.9)


def find_series(folder: Path, series_uid: str | None) -> Series:
    """The series of `folder` to read, with its slices sorted along the normal and checked.

    Files of other SOP classes (SEG, SR, presentation states) and images whose ImageType marks them as
    outside the volume (localizers, screen saves) are left out with an `ImagingWarning`; so are UIDs
    repaired by `repair_uids`. With several series and none chosen, the largest axial one is read (with a
    note naming the others).
    """
    groups: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    left_out: dict[str, int] = {}
    repaired: set[str] = set()
    seg_only = True
    for file in _image_files(folder):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            header = dcmread(file, stop_before_pixels=True)
        sop_class = str(header.file_meta.get("MediaStorageSOPClassUID", "") or header.get("SOPClassUID", ""))
        if not sop_class:
            # Every DICOM object names its SOP class (Type 1, PS3.3 C.12.1): without one the file is corrupt,
            # not a non-image object, and leaving it out would drop a slice unseen.
            reason = "; ".join(dict.fromkeys(str(w.message) for w in caught)) or "no SOP Class UID"
            raise InputError(str(file), "a readable DICOM file", reason)
        for warning in caught:  # pydicom's notes on a readable file, passed on as they came
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if sop_class not in IMAGE_SOP_CLASSES:
            seg_only = seg_only and (sop_class == SEG_SOP_CLASS or header.get("Modality") == "SEG")
            left_out["non-image objects"] = left_out.get("non-image objects", 0) + 1
            continue
        seg_only = False
        excluded = _excluded_image_type(header)
        if excluded:
            left_out[f"{excluded} images"] = left_out.get(f"{excluded} images", 0) + 1
            continue
        required = (
            ("PerFrameFunctionalGroupsSequence",)
            if int(header.get("NumberOfFrames", 1) or 1) > 1
            else ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
        )
        for keyword in required:  # checked in every image, whichever series is read: a truncated file shows here
            if keyword not in header:
                raise InputError(f"{file}.{keyword}", "present in every image of the series", "missing")
        repaired.update(repair_uids(header))
        groups.setdefault(str(header.SeriesInstanceUID), []).append((file, header))
    if not groups:
        if seg_only:
            raise InputError(str(folder), "an image series (a DICOM-SEG is read as labels)", "a SEG series")
        raise InputError(str(folder), "CT or MR images", ", ".join(f"{n} {kind}" for kind, n in left_out.items()))
    if left_out:
        warnings.warn(
            f"{folder.name}: left out " + ", ".join(f"{n} {kind}" for kind, n in left_out.items()),
            ImagingWarning,
            stacklevel=4,
        )
    if repaired:
        warnings.warn(
            f"{folder.name}: empty or missing {', '.join(sorted(repaired))} repaired "
            "(SOP UIDs from the file meta, study and series UIDs derived from shared attributes)",
            ImagingWarning,
            stacklevel=4,
        )
    if series_uid is not None and series_uid not in groups:
        raise InputError("series", f"a SeriesInstanceUID in {folder}: {', '.join(groups)}", series_uid)
    if series_uid is None and len(groups) > 1:
        ranked = sorted(groups, key=lambda uid: (_is_axial(groups[uid][0][1]), len(groups[uid])), reverse=True)
        series_uid = ranked[0]
        others = "; ".join(
            f"{uid} ({groups[uid][0][1].get('Modality', '?')}, {len(groups[uid])} files"
            f"{', ' + str(groups[uid][0][1].SeriesDescription) if groups[uid][0][1].get('SeriesDescription') else ''})"
            for uid in ranked[1:]
        )
        warnings.warn(
            f"{folder.name}: {len(groups)} series; reading the largest axial one, {series_uid} "
            f"({len(groups[series_uid])} files); the others: {others}",
            ImagingWarning,
            stacklevel=4,
        )
    items = groups[series_uid if series_uid is not None else next(iter(groups))]
    if len(items) == 1 and int(items[0][1].get("NumberOfFrames", 1) or 1) > 1:
        return _enhanced_series(*items[0])
    first = items[0][1]
    for file, header in items:
        if int(header.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(str(file), "one multi-frame image or single-frame images, not both", "a multi-frame file")
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
    if len(distances) > 1 and np.min(np.diff(distances)) < POSITION_TOL_MM:
        duplicate = int(np.argmin(np.diff(distances)))
        raise InputError(
            str(items[order[duplicate + 1]][0]),
            "one image per slice position",
            f"a second image at {distances[duplicate + 1]:.3f} mm along the normal",
        )
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)  # DICOM: between rows, between columns
    return Series(
        files=[items[i][0] for i in order],
        headers=[items[i][1] for i in order],
        positions=positions,
        row_direction=row_direction,
        column_direction=column_direction,
        pixel_spacing=(column_spacing, row_spacing),
    )


def _enhanced_series(file: Path, header: pydicom.Dataset) -> Series:
    """The geometry of an enhanced (multi-frame) CT or MR image from its functional groups (PS3.3 C.7.6.16)."""
    if "PerFrameFunctionalGroupsSequence" not in header:
        raise InputError(str(file), "an enhanced multi-frame image with per-frame functional groups", "none")
    n = int(header.NumberOfFrames)
    orientations = np.asarray(
        [functional_group(header, f, "PlaneOrientationSequence").ImageOrientationPatient for f in range(n)], float
    )
    if not np.allclose(orientations, orientations[0], atol=1e-4):
        raise InputError(f"{file}.ImageOrientationPatient", "the same image orientation in every frame")
    positions = np.asarray(
        [functional_group(header, f, "PlanePositionSequence").ImagePositionPatient for f in range(n)], float
    )
    spacing = np.asarray([functional_group(header, f, "PixelMeasuresSequence").PixelSpacing for f in range(n)], float)
    if not np.allclose(spacing, spacing[0], atol=1e-4):
        raise InputError(f"{file}.PixelSpacing", "the same pixel spacing in every frame")
    row_direction, column_direction = orientations[0, :3], orientations[0, 3:]
    distances = positions @ np.cross(row_direction, column_direction)
    order = np.argsort(distances, kind="stable")
    if n > 1 and np.min(np.diff(distances[order])) < POSITION_TOL_MM:
        raise InputError(
            str(file), "one frame per slice position (a single 3-D stack)", "several frames at one position"
        )
    return Series(
        files=[file] * n,
        headers=[header] * n,
        positions=positions[order],
        row_direction=row_direction,
        column_direction=column_direction,
        pixel_spacing=(float(spacing[0, 1]), float(spacing[0, 0])),
        frames=order,
    )


def _rescale(series: Series) -> tuple[list[float], list[float]]:
    """RescaleSlope and RescaleIntercept of each slice, in sorted order (per frame for enhanced images)."""
    if series.frames is None:
        headers = series.headers
    else:
        header = series.headers[0]
        headers = []
        for f in series.frames:
            try:
                headers.append(functional_group(header, int(f), "PixelValueTransformationSequence"))
            except InputError:  # Enhanced MR may store no rescale: values as stored
                headers.append(pydicom.Dataset())
    slopes = [float(h.get("RescaleSlope", 1) or 1) for h in headers]
    intercepts = [float(h.get("RescaleIntercept", 0) or 0) for h in headers]
    return slopes, intercepts


def _slices(series: Series) -> Iterator[tuple[Path, NDArray[np.integer[Any] | np.floating[Any]]]]:
    """Each slice's stored pixel array (rows, columns) with its file, in sorted order."""
    if series.frames is not None:
        dataset = dcmread(series.files[0])
        try:
            pixels = dataset.pixel_array
        except Exception as error:  # truncated data, missing decoder, wrong length
            raise InputError(str(series.files[0]), "decodable pixel data", f"{type(error).__name__}: {error}") from None
        pixels = pixels.reshape((-1,) + pixels.shape[-2:])
        for f in series.frames:
            yield series.files[0], pixels[int(f)]
        return
    for file in series.files:
        dataset = dcmread(file)
        try:
            yield file, dataset.pixel_array
        except Exception as error:  # truncated data, missing decoder, wrong length
            raise InputError(str(file), "decodable pixel data", f"{type(error).__name__}: {error}") from None


def read_dicom_series(folder: Path, series_uid: str | None) -> Volume:
    series = find_series(folder, series_uid)
    headers = series.headers
    n = len(headers)
    rows, columns = int(headers[0].Rows), int(headers[0].Columns)
    slopes, intercepts = _rescale(series)
    dtype = _rescaled_dtype(headers[0], slopes, intercepts)
    array: NDArray[np.int16 | np.float32] = np.empty((columns, rows, n), dtype=dtype)
    for k, (file, pixels) in enumerate(_slices(series)):
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
        return Volume(array, affine, modality, str(headers[0].SeriesInstanceUID))
    array = _undo_gantry_tilt(array, series, folder)
    steps = np.diff(distances)
    if steps.max() - steps.min() > SPACING_REL_TOL * np.median(steps):
        array, step = _even_slices(array, distances, folder)
    else:
        step = (distances[-1] - distances[0]) / (n - 1)
    affine[:3, 2] = normal * step
    return Volume(array, affine, modality, str(headers[0].SeriesInstanceUID))


def _rescaled_dtype(header: Dataset, slopes: list[float], intercepts: list[float]) -> type[np.int16] | type[np.float32]:
    """int16 when the rescaled values are whole numbers that fit, float32 otherwise."""
    bits = int(header.get("BitsStored", 16))
    signed = int(header.get("PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    whole = all(s == 1 for s in slopes) and all(float(c).is_integer() for c in intercepts)
    fits = min(intercepts) + low >= -(2**15) and max(intercepts) + high < 2**15
    return np.int16 if whole and fits else np.float32


def _undo_gantry_tilt(array: np.ndarray, series: Series, folder: Path) -> np.ndarray:
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
    if tilt_deg < TILT_TOL_DEG:
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
    spacing = volume.spacing_mm
    direction = volume.direction
    modality = volume.modality if volume.modality in ("CT", "MR") else "CT"
    sop_class = CT_SOP_CLASS if modality == "CT" else MR_SOP_CLASS
    study_uid = study_uid or derived_uid("study", seed)
    content = hashlib.sha256(np.ascontiguousarray(volume.array).data.cast("B"))
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
            meta.MediaStorageSOPClassUID = UID(sop_class)
            meta.MediaStorageSOPInstanceUID = UID(sop_uid)
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


def plain_stack(series: Series) -> bool:
    """True when slices are evenly spaced along the normal with no in-plane drift (no resampling)."""
    if len(series.files) < 2:
        return True
    offsets = series.positions - series.positions[0]
    normal = np.cross(series.row_direction, series.column_direction)
    inplane = offsets - np.outer(offsets @ normal, normal)
    steps = np.diff(series.positions @ normal)
    return bool(np.abs(inplane).max() < 1e-2 and steps.max() - steps.min() <= SPACING_REL_TOL * np.median(steps))


def source_datasets(series: Series) -> list[pydicom.Dataset]:
    """Full datasets of the series' images in slice order, ready to be referenced by a derived object.

    UIDs are repaired as on reading (`repair_uids`), and an empty SpecificCharacterSet, which means the
    default repertoire, is dropped: derived objects copy it, and an empty value is not a defined term
    (PS3.3 C.12.1.1.2).
    """
    datasets = []
    for file in dict.fromkeys(series.files):
        dataset = dcmread(file)
        repair_uids(dataset)
        if "SpecificCharacterSet" in dataset and not dataset.SpecificCharacterSet:
            del dataset.SpecificCharacterSet
        datasets.append(dataset)
    return datasets
