"""The body model and the field-of-view warnings on the real test images (the `shared_data` fixture):
set 02 with its TotalSegmentator labels (whole, cropped on one side, resampled to 5 mm slices, with a
synthetic tumour), set 03 (40 mm craniocaudally), MR set 06, and set 01's one-voxel lesions."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import ndimage

from cryoplan.case import Lesion
from cryoplan.imaging import ImagingWarning, Volume, read_labels, read_volume, write_nifti
from cryoplan.imaging.anatomy import PRESETS, STRUCTURES, anatomy_from_labels, load_anatomy, measure_lesions
from cryoplan.imaging.body import AIR_HU, build_body_model, field_of_view_warnings, intercostal_space
from cryoplan.imaging.inspection import inspect_image
from cryoplan.imaging.totalsegmentator import TOTAL_CLASSES, TOTAL_MR_CLASSES, rib_number, structure_of

SET02 = "02_totalseg_ct_sm_vessels"


@pytest.fixture(scope="module")
def set02(shared_data):
    ct = read_volume(shared_data / SET02 / "example_ct_sm.nii.gz")
    labels = read_labels(shared_data / SET02 / "example_seg.nii.gz", ct)
    return ct, labels


def _codes(model, margin_mm=5.0):
    return {w.code: w.message for w in field_of_view_warnings(model, margin_mm)}


def _outside_air(hu: np.ndarray) -> np.ndarray:
    """Air connected through air to the image's in-plane border, where the field of view does not cut the
    body (independent of the body model's method; gas that reaches only the top or bottom slice is inside)."""
    labels, _ = ndimage.label(hu <= AIR_HU)
    border = np.unique(np.concatenate([np.take(labels, e, axis=a).ravel() for a in (0, 1) for e in (0, -1)]))
    return np.isin(labels, border[border > 0])


def test_set02_lung_bases_and_colon_gas_are_inside_the_body(set02):
    ct, labels = set02
    model = build_body_model(ct, anatomy_from_labels(labels, "totalsegmentator"))
    hu = ct.array
    lung, colon = model.structures["lung"], model.structures["colon"]
    lung_gas, colon_gas = lung & (hu <= AIR_HU), colon & (hu <= AIR_HU)
    assert lung_gas.sum() > 3000 and colon_gas.sum() > 5000  # the set's lung bases and colonic gas
    # the lung bases and colon gas reach the top and bottom slices: a fill of holes in 3-D alone would take
    # them for air outside
    assert lung_gas[:, :, -1].any() and colon_gas[:, :, 0].any()
    assert model.body[lung_gas].all() and model.body[colon_gas].all()
    assert model.internal_gas[lung_gas].all() and model.internal_gas[colon_gas].all()
    outside = _outside_air(hu)
    assert not (outside & (lung | colon)).any()
    assert not (model.body & outside).any()
    # the couch below the back (dense, separate plates) is not body
    posterior_rows = model.body[:, :3, :]  # j = 0 is the posterior edge (j runs anterior)
    assert not posterior_rows.any()
    assert model.cut_sides == ("inferior", "superior")


def test_set02_structures_present_and_unknown(set02):
    ct, labels = set02
    model = build_body_model(ct, anatomy_from_labels(labels, "totalsegmentator"))
    expected = {
        "liver", "lung", "colon", "stomach", "small_bowel", "duodenum", "pancreas", "kidney", "adrenal", "spleen",
        "gallbladder", "aorta", "ivc", "portal_vein", "rib", "costal_cartilage", "vertebra", "spinal_cord", "muscle",
    }  # fmt: skip
    assert set(model.structures) == expected  # no bone outside the named ones in this crop
    assert model.unknown == ("hepatic_vein", "bile_duct")  # TotalSegmentator labels neither
    numbers = set(np.unique(model.rib_numbers).tolist())
    assert {7, 8, 9, 10, 11, 12, -7, -12} <= numbers and numbers <= set(range(-12, 13))
    # rib 10 right is label 113 in the set's table
    assert np.array_equal(model.rib_numbers == 10, labels.array == 113)
    assert model.bone[model.structures["costal_cartilage"]].all()
    point = ct.index_to_lps(np.argwhere(model.structures["rib"])[0])
    assert model.tissue_names(point[None]) == ["rib"]
    codes = _codes(model)
    assert "body_cut" not in codes and "thick_slices" not in codes and "few_slices" not in codes
    assert "hepatic vein and bile duct: only the gas and bone among them are found (by HU)" in codes["organs_unknown"]


def test_set02_cropped_on_one_side_is_cut_there(set02):
    ct, labels = set02
    # i runs to the patient's right; keeping i ≥ 30 crops 90 mm off the patient's left
    affine = ct.affine.copy()
    affine[:3, 3] = ct.index_to_lps(np.array([30.0, 0.0, 0.0]))
    crop = Volume(ct.array[30:].copy(), affine, "CT")
    crop_labels = Volume(labels.array[30:].copy(), affine)
    model = build_body_model(crop, anatomy_from_labels(crop_labels, "totalsegmentator"))
    assert model.cut_sides == ("left", "inferior", "superior")
    codes = _codes(model)
    assert "left side" in codes["body_cut"] and "entry point" in codes["body_cut"]
    gas = (model.structures["colon"] | model.structures["lung"]) & (crop.array <= AIR_HU)
    assert model.body[gas].all()  # gas against the cut is still inside


def test_set02_on_5_mm_slices_warns_of_thick_slices(set02):
    ct, labels = set02
    affine = ct.affine.copy()
    affine[:3, 2] *= 5.0 / 3.0
    shape = (*ct.shape[:2], int(np.floor((ct.shape[2] - 1) * 3.0 / 5.0)) + 1)
    thick = ct.resampled(shape, affine, order=1)
    thick_labels = labels.resampled(shape, affine, order=0)
    model = build_body_model(thick, anatomy_from_labels(thick_labels, "totalsegmentator"), modality="CT")
    codes = _codes(model)
    assert "5.0 mm apart" in codes["thick_slices"]
    gas = model.structures["colon"] & (thick.array <= AIR_HU)
    assert gas.any() and model.body[gas].all()


def test_a_tumour_near_the_top_slice_warns_and_a_central_one_does_not(set02, shared_data, tmp_path):
    ct, labels = set02
    liver = labels.array == 5
    k_top = int(np.flatnonzero(liver.any(axis=(0, 1)))[-1])
    centre = np.argwhere(liver[:, :, k_top - 1]).mean(axis=0).round().astype(int)
    near, central = np.zeros(ct.shape, np.uint8), np.zeros(ct.shape, np.uint8)
    index = np.indices(ct.shape)
    near[((index[0] - centre[0]) ** 2 + (index[1] - centre[1]) ** 2 + (index[2] - (k_top - 3)) ** 2) <= 9] = 1
    middle = np.argwhere(liver[:, :, 15]).mean(axis=0).round().astype(int)
    central[((index[0] - middle[0]) ** 2 + (index[1] - middle[1]) ** 2 + (index[2] - 15) ** 2) <= 9] = 1
    for name, mask in (("near", near), ("central", central)):
        write_nifti(ct.with_array(mask), tmp_path / f"{name}.nii.gz")
    image, seg = shared_data / SET02 / "example_ct_sm.nii.gz", shared_data / SET02 / "example_seg.nii.gz"
    messages = {}
    for name in ("near", "central"):
        # tumour from its mask, organs from the TotalSegmentator label map
        volume, anatomy = load_anatomy(image, seg, "totalsegmentator", masks={"tumour": tmp_path / f"{name}.nii.gz"})
        assert "lung" in anatomy.masks and anatomy.masks["tumour"].sum() == (near if name == "near" else central).sum()
        messages[name] = _codes(build_body_model(volume, anatomy))
    gap_mm = (ct.shape[2] - 1 - (k_top - 3 + 3)) * 3.0
    assert f"lies {gap_mm:.1f} mm from the image's superior edge" in messages["near"]["lesion_near_edge"]
    assert "lesion_near_edge" not in messages["central"]
    # a lesion not to be planned is not checked against the edge
    volume, anatomy = load_anatomy(image, seg, "totalsegmentator", masks={"tumour": tmp_path / "near.nii.gz"})
    codes = [w.code for w in field_of_view_warnings(build_body_model(volume, anatomy), 5.0, lesion_ids=[])]
    assert "lesion_near_edge" not in codes


def test_set03_covers_40_mm_and_warns_of_few_slices(shared_data):
    folder = shared_data / "03_totalseg_dicom_ct_series"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImagingWarning)  # the set's empty UIDs, repaired
        ct, anatomy = load_anatomy(folder / "dicom", folder / "example_seg_dicom.nii.gz", "totalsegmentator")
    model = build_body_model(ct, anatomy)
    codes = _codes(model)
    assert "covers 40 mm craniocaudally in 20 slices" in codes["few_slices"]
    assert "liver_cut" in codes and "thick_slices" not in codes
    gas = model.structures["stomach"] & (ct.array <= AIR_HU)
    assert gas.any() and model.body[gas].all()
    outside = _outside_air(ct.array)
    assert outside.sum() > 0.3 * ct.array.size
    # a skin crease that a slice-wise fill closes may count as body (0.02 ml, 11 voxels, on this set)
    assert np.count_nonzero(model.body & outside) * ct.voxel_volume_ml < 0.05


