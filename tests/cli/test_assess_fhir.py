"""`cryoplan assess --format fhir`: a FHIR R4 transaction Bundle that validates, its Observations carrying
the assessment's scores; a bundle without a Patient is refused on one line."""

import json

from fhir.resources.R4B.bundle import Bundle
from support.cli import run_main

from cryoplan.cli.assess import bundled_example_cases
from cryoplan.clinical import assess_record, read_case_record


def observations(document, report):
    by_url = {e["fullUrl"]: e["resource"] for e in document["entry"]}
    return {by_url[r["reference"]]["code"]["coding"][0]["code"]: by_url[r["reference"]] for r in report["result"]}


def test_fhir_output_validates_and_carries_the_scores(tmp_path, monkeypatch, capsys):
    cases = bundled_example_cases()
    target = tmp_path / "assessment.fhir.json"
    code, _, err = run_main(monkeypatch, capsys, "assess", *cases, "--format", "fhir", "-o", target)
    assert code == 0 and err == ""
    document = json.loads(target.read_text())
    parsed = Bundle.model_validate(document)  # raises on anything an R4 server would reject structurally
    assert parsed.type == "transaction" and all(e.request.method == "POST" for e in parsed.entry)
    assert len({e.fullUrl for e in parsed.entry}) == len(parsed.entry)
    reports = [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert len(reports) == len(cases)
    for path, report in zip(cases, reports, strict=True):
        expected = assess_record(read_case_record(path))
        assert report["identifier"][0]["value"] == expected.case_id
        assert report["conclusionCode"][0]["coding"][0]["code"] == f"verdict_{expected.verdict}"
        found = observations(document, report)
        child_pugh = found["child_pugh"]
        if expected.child_pugh is None:
            assert child_pugh["dataAbsentReason"]["coding"][0]["code"] == "unknown" and "valueInteger" not in child_pugh
        else:
            assert child_pugh["valueInteger"] == expected.child_pugh.points
            points = {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in child_pugh["component"]}
            assert points == {f"child_pugh_{k}": v for k, v in expected.child_pugh.components.items()}
        for key in ("meld", "meld_na", "meld_3"):
            assert found[key].get("valueInteger") == getattr(expected.meld, key)
        if expected.albi is not None:
            assert found["albi"]["valueQuantity"]["value"] == round(expected.albi.score, 4)
        if expected.transplant is not None:
            assert found["milan"].get("valueBoolean") == expected.transplant.milan
        statuses = {c.id: c.status for c in expected.criteria}
        assert {k[len("criterion_") :]: v["valueString"] for k, v in found.items() if k.startswith("criterion_")} == (
            statuses
        )


def test_fhir_output_is_deterministic(tmp_path, monkeypatch, capsys):
    case = bundled_example_cases()[0]
    outputs = [run_main(monkeypatch, capsys, "assess", case, "--format", "fhir")[1] for _ in range(2)]
    assert outputs[0] == outputs[1] and json.loads(outputs[0])["meta"]["tag"][0]["code"] == "1"


def test_bundle_without_a_patient_exits_2_on_one_line(tmp_path, monkeypatch, capsys):
    source = next(p for p in bundled_example_cases() if p.name == "hcc_fhir_bundle.json")
    document = json.loads(source.read_text())
    document["entry"] = [e for e in document["entry"] if e["resource"]["resourceType"] != "Patient"]
    path = tmp_path / "no_patient.json"
    path.write_text(json.dumps(document))
    target = tmp_path / "out.json"
    code, out, err = run_main(monkeypatch, capsys, "assess", path, "--format", "fhir", "-o", target)
    assert code == 2 and out == "" and not target.exists()
    assert err == f"cryoplan: error: {path}: Bundle.entry: expected exactly one Patient, got 0\n"
