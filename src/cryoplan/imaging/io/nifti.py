"""NIfTI-1/2 in and out. NIfTI's world is RAS; the `Volume` world LPS, so x and y flip here."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from cryoplan.errors import InputError
from cryoplan.imaging.io.common import RAS_TO_LPS, ImagingWarning
from cryoplan.imaging.volume import Volume
from cryoplan.output import atomic_path


def read_nifti(path: Path) -> Volume:
    """A 3-D NIfTI image in LPS; warns when qform and sform disagree or neither is set."""
    try:
        image = nib.load(str(path))
        if not isinstance(image, nib.Nifti1Image):  # NIfTI-2 images are NIfTI-1 images to nibabel
            raise TypeError(f"a {type(image).__name__}")
        array = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises several types for truncated or foreign files
        raise InputError(str(path), "a readable NIfTI file", f"{type(error).__name__}: {error}") from None
    header = image.header
    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    qform = image.get_qform()  # type: ignore[no-untyped-call]  # nibabel leaves it unannotated
    sform = image.get_sform()  # type: ignore[no-untyped-call]  # as get_qform
    if qform_code > 0 and sform_code > 0 and not np.allclose(qform, sform, atol=1e-3):
        warnings.warn(
            f"{path.name}: qform and sform disagree by up to {np.abs(qform - sform).max():.3g} mm; using the sform",
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


def write_nifti(volume: Volume, path: str | Path) -> None:
    """Write a NIfTI-1 file (``.nii`` or ``.nii.gz``), converting LPS to NIfTI's RAS; atomic.

    qform and sform both hold the affine (code 1, scanner anatomical), so every reader agrees; spatial
    units are millimetres.
    """
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(str(path), "an output path ending in .nii or .nii.gz", path.name)
    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    affine = RAS_TO_LPS @ volume.affine  # the flip is its own inverse
    # nibabel leaves these methods unannotated
    image = nib.Nifti1Image(array, affine)  # type: ignore[no-untyped-call]
    image.set_qform(affine, code=1)  # type: ignore[no-untyped-call]
    image.set_sform(affine, code=1)  # type: ignore[no-untyped-call]
    image.header.set_xyzt_units("mm", "sec")  # type: ignore[no-untyped-call]
    data = image.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
