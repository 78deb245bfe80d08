"""`cryoplan plan` on a FHIR bundle: its assessment is `cryoplan assess`'s on the same bundle, lab comparators
kept as bounds (a bilirubin of ``<0.2 mg/dL`` is enough for Child-Pugh).

A FHIR bundle names no images (`cryoplan.clinical.fhir` reads Patient, Conditions and Observations), so
`cryoplan plan` on one alone exits 2 naming the imaging section. To plan it, the record the bundle gives gets
the images of a small phantom, written as a case file would name them, in both commands' reading.
"""

import json
from dataclasses import replace

import pytest
from support.cli import run_main
from support.fhir import BASELINE, SNOMED, bundle, condition, observation

from cryoplan.case import Imaging
from cryoplan.clinical import read_case_record
from cryoplan.imaging import write_nifti
from cryoplan.imaging.phantom import LABELS, TumourSpec, make_phantom


def bounded_bundle():
    """The baseline bundle without its typed lesion, its bilirubin ``<0.2 mg/dL``, no ascites and no
    encephalopathy: Child-Pugh A5 when the bound is used, undetermined when it is lost."""
    entries = [e for e in BASELINE if e["resource"]["id"] not in ("bili", "L1")]
    below = observation("bili", "1975-2", 0.2, "mg/dL")
    below["resource"]["valueQuantity"]["comparator"] = "<"
    ascites = condition("asc", SNOMED, "389026000", verificationStatus={"coding": [{"code": "refuted"}]})
    grade = observation("he", "", None)
    grade["resource"]["code"] = {"coding": [{"system": SNOMED, "code": "13920009"}]}
    grade["resource"]["valueInteger"] = 0
    return bundle(*entries, below, ascites, grade)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fhir-plan")
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 12.0)], spacing_mm=2.0, seed=1)
    write_nifti(phantom.ct, folder / "ct.nii.gz")
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    path = folder / "bounded.json"
    path.write_text(json.dumps(bounded_bundle()))
    imaging = Imaging(image=folder / "ct.nii.gz", labels=folder / "labels.nii.gz", labels_map=dict(LABELS))
    return path, imaging


def with_images(monkeypatch, imaging):
    """Both commands read the bundle's record with the phantom's images in its case."""

    def read(path):
        record = read_case_record(path)
        return replace(record, case=record.case.model_copy(update={"imaging": imaging}))

    monkeypatch.setattr("cryoplan.cli.planning.read_case_record", read)
    monkeypatch.setattr("cryoplan.cli.assess.read_case_record", read)


def test_a_bundle_alone_has_no_images_to_plan_on(files, tmp_path, monkeypatch, capsys):
    path, _ = files
    code, _, err = run_main(monkeypatch, capsys, "plan", path, "-o", tmp_path / "plan")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "imaging" in err
    assert not (tmp_path / "plan").exists()


@pytest.mark.slow
def test_the_plan_assesses_the_bundle_as_assess_does(files, tmp_path, monkeypatch, capsys):
    path, imaging = files
    with_images(monkeypatch, imaging)
    code, out, err = run_main(monkeypatch, capsys, "assess", path, "--format", "json")
    assert code == 0, err
    [expected] = json.loads(out)
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "plan",
        path,
        "-o",
        tmp_path / "plan",
        "--grid-mm",
        "2",
        "--probe-types",
        "17g-rod",
        "--max-probes",
        "2",
        "--freeze-minutes",
        "10",
    )
    assert code == 0, err
    assessment = json.loads((tmp_path / "plan" / "plan.json").read_text())["assessment"]
    assert assessment == expected
    # the bound, not a value: Child-Pugh A5 with bilirubin's 1 point, its criterion row showing the bound
    assert (assessment["child_pugh"]["points"], assessment["child_pugh"]["components"]["bilirubin"]) == (5, 1)
    row = next(c for c in assessment["criteria"] if c["id"] == "bilirubin")
    assert (row["value"], row["status"]) == ("<0.2", "preferred")
    assert "labs.bilirubin (a bound: <0.2 mg/dL)" in assessment["missing_inputs"]
    # the lesion measured on the images, as in `assess`
    diameter = next(c for c in assessment["criteria"] if c["id"] == "max_diameter")
    assert abs(diameter["value"] - 12.0) <= 2.0 * 3**0.5
