"""Reading and writing images and segmentations: DICOM series, NIfTI, NRRD and DICOM-SEG, all into the one
`Volume` convention of `cryoplan.imaging.volume` (array ``[i, j, k]``, affine from voxel index to LPS
millimetres), one module per format.

Orientation is converted here and nowhere else: NIfTI stores RAS world coordinates (x to the patient's
Right is negative in LPS), NRRD names its space, DICOM gives the patient position and orientation of each
slice (PS3.3 C.7.6.2).

Readers warn with `ImagingWarning` when they change or doubt the geometry (gantry tilt resampled, uneven
slices resampled, qform/sform disagreement, labels resampled), and raise `InputError` naming the file when
the input cannot be used as it is.
"""

from cryoplan.imaging.io.common import (
    CT_SOP_CLASS,
    MR_SOP_CLASS,
    RAS_TO_LPS,
    SEG_SOP_CLASS,
    ImagingWarning,
    derived_uid,
    orientation_code,
)
from cryoplan.imaging.io.dicom_pmap import write_temperature_map
from cryoplan.imaging.io.dicom_seg import write_dicom_seg
from cryoplan.imaging.io.dicom_series import write_dicom_series
from cryoplan.imaging.io.nifti import write_nifti
from cryoplan.imaging.io.read import read_labels, read_volume, segment_label_map
from cryoplan.imaging.io.slicer import write_nrrd, write_probe_markups, write_slicer_segmentation

__all__ = [
    "CT_SOP_CLASS",
    "MR_SOP_CLASS",
    "RAS_TO_LPS",
    "SEG_SOP_CLASS",
    "ImagingWarning",
    "derived_uid",
    "orientation_code",
    "read_labels",
    "read_volume",
    "segment_label_map",
    "write_dicom_seg",
    "write_dicom_series",
    "write_nifti",
    "write_nrrd",
    "write_probe_markups",
    "write_slicer_segmentation",
    "write_temperature_map",
]
