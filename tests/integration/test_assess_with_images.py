"""`cryoplan assess` on a case file that names images: lesion sizes and distances come from the images,
typed values are kept, and disagreements over 3 mm are flagged."""

from __future__ import annotations

import json

import pytest

from cryoplan.imaging import write_nifti
from cryoplan.imaging.phantom import demo_phantom


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    phantom = demo_phantom(seed=1, spacing_mm=2.0)
    write_nifti(phantom.ct, folder / "ct.nii.gz")
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    return folder, phantom


def _case(folder, lesions: str) -> str:
    mapping = (
        "{liver: 1, tumour: 2, hepatic_vein: 3, portal_vein: 4, ivc: 5, aorta: 6, bile_duct: 7, gallbladder: 8, "
        "bone: 9}"
    )
    text = (
        "schema_version: 1\n"
        "patient: {age: 64, sex: male, ecog: 0}\n"
        "diagnosis: {type: hcc, cirrhosis: true, liver_disease: hbv, vascular_invasion: false, "
        "extrahepatic_spread: false}\n"
        "labs:\n  bilirubin: {value: 1.0, unit: mg/dL}\n  albumin: {value: 4.0, unit: g/dL}\n  inr: 1.1\n"
        "  creatinine: {value: 0.9, unit: mg/dL}\n  sodium: {value: 139, unit: mmol/L}\n"
        "  platelets: {value: 150, unit: 10^9/L}\n"
        "clinical: {ascites: none, encephalopathy_grade: 0}\n"
        f"imaging: {{image: ct.nii.gz, labels: labels.nii.gz, labels_map: {mapping}}}\n"
        f"lesions: {lesions}\n"
    )
    path = folder / "case.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def _assess(cryoplan_cli):
    """The assessment `cryoplan assess CASE --format json` prints, run in this process from the folder `cwd`."""

    def assess(case_path, cwd):
        run = cryoplan_cli("assess", case_path, "--format", "json", cwd=cwd)
        assert run.returncode == 0, run.stderr
        [document] = json.loads(run.stdout)
        return document

    return assess


def test_lesions_are_measured_from_the_images(phantom_files, tmp_path, _assess):
    folder, phantom = phantom_files
    # Run from another folder: the imaging paths resolve against the case file, not the working directory.
    result = _assess(_case(folder, "[]"), cwd=tmp_path)
    count = next(c for c in result["criteria"] if c["id"] == "lesion_count")
    diameter = next(c for c in result["criteria"] if c["id"] == "max_diameter")
    duct = next(c for c in result["criteria"] if c["id"] == "bile_duct_distance")
    assert count["value"] == 1
    assert abs(diameter["value"] - 28.0) <= 2.0 * 3**0.5  # within one 2 mm voxel diagonal
    assert abs(duct["value"] - 6.0) <= 3**0.5  # the duct lies 6 mm from the tumour surface
    assert result["imaging_flags"] == []


def test_typed_values_are_kept_and_disagreements_flagged(phantom_files, tmp_path, _assess):
    folder, _ = phantom_files
    result = _assess(_case(folder, "[{id: L1, diameter_mm: 40}]"), cwd=tmp_path)
    diameter = next(c for c in result["criteria"] if c["id"] == "max_diameter")
    assert diameter["value"] == 40
    assert len(result["imaging_flags"]) == 1 and "lesions[0].diameter_mm" in result["imaging_flags"][0]


@pytest.mark.slow
def test_the_plan_assesses_the_measured_lesions_as_assess_does(phantom_files, tmp_path, _assess):
    """One code path: the plan's assessment is `cryoplan assess`'s, lesions measured from the same images."""
    from cryoplan import plan_case
    from cryoplan.case import load_case

    folder, _ = phantom_files
    path = _case(folder, "[]")
    expected = _assess(path, cwd=tmp_path)
    plan = plan_case(load_case(path))
    assessment = dict(plan.assessment, case_id=expected["case_id"])  # the CLI names the case by its file
    assert assessment == expected
    assert expected["bclc"]["stage"] == "A" and expected["transplant"]["milan"] is True


def test_a_one_voxel_lesion_is_listed_not_counted(phantom_files, tmp_path, _assess):
    """A one-voxel "lesion" (segmentation noise) measures 0 mm: no crash, listed below the minimum size."""
    import numpy as np

    from cryoplan.imaging.volume import Volume

    folder, phantom = phantom_files
    labels = phantom.labels.array.copy()
    liver = np.argwhere(labels == 1)
    tumour = np.argwhere(labels == 2).mean(axis=0)
    speck = liver[np.argmax(np.linalg.norm(liver - tumour, axis=1))]  # the liver voxel furthest from the tumour
    labels[tuple(speck)] = 2
    noisy = tmp_path / "images"
    noisy.mkdir()
    write_nifti(phantom.ct, noisy / "ct.nii.gz")
    write_nifti(Volume(labels, phantom.labels.affine), noisy / "labels.nii.gz")
    result = _assess(_case(noisy, "[]"), cwd=tmp_path)
    count = next(c for c in result["criteria"] if c["id"] == "lesion_count")
    assert count["value"] == 1  # the speck is not a second lesion
    assert any("L2 (0 mm measured) is below the minimum lesion size" in n for n in result["input_notes"])
