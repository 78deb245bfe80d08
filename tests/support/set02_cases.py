"""Cases on the real CT of set 02 (TotalSegmentator's 3 mm upper-abdominal crop) with synthetic tumours painted
into its liver: the set has organ labels but no tumour of its own.

Each site is a ball of liver chosen by a rule on the labels, not by hand: under the lung at the highest level
the ball fits in the liver, beside the inferior vena cava, beside the gallbladder. The tumour is written as a
mask next to the case file; the organs come from the TotalSegmentator label map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from scipy import ndimage

from cryoplan.imaging.io import read_volume, write_nifti
from cryoplan.imaging.volume import Volume

SET = "02_totalseg_ct_sm_vessels"
IMAGE = "example_ct_sm.nii.gz"
LABELS = "example_seg.nii.gz"
LIVER, GALLBLADDER, IVC = 5, 4, 63
LUNG = (10, 11, 12, 13, 14)
# The clinical part of the case (a Child-Pugh A patient with a small HCC).
CLINICAL = {
    "patient": {"age": 62, "sex": "male", "ecog": 0},
    "diagnosis": {
        "type": "hcc",
        "cirrhosis": True,
        "liver_disease": "hcv",
        "vascular_invasion": False,
        "extrahepatic_spread": False,
    },
    "labs": {
        "bilirubin": {"value": 0.9, "unit": "mg/dL"},
        "albumin": {"value": 4.0, "unit": "g/dL"},
        "inr": 1.1,
        "creatinine": {"value": 0.8, "unit": "mg/dL"},
        "sodium": {"value": 139, "unit": "mmol/L"},
        "platelets": {"value": 150, "unit": "10^9/L"},
    },
    "clinical": {"ascites": "none", "encephalopathy_grade": 0},
}
# The tumour's distance (surface to surface) from the structure it sits beside, mm.
BESIDE_MM = 6.0


def images(data: Path) -> tuple[Volume, Volume]:
    """The CT and its label map."""
    folder = data / SET
    return read_volume(folder / IMAGE), read_volume(folder / LABELS)


def site_centre(labels: Volume, site: str, radius_mm: float, taken: list[np.ndarray] = ()) -> np.ndarray:
    """Voxel index of a tumour centre for `site` ("dome", "ivc", "gallbladder"): a ball of `radius_mm` that
    lies 3 mm inside the liver and at least 15 mm from the balls in `taken` (voxel centres)."""
    array = np.asarray(labels.array).astype(int)
    spacing = labels.spacing_mm
    liver = array == LIVER
    fits = ndimage.distance_transform_edt(liver, sampling=spacing) >= radius_mm + 3.0
    # Keep the ball and a 5 mm margin 10 mm inside the image's top and bottom slices (the image's third axis).
    edge = int(np.ceil((radius_mm + 15.0) / spacing[2]))
    fits[:, :, :edge] = False
    fits[:, :, array.shape[2] - edge :] = False
    for centre in taken:
        index = np.indices(array.shape).reshape(3, -1).T
        far = np.linalg.norm((index - centre) * spacing, axis=1) >= 2 * radius_mm + 15.0
        fits &= far.reshape(array.shape)
    candidates = np.argwhere(fits)
    if site == "dome":
        lung = np.isin(array, LUNG)
        # The highest level the ball fits at, then the point nearest the lung there (lung is superior: +z).
        superior = labels.index_to_lps(candidates)[:, 2]
        top = candidates[superior >= superior.max() - 1e-6]
        return top[int(np.argmin(ndimage.distance_transform_edt(~lung, sampling=spacing)[tuple(top.T)]))]
    structure = {"ivc": array == IVC, "gallbladder": array == GALLBLADDER}[site]
    distance = ndimage.distance_transform_edt(~structure, sampling=spacing)[tuple(candidates.T)]
    return candidates[int(np.argmin(np.abs(distance - (radius_mm + BESIDE_MM))))]


def paint(labels: Volume, centres: list[np.ndarray], radius_mm: float) -> np.ndarray:
    """The tumour mask: balls of `radius_mm` around the voxel centres `centres`, inside the liver."""
    index = np.indices(labels.shape).reshape(3, -1).T
    tumour = np.zeros(labels.shape, dtype=bool)
    for centre in centres:
        tumour |= (np.linalg.norm((index - centre) * labels.spacing_mm, axis=1) <= radius_mm).reshape(labels.shape)
    return tumour & (np.asarray(labels.array).astype(int) == LIVER)


def write_case(
    data: Path,
    folder: Path,
    sites: list[str],
    radius_mm: float = 11.0,
    image: Path | None = None,
    labels_file: Path | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a case file with tumours at `sites` (its mask beside it); returns the case file's path."""
    ct, labels = images(data)
    if labels_file is not None:
        labels = read_volume(labels_file)
    centres: list[np.ndarray] = []
    for site in sites:
        centres.append(site_centre(labels, site, radius_mm, centres))
    folder.mkdir(parents=True, exist_ok=True)
    mask = folder / "tumour.nii.gz"
    write_nifti(labels.with_array(paint(labels, centres, radius_mm).astype(np.uint8)), mask)
    case = {
        "schema_version": 1,
        "case_id": f"set02-{'-'.join(sites)}",
        **CLINICAL,
        "imaging": {
            "image": str(image or data / SET / IMAGE),
            "labels": str(labels_file or data / SET / LABELS),
            "label_preset": "totalsegmentator",
            "masks": {"tumour": str(mask)},
            **(extra or {}),
        },
    }
    path = folder / "case.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    return path
