"""Set 02's label map with a tumour of its own, for the browser tests: set 02 has none, so a sphere is written
at the deepest point of its liver label, and the skeleton's many TotalSegmentator labels become one."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from cryoplan.imaging.anatomy import PRESETS

TUMOUR_DIAMETER_MM = 22.0
TUMOUR_LABEL = 200
BONE_LABEL = 25
LABELS_MAP = {
    "liver": 5,
    "tumour": TUMOUR_LABEL,
    "gallbladder": 4,
    "aorta": 52,
    "ivc": 63,
    "portal_vein": 64,
    "bone": BONE_LABEL,
}


def labels_with_tumour(labels_path, out_path) -> int:
    """Set 02's label map with a spherical tumour at the deepest point of its liver; returns its voxels."""
    image = nib.load(labels_path)
    labels = np.asarray(image.dataobj).astype(np.uint8)
    spacing = np.asarray(image.header.get_zooms()[:3], dtype=float)
    liver = labels == LABELS_MAP["liver"]
    # Depth below the liver's surface, counting the edge of the image as surface too.
    depth = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    centre = np.unravel_index(int(np.argmax(depth)), depth.shape)
    radius = TUMOUR_DIAMETER_MM / 2
    assert depth[centre] > radius + 5.0, "the sphere and its margin would not fit inside the liver"
    offsets = (np.indices(labels.shape).T - np.array(centre)).T * spacing[:, None, None, None]
    tumour = np.linalg.norm(offsets, axis=0) <= radius
    assert liver[tumour].all()
    out = labels.copy()
    out[np.isin(out, PRESETS["totalsegmentator"]["bone"])] = BONE_LABEL
    out[tumour] = TUMOUR_LABEL
    nib.save(nib.Nifti1Image(out, image.affine, image.header), out_path)
    return int(tumour.sum())
