"""`cryoplan plan` on a real DICOM series (set 03) with a synthetic tumour painted into its liver: it ends 0
with DICOM objects that validate (zero dciodvfy errors) and a 3D Slicer set; on a copy whose slices are
unevenly spaced the plan is still written and each DICOM export that cannot be made is named with its reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import pydicom
import pytest
import slicerio
from scipy import ndimage
from support.dicom_validation import dciodvfy_errors

from cryoplan.imaging import ImagingWarning, read_labels, read_volume, write_nifti
from cryoplan.schemas import json_schema

pytestmark = pytest.mark.slow

SET_03 = "03_totalseg_dicom_ct_series"
TUMOUR_LABEL = 200  # unused by TotalSegmentator's CT labels
TUMOUR_RADIUS_MM = 9.0
FAST_PLAN = ("--grid-mm", "3", "--freeze-minutes", "5", "--freezes", "1")


def _case(shared_data: Path, image: Path, folder: Path) -> Path:
    """Set 03's labels with a tumour in the middle slice where the liver is ≥ 15 mm deep nearest the skin,
    and a skin entry on that slice whose path keeps 8 mm from bone (CT > 150 HU) and crosses no vessel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImagingWarning)  # set 03's UIDs, repaired
        ct = read_volume(shared_data / SET_03 / "dicom")
        labels = read_labels(shared_data / SET_03 / "example_seg_dicom.nii.gz", ct)
    spacing, k = ct.spacing_mm, ct.shape[2] // 2
    liver = labels.array == 5
    depth = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    body = ndimage.binary_fill_holes(ct.array[:, :, k] > -300)
    skin = ndimage.distance_transform_edt(body, sampling=spacing[:2])
    candidates = np.argwhere(depth[:, :, k] >= 15.0)
    i, j = candidates[np.argmin(skin[candidates[:, 0], candidates[:, 1]])]
    centre = ct.index_to_lps([i, j, k])
    index = np.stack(np.meshgrid(*(np.arange(n) for n in ct.shape), indexing="ij"), axis=-1)
    painted = labels.array.copy()
    painted[(np.linalg.norm(ct.index_to_lps(index) - centre, axis=-1) <= TUMOUR_RADIUS_MM) & liver] = TUMOUR_LABEL
    write_nifti(labels.with_array(painted), folder / "labels.nii.gz")
    near_bone = ndimage.distance_transform_edt(ct.array <= 150, sampling=spacing) <= 8.0
    entries = []
    for angle in np.radians(np.arange(0, 360, 5)):
        direction = np.array([np.cos(angle), np.sin(angle), 0.0])
        for length in np.arange(0.0, 250.0, 0.5):
            ijk = np.round(ct.lps_to_index(centre + length * direction)).astype(int)
            if np.any(ijk < 0) or np.any(ijk >= ct.shape):
                break
            if not body[ijk[0], ijk[1]]:
                entries.append((length, centre + (length + 3.0) * direction))  # 3 mm into the air
                break
            if length > 12.0 and (near_bone[tuple(ijk)] or labels.array[tuple(ijk)] in (52, 63, 64)):
                break
    entry = min(entries, key=lambda e: e[0])[1]
    case = (Path(__file__).parents[2] / "src/cryoplan/examples/hcc_eligible.yaml").read_text()
    case += (
        f"imaging:\n  image: {image}\n  labels: {folder / 'labels.nii.gz'}\n"
        f"  labels_map: {{liver: 5, tumour: {TUMOUR_LABEL}, ivc: 63, portal_vein: 64, aorta: 52}}\n"
        f"  entries: {{L1: [{entry[0]:.1f}, {entry[1]:.1f}, {entry[2]:.1f}]}}\n"
    )
    (folder / "case.yaml").write_text(case)
    return folder / "case.yaml"