def test_set06_mr_outline_from_signal_and_labels(shared_data):
    folder = shared_data / "06_totalseg_mr_sm"
    mr, anatomy = load_anatomy(folder / "example_mr_sm.nii.gz", folder / "example_seg_mr.nii.gz", "totalsegmentator_mr")
    model = build_body_model(mr, anatomy)
    assert model.modality == "MR"  # NIfTI has no modality: read from the signal (no air at −1000)
    for name in ("liver", "lung", "colon", "kidney", "spleen", "vertebra"):
        assert model.body[model.structures[name]].all(), name
    assert model.internal_gas[model.structures["lung"]].all()
    # the dark background connected to the border is outside
    dark = mr.array < 20
    labels, _ = ndimage.label(dark)
    border = np.unique(np.concatenate([np.take(labels, e, axis=a).ravel() for a in (0, 1) for e in (0, -1)]))
    background = np.isin(labels, border[border > 0])
    assert background.sum() > 0.15 * mr.array.size  # 20 % of this image
    assert not (model.body & background).any()
    assert {"rib", "costal_cartilage", "sternum", "hepatic_vein", "bile_duct"} == set(model.unknown)
    codes = _codes(model)
    assert "mr_gas_bone" in codes and codes["organs_unknown"].endswith("sternum: they are not avoided")


