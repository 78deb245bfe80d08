"""`cryoplan assess` on the real images: LiTS (set 01) with 13 tumour components, most of them specks, and
the TotalSegmentator MR crop (set 06), which holds no tumour."""

from __future__ import annotations

import json

import pytest
import yaml

CLINICAL = {
    "schema_version": 1,
    "patient": {"age": 64, "sex": "male", "ecog": 0},
    "diagnosis": {
        "type": "hcc",
        "cirrhosis": True,
        "liver_disease": "hbv",
        "vascular_invasion": False,
        "extrahepatic_spread": False,
    },
    "labs": {
        "bilirubin": {"value": 1.0, "unit": "mg/dL"},
        "albumin": {"value": 4.0, "unit": "g/dL"},
        "inr": 1.1,
        "creatinine": {"value": 0.9, "unit": "mg/dL"},
        "sodium": {"value": 139, "unit": "mmol/L"},
        "platelets": {"value": 150, "unit": "10^9/L"},
    },
    "clinical": {"ascites": "none", "encephalopathy_grade": 0},
}


@pytest.fixture
def _assess(cryoplan_cli):
    """The assessment `cryoplan assess CASE --format json` prints (run in this process) for CLINICAL and `case`."""

    def assess(tmp_path, **case) -> dict:
        path = tmp_path / "case.yaml"
        path.write_text(yaml.safe_dump({**CLINICAL, **case}))
        run = cryoplan_cli("assess", path, "--format", "json")
        assert run.returncode == 0, run.stderr
        [document] = json.loads(run.stdout)
        return document

    return assess


def test_lits_specks_are_listed_not_counted(shared_data, tmp_path, _assess):
    """Set 01 as its header gives it (0.664 × 0.664 × 5.0 mm; the true in-plane spacing is about 5.3 mm, so
    the sizes are only a test of label handling): 13 components, every one either counted or named."""
    folder = shared_data / "01_lits_resized_liver_tumour"
    imaging = {
        "image": str(folder / "resized_liver.nii"),
        "labels": str(folder / "resized_mask.nii"),
        "labels_map": {"liver": 1, "tumour": 2},
    }
    result = _assess(tmp_path, imaging=imaging)
    count = next(c for c in result["criteria"] if c["id"] == "lesion_count")["value"]
    small = [n for n in result["input_notes"] if "below the minimum lesion size" in n]
    assert count + len(small) == 13 and 1 <= count < 13
    largest = next(c for c in result["criteria"] if c["id"] == "max_diameter")["value"]
    # The counted lesions stage the tumour, the specks left out (BCLC 2022; Reig et al., J Hepatol 2022): with
    # ECOG 0 and Child-Pugh A the burden decides, and more than one nodule with one over 30 mm is stage B.
    assert count > 1 and largest > 30.0
    assert result["bclc"]["stage"] == "B" and result["bclc"]["burden_stage"] == "B"
    assert result["bclc"]["reason"].startswith(f"{count} nodules, largest")
    # A smaller minimum counts more of them; none is lost either way.
    result = _assess(tmp_path, imaging={**imaging, "min_lesion_diameter_mm": 0.5})
    count_small = next(c for c in result["criteria"] if c["id"] == "lesion_count")["value"]
    assert count_small > count and count_small + len(result["input_notes"]) == 13


def test_mr_without_a_tumour_flags_the_typed_lesion(shared_data, tmp_path, _assess):
    folder = shared_data / "06_totalseg_mr_sm"
    imaging = {
        "image": str(folder / "example_mr_sm.nii.gz"),
        "labels": str(folder / "example_seg_mr.nii.gz"),
        "label_preset": "totalsegmentator_mr",
    }
    result = _assess(tmp_path, imaging=imaging, lesions=[{"id": "L1", "diameter_mm": 22}])
    assert next(c for c in result["criteria"] if c["id"] == "max_diameter")["value"] == 22
    assert len(result["imaging_flags"]) == 1 and "not found in the images" in result["imaging_flags"][0]
