"""cryoplan.imaging: images and segmentations in (DICOM, NIfTI, NRRD, DICOM-SEG), anatomy and lesion
measurements out, in millimetres of the DICOM patient frame (LPS).

Does not import `cryoplan.clinical` or `cryoplan.thermal`: imaging, clinical and thermal do not know about each
other (the import contract in pyproject.toml).
"""

from cryoplan.imaging.io import (
    ImagingWarning,
    read_labels,
    read_volume,
    segment_label_map,
    write_dicom_seg,
    write_dicom_series,
    write_nifti,
)
from cryoplan.imaging.volume import Volume

__all__ = [
    "ImagingWarning",
    "Volume",
    "read_labels",
    "read_volume",
    "segment_label_map",
    "write_dicom_seg",
    "write_dicom_series",
    "write_nifti",
]