def test_set01_one_voxel_lesions_are_listed_flagged_and_valid_case_lesions(shared_data):
    # the header's spacing (0.664 × 0.664 × 5.0 mm, wrong in-plane, see the set's notes) is what is measured
    folder = shared_data / "01_lits_resized_liver_tumour"
    document = inspect_image(folder / "resized_liver.nii", folder / "resized_mask.nii", "liver_tumour")
    lesions = document["lesions"]
    assert len(lesions) == 13 and document["min_lesion_diameter_mm"] == 5.0
    single = [lesion for lesion in lesions if lesion["voxel_count"] == 1]
    assert len(single) == 6
    assert all(lesion["max_diameter_mm"] == 0.0 and lesion["below_min_size"] for lesion in single)
    assert all(lesion["resolution_mm"] == 5.0 for lesion in lesions)
    assert [lesion["below_min_size"] for lesion in lesions] == [lesion["max_diameter_mm"] < 5.0 for lesion in lesions]
    assert not lesions[0]["below_min_size"]  # L1, about 40 mm
    volume, anatomy = load_anatomy(folder / "resized_liver.nii", folder / "resized_mask.nii", "liver_tumour")
    for measured in measure_lesions(anatomy, min_diameter_mm=10.0):
        lesion = Lesion(**measured.case_fields())  # a one-voxel lesion is a valid case lesion
        assert lesion.below_min_size == (measured.max_diameter_mm < 10.0)
        assert lesion.resolution_mm == 5.0 and lesion.diameter_mm == measured.max_diameter_mm


def test_totalsegmentator_tables_match_the_label_file_and_every_class_is_a_structure(shared_data):
    table = json.loads((shared_data / "totalsegmentator_labels.json").read_text())
    for task, classes in (("total", TOTAL_CLASSES), ("total_mr", TOTAL_MR_CLASSES)):
        assert {int(k): v for k, v in table[task].items()} == classes
        for name in classes.values():
            assert structure_of(name) in STRUCTURES, name
    preset = PRESETS["totalsegmentator"]
    assert {v for values in preset.values() for v in values} == set(range(1, 118))  # every class has a structure
    assert set(preset["rib"]) | set(preset["sternum"]) | set(preset["vertebra"]) < set(preset["bone"])
    assert [structure_of(TOTAL_CLASSES[v]) for v in preset["costal_cartilage"]] == ["costal_cartilage"]
    assert rib_number("rib_right_9") == 9 and rib_number("rib_left_12") == -12 and rib_number("sternum") is None
    with pytest.raises(KeyError):
        structure_of("appendix")


