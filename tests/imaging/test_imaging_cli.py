"""`cryoplan inspect` through the CLI's entry point: JSON contract, figures, and bad input → exit 2 with
one line on stderr and no output folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.cli import Completed

from cryoplan.imaging import Volume, read_labels, read_volume, write_dicom_series, write_nifti
from cryoplan.imaging.phantom import TumourSpec, make_phantom


@pytest.fixture
def run(cryoplan_cli):
    """``cryoplan inspect ARGS`` in this process; `tests/cli/test_console_script.py` runs the installed script."""
    return lambda *args: cryoplan_cli("inspect", *args)


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    """A coarse phantom as a DICOM series plus its label map, and an equal-grid NIfTI image."""
    folder = tmp_path_factory.mktemp("inspect")
    phantom = make_phantom([TumourSpec((-40.0, -10.0, 0.0), 24.0)], spacing_mm=3.0, seed=0)
    write_dicom_series(phantom.ct, folder / "ct")
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    write_nifti(phantom.ct, folder / "ct.nii.gz")
    write_nifti(phantom.couinaud, folder / "segments.nii.gz")
    return folder, phantom


@pytest.mark.slow
def test_inspect_json_contract_and_figures(case_files, tmp_path, run):
    folder, phantom = case_files
    labels = [f"--label={name}={value}" for name, value in phantom.label_map.items()]
    result = run(
        folder / "ct",
        "--labels",
        folder / "labels.nii.gz",
        *labels,
        "--segments",
        folder / "segments.nii.gz",
        "--format",
        "json",
        "-o",
        tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == json.loads((tmp_path / "out" / "inspect.json").read_text())
    assert document["schema_version"] == 1
    assert document["image"] == {
        "shape": list(phantom.ct.shape),
        "spacing_mm": [3.0, 3.0, 3.0],
        "orientation": "LPS",
        "modality": "CT",
    }
    (lesion,) = document["lesions"]
    assert lesion["id"] == "L1"
    assert lesion["couinaud_segment"] == 8  # right anterior superior in the phantom's planes
    assert lesion["max_diameter_mm"] == pytest.approx(24.0, abs=3.0)
    assert np.allclose(lesion["centroid_lps_mm"], (-40.0, -10.0, 0.0), atol=1.5)
    assert set(lesion) >= {
        "volume_ml",
        "axial_diameter_mm",
        "distance_to_bile_duct_mm",
        "distance_to_major_vessel_mm",
        "nearest_vessel",
        "heat_sink",
    }
    voxel_ml = 27 / 1000
    assert document["liver_volume_ml"] == pytest.approx(
        np.count_nonzero(phantom.labels.array == 1) * voxel_ml, abs=1e-3
    )
    assert set(document["structures"]) == set(phantom.label_map)
    assert (tmp_path / "out" / "L1.png").stat().st_size > 10_000
    text = run(folder / "ct.nii.gz", "--labels", folder / "labels.nii.gz", "--label", "liver=1", "--label", "tumour=2")
    assert text.returncode == 0 and "L1:" in text.stdout


def _assert_refused(result: Completed, needle: str, output) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoplan: error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_folder_with_two_series_reads_the_largest_and_says_so(case_files, tmp_path, run):
    folder, phantom = case_files
    mixed = tmp_path / "mixed"
    write_dicom_series(phantom.ct, mixed, seed=1)
    write_dicom_series(Volume(phantom.ct.array[:, :, :10].copy(), phantom.ct.affine, "CT"), mixed, seed=2)
    result = run(mixed, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "2 series; reading the largest axial one" in result.stderr
    assert json.loads(result.stdout)["image"]["shape"] == list(phantom.ct.shape)


def test_corrupt_file_is_refused(case_files, tmp_path, run):
    folder, phantom = case_files
    series = tmp_path / "series"
    write_dicom_series(phantom.ct, series)
    victim = sorted(series.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:2000])
    _assert_refused(run(series, "-o", tmp_path / "out"), victim.name, tmp_path / "out")


def test_label_map_on_another_grid_is_refused_or_resampled(case_files, tmp_path, run):
    folder, phantom = case_files
    shifted = phantom.labels.affine.copy()
    shifted[:3, 3] += 1.0  # a third of a voxel off
    write_nifti(Volume(phantom.labels.array, shifted), tmp_path / "shifted.nii.gz")
    args = (folder / "ct.nii.gz", "--labels", tmp_path / "shifted.nii.gz", "--label-preset", "liver_tumour")
    _assert_refused(run(*args, "-o", tmp_path / "out"), "on the image grid", tmp_path / "out")
    resampled = run(*args, "--resample-labels", "--format", "json")
    assert resampled.returncode == 0
    assert "nearest neighbour" in resampled.stderr and json.loads(resampled.stdout)["warnings"]


def test_empty_tumour_label_is_refused(case_files, tmp_path, run):
    folder, _ = case_files
    result = run(
        folder / "ct.nii.gz",
        "--labels",
        folder / "labels.nii.gz",
        "--label",
        "liver=1",
        "--label",
        "tumour=42",
        "-o",
        tmp_path / "out",
    )
    _assert_refused(result, "labels.tumour", tmp_path / "out")


def test_unknown_structure_name_is_refused(case_files, tmp_path, run):
    folder, _ = case_files
    result = run(
        folder / "ct.nii.gz", "--labels", folder / "labels.nii.gz", "--label", "appendix=3", "-o", tmp_path / "out"
    )
    _assert_refused(result, "labels.appendix", tmp_path / "out")
    result = run(folder / "ct.nii.gz", "--mask", f"uterus={folder / 'labels.nii.gz'}", "-o", tmp_path / "out")
    _assert_refused(result, "masks.uterus", tmp_path / "out")


def test_inspect_real_ct_cut_on_one_side_with_organ_labels_and_a_tumour_mask(shared_data, tmp_path, run):
    folder = shared_data / "02_totalseg_ct_sm_vessels"
    ct = read_volume(folder / "example_ct_sm.nii.gz")
    labels = read_labels(folder / "example_seg.nii.gz", ct)
    affine = ct.affine.copy()
    affine[:3, 3] = ct.index_to_lps(np.array([30.0, 0.0, 0.0]))  # 90 mm off the patient's left
    write_nifti(Volume(ct.array[30:].copy(), affine, "CT"), tmp_path / "ct.nii.gz")
    write_nifti(Volume(labels.array[30:].copy(), affine), tmp_path / "seg.nii.gz")
    liver = np.argwhere(labels.array[30:] == 5)
    centre = liver[len(liver) // 2]
    tumour = np.zeros(labels.array[30:].shape, dtype=np.uint8)
    tumour[tuple(slice(c - 2, c + 3) for c in centre)] = 1
    write_nifti(Volume(tumour, affine), tmp_path / "tumour.nii.gz")
    result = run(
        tmp_path / "ct.nii.gz",
        "--labels",
        tmp_path / "seg.nii.gz",
        "--label-preset",
        "totalsegmentator",
        "--mask",
        f"tumour={tmp_path / 'tumour.nii.gz'}",
        "--format",
        "json",
        "-o",
        tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    assert "cryoplan: warning: body_cut: the field of view cuts the body on the left side" in result.stderr
    document = json.loads(result.stdout)
    assert document["body"] == {
        "modality": "CT",
        "cut_sides": ["left", "inferior", "superior"],
        "unknown_structures": ["hepatic_vein", "bile_duct"],
    }
    codes = [w["code"] for w in document["image_warnings"]]
    assert "body_cut" in codes and "thick_slices" not in codes
    assert {"lung", "colon", "rib", "tumour", "liver"} <= set(document["structures"])
    (lesion,) = document["lesions"]
    assert lesion["voxel_count"] == 125 and lesion["resolution_mm"] == 3.0 and not lesion["below_min_size"]
    assert (tmp_path / "out" / "L1.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "body.png").stat().st_size > 10_000


def test_inspect_lits_one_voxel_lesions_listed_not_planned(shared_data, run):
    folder = shared_data / "01_lits_resized_liver_tumour"
    args = (folder / "resized_liver.nii", "--labels", folder / "resized_mask.nii", "--label-preset", "liver_tumour")
    result = run(*args)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("L")]
    assert len(lines) == 13
    assert sum("below 5 mm: not planned" in line for line in lines) == 10  # L4–L13, 1.5 mm and less
    assert "(±5.0 mm, one voxel)" in lines[0] and "not planned" not in lines[0]
    wide = run(*args, "--min-lesion-diameter", "20", "--format", "json")
    flags = [lesion["below_min_size"] for lesion in json.loads(wide.stdout)["lesions"]]
    assert flags == [False] + [True] * 12  # only L1 (40 mm) reaches 20 mm


def test_bad_minimum_lesion_diameter_is_refused(case_files, tmp_path, run):
    folder, _ = case_files
    result = run(
        folder / "ct.nii.gz",
        "--labels",
        folder / "labels.nii.gz",
        "--label",
        "liver=1",
        "--label",
        "tumour=2",
        "--min-lesion-diameter",
        "-1",
        "-o",
        tmp_path / "out",
    )
    _assert_refused(result, "min_lesion_diameter_mm", tmp_path / "out")


@pytest.mark.parametrize(
    ("folder", "image", "labels", "preset", "code"),
    [
        ("03_totalseg_dicom_ct_series", "dicom", "example_seg_dicom.nii.gz", "totalsegmentator", "few_slices"),
        ("06_totalseg_mr_sm", "example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "totalsegmentator_mr", "mr_gas_bone"),
    ],
)
def test_inspect_warns_of_what_the_image_leaves_out(shared_data, folder, image, labels, preset, code, run):
    folder = shared_data / folder
    result = run(folder / image, "--labels", folder / labels, "--label-preset", preset, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert f"cryoplan: warning: {code}: " in result.stderr
    assert code in [w["code"] for w in json.loads(result.stdout)["image_warnings"]]