def _plan(case: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cryoplan", "plan", str(case), "-o", str(out), *FAST_PLAN],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def planned(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan03")
    done = _plan(_case(shared_data, shared_data / SET_03 / "dicom", folder), folder / "out")
    return done, folder / "out"


def test_plan_on_set_03_ends_0_with_valid_dicom_objects(planned):
    done, out = planned
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "plan.json").read_text())
    outputs = document["outputs"]
    assert outputs["failed_exports"] == []
    assert outputs["dicom"] == ["isotherms_seg.dcm", "tumour_margin_seg.dcm", "min_temperature_pm.dcm"]
    for name in outputs["dicom"]:
        assert dciodvfy_errors(out / name) == [], name
    seg = pydicom.dcmread(out / "isotherms_seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["isotherm 0 C", "isotherm -20 C", "isotherm -40 C"]
    tumour = pydicom.dcmread(out / "tumour_margin_seg.dcm")
    assert tumour.StudyInstanceUID == seg.StudyInstanceUID != ""


def test_plan_on_set_03_matches_the_published_schema(planned):
    done, out = planned
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "plan.json").read_text())
    assert document["assessment"] is not None and document["outputs"]["dicom"]
    jsonschema.Draft202012Validator(json_schema("plan")).validate(document)


def test_plan_on_set_03_writes_a_slicer_set(planned):
    done, out = planned
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "plan.json").read_text())
    assert document["outputs"]["slicer"] == [
        "probes.mrk.json",
        "structures.seg.nrrd",
        "isotherms.seg.nrrd",
        "min_temperature.nrrd",
    ]
    probes = [p for lesion in document["lesions"] for p in lesion["probes"]]
    markups = json.loads((out / "probes.mrk.json").read_text())["markups"]
    assert len(markups) == len(probes)
    for markup, probe in zip(markups, probes):
        entry, tip = (point["position"] for point in markup["controlPoints"])
        assert np.allclose(entry, probe["entry_lps_mm"], atol=0.01) and np.allclose(tip, probe["tip_lps_mm"], atol=0.01)
    structures = slicerio.read_segmentation(str(out / "structures.seg.nrrd"))
    names = {segment["name"] for segment in structures["segments"]}
    assert {"liver", "tumour", "margin"} <= names
    tumour = slicerio.segment_mask(structures, slicerio.segment_from_name(structures, "tumour"))
    voxel_ml = abs(np.linalg.det(np.asarray(structures["ijkToLPS"])[:3, :3])) / 1000
    assert tumour.sum() * voxel_ml == pytest.approx(4 / 3 * np.pi * TUMOUR_RADIUS_MM**3 / 1000, rel=0.1)


def test_a_dicom_export_that_cannot_be_made_never_loses_the_plan(shared_data, tmp_path):
    # Uneven slices: the reader resamples them for planning; a SEG cannot reference resampled slices.
    uneven = tmp_path / "uneven"
    shutil.copytree(shared_data / SET_03 / "dicom", uneven)
    for path in uneven.iterdir():
        dataset = pydicom.dcmread(path)
        if float(dataset.ImagePositionPatient[2]) > -785.0:
            dataset.ImagePositionPatient[2] = float(dataset.ImagePositionPatient[2]) + 0.6
            dataset.save_as(path)
    done = _plan(_case(shared_data, uneven, tmp_path), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "out" / "plan.json").read_text())
    failed = document["outputs"]["failed_exports"]
    assert [f["export"] for f in failed] == [
        "isotherm DICOM-SEG",
        "tumour and margin DICOM-SEG",
        "temperature Parametric Map",
    ]
    assert all("gantry tilt or uneven spacing" in f["reason"] for f in failed)
    assert "isotherm DICOM-SEG export failed" in done.stderr
    assert not list((tmp_path / "out").glob("*.dcm"))
    for name in ("min_temperature.nii.gz", "isotherm_minus20c.nii.gz", "report.pdf", *document["outputs"]["slicer"]):
        assert (tmp_path / "out" / name).is_file(), name