def test_set02_intercostal_spaces_are_named_between_consecutive_ribs(set02):
    ct, labels = set02
    model = build_body_model(ct, anatomy_from_labels(labels, "totalsegmentator"))
    # 111–113 are right ribs 8–10, 99–100 left ribs 8–9 in the set's table
    for upper, lower, expected in ((111, 112, ("right", 8)), (112, 113, ("right", 9)), (99, 100, ("left", 8))):
        a = ct.index_to_lps(np.argwhere(labels.array == upper))
        b = ct.index_to_lps(np.argwhere(labels.array == lower))
        gaps = np.linalg.norm(a[:, None] - b[None], axis=-1)
        i, j = np.unravel_index(np.argmin(gaps), gaps.shape)
        assert intercostal_space(model, (a[i] + b[j]) / 2) == expected
    liver = ct.index_to_lps(np.argwhere(labels.array == 5).mean(axis=0))
    assert intercostal_space(model, liver) is None  # no ribs within 30 mm of the liver's centre


def test_set02_names_along_a_lateral_path_from_the_liver_to_the_air(set02):
    ct, labels = set02
    model = build_body_model(ct, anatomy_from_labels(labels, "totalsegmentator"))
    start = ct.index_to_lps(np.argwhere(labels.array == 5).mean(axis=0))
    # towards the patient's right (−x) in 1 mm steps, to the edge of the image
    steps = np.arange(0.0, 200.0, 1.0)
    names = model.tissue_names(start + steps[:, None] * np.array([-1.0, 0.0, 0.0]))
    names = [n for n in names if n != "outside_image"]
    assert names[0] == "liver" and names[-1] == "air"
    first_air = names.index("air")
    assert set(names[first_air:]) == {"air"}  # the body ends once: no air inside it
    assert "gas" not in names and "lung" not in names
    assert set(names[:first_air]) <= {"liver", "fat", "soft_tissue", "muscle", "rib", "costal_cartilage", "bone"}


def test_set02_cut_on_two_sides_without_labels_keeps_its_gas_inside(set02):
    ct, labels = set02
    # off the patient's left (i < 30) and front (j ≥ 80): colon gas and lung bases against two cuts and the
    # top or bottom slice; the model sees the CT alone
    array, seg = ct.array[30:, :80], labels.array[30:, :80]
    affine = ct.affine.copy()
    affine[:3, 3] = ct.index_to_lps(np.array([30.0, 0.0, 0.0]))
    model = build_body_model(Volume(array.copy(), affine, "CT"), None)
    assert model.cut_sides == ("left", "anterior", "inferior", "superior")
    gas = np.isin(seg, [6, 10, 11, 12, 13, 14, 20]) & (array <= AIR_HU)  # stomach, lungs, colon
    assert gas.sum() > 5000 and model.body[gas].all()
    # air reaching the uncut right and back of the image is outside, all of it
    air, _ = ndimage.label(array <= AIR_HU)
    reaching = np.unique(np.concatenate([air[-1].ravel(), air[:, 0].ravel()]))
    outside = np.isin(air, reaching[reaching > 0])
    assert outside.sum() > 40000 and not (model.body & outside).any()


def test_set02_cut_on_every_side_keeps_its_gas_inside_and_says_so(set02):
    ct, labels = set02
    array, seg = ct.array[8:114, 8:92], labels.array[8:114, 8:92]
    model = build_body_model(Volume(array.copy(), ct.affine, "CT"), None)
    assert model.cut_sides == ("right", "left", "anterior", "posterior", "inferior", "superior")
    gas = np.isin(seg, [6, 10, 11, 12, 13, 14, 20]) & (array <= AIR_HU)
    assert gas.sum() > 10000 and model.body[gas].all()
    assert "right, left, anterior and posterior sides" in _codes(model)["body_cut"]
