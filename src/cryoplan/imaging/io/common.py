"""What every format module shares: the RAS/LPS flip, the reader warning, label arrays, DICOM file tests and
derived UIDs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from cryoplan.errors import InputError

#: NIfTI world is RAS, the Volume world LPS: flip x and y (and back).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4.1"

#: Tolerances: a slice-position spread below this is one position (mm); a relative spacing variation
#: below this is even; a tilt below this angle (degrees) is none.
POSITION_TOL_MM = 1e-3
SPACING_REL_TOL = 0.01
TILT_TOL_DEG = 0.05


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


def label_array(array: np.ndarray, field: str) -> np.ndarray:
    """Integer labels in the smallest dtype that holds them; non-integer or negative values are an error."""
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise InputError(field, "a label map of whole numbers", "NaN or infinity")
        if not np.array_equal(array, np.round(array)):
            raise InputError(field, "a label map of whole numbers", "non-integer values")
    if array.size and array.min() < 0:
        raise InputError(field, "non-negative label values", int(array.min()))
    top = int(array.max()) if array.size else 0
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    return array.astype(dtype, copy=False)


def is_unit_axis(vector: np.ndarray) -> bool:
    """True when `vector` is ± one voxel along exactly one axis."""
    rounded = np.round(vector)
    return bool(np.allclose(vector, rounded, atol=1e-3) and np.abs(rounded).sum() == 1)


def is_dicom_file(path: Path) -> bool:
    """True when the file starts with the DICOM preamble and "DICM" prefix (PS3.10 7.1)."""
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def dcmread(path: Path, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """A DICOM file read by pydicom; anything unreadable is an `InputError` naming the file."""
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as error:  # pydicom raises many types for truncated or foreign files
        raise InputError(str(path), "a readable DICOM file", f"{type(error).__name__}: {error}") from None


def derived_uid(*parts: object) -> str:
    """A UID in the 2.25 (UUID-derived) form computed from a hash of `parts` (PS3.5 B.2): the same
    inputs give the same UID, different inputs different ones with overwhelming probability."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def functional_group(dataset: Dataset, frame: int, sequence: str) -> Dataset:
    """An item of a functional group for one frame: per-frame first, then shared (PS3.3 C.7.6.16)."""
    per_frame: Dataset = dataset.PerFrameFunctionalGroupsSequence[frame]
    item: Dataset
    if sequence in per_frame:
        item = per_frame[sequence].value[0]
        return item
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared and sequence in shared[0]:
        item = shared[0][sequence].value[0]
        return item
    raise InputError(f"SEG.{sequence}", "present in the per-frame or shared functional groups", "missing")
