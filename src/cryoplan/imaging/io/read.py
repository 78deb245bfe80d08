"""Reading any supported image or label file into a `Volume`: the format is chosen by name or content."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from cryoplan.errors import InputError
from cryoplan.imaging.io.common import ImagingWarning, is_dicom_file, is_unit_axis, label_array
from cryoplan.imaging.io.dicom_seg import dicom_segment_numbers, read_dicom_seg
from cryoplan.imaging.io.dicom_series import read_dicom_series
from cryoplan.imaging.io.nifti import read_nifti
from cryoplan.imaging.io.nrrd import read_nrrd
from cryoplan.imaging.io.slicer import is_slicer_segmentation, read_slicer_segmentation, slicer_segment_numbers
from cryoplan.imaging.volume import Volume


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
        volume = read_dicom_series(path, series_uid)
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
        raise InputError(str(path), "an existing label file (NIfTI, NRRD, Slicer .seg.nrrd or DICOM-SEG)", "not found")
    if is_dicom_file(path):
        labels = read_dicom_seg(path, reference, resample)
    elif is_slicer_segmentation(path):
        labels, _ = read_slicer_segmentation(path)
    else:
        image = _read_file(path)
        labels = image.with_array(label_array(image.array, str(path)), modality="SEG")
    if reference is not None:
        labels = _onto_reference(labels, reference, resample, str(path))
    return labels


def segment_label_map(path: str | Path) -> dict[str, int]:
    """Segment name → label value of a DICOM-SEG or Slicer ``.seg.nrrd`` file, as `read_labels` numbers them.

    Segments coded with the SNOMED CT type of a known structure are named by their code (so "Leber" coded
    10200004 is "liver"); others by the label or name their author gave them.
    """
    path = Path(path)
    if path.is_file() and is_dicom_file(path):
        return dicom_segment_numbers(path)
    if path.is_file() and is_slicer_segmentation(path):
        return slicer_segment_numbers(path)
    raise InputError(str(path), "a DICOM-SEG or Slicer .seg.nrrd file")


def _read_file(path: Path) -> Volume:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path)
    if name.endswith((".nrrd", ".nhdr")):
        return read_nrrd(path)
    if is_dicom_file(path):
        raise InputError(str(path), "the folder of the DICOM series, not one of its files (or a DICOM-SEG as labels)")
    raise InputError(str(path), "a .nii, .nii.gz, .nrrd or .nhdr file, or a DICOM folder", path.suffix or path.name)


def _onto_reference(labels: Volume, reference: Volume, resample: bool, field: str) -> Volume:
    """Labels on `reference`'s grid: exactly when the grids coincide up to axis order/direction and
    whole-voxel offsets, by nearest neighbour (with a warning) when `resample`, else an `InputError`."""
    if labels.same_grid(reference):
        return labels
    mapping = np.linalg.inv(reference.affine) @ labels.affine
    steps = mapping[:3, :3]
    offset = mapping[:3, 3]
    if all(is_unit_axis(steps[:, a]) for a in range(3)) and np.allclose(offset, np.round(offset), atol=1e-2):
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
    return labels.resampled(reference.shape, reference.affine)
