"""`cryoplan assess` through the real entry point: outputs, exit codes, and bad input
giving exit 2, one line naming the field, and no output file."""

import json
import subprocess
import sys

import pytest
import yaml
from support.cases import DELETE, case_document
from support.cli import run_main


def write_case(folder, name="case.yaml", **changes):
    path = folder / name
    path.write_text(yaml.safe_dump(case_document(**changes), allow_unicode=True), encoding="utf-8")
    return path


def test_json_for_one_case_is_an_array_of_one(tmp_path, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "assess", write_case(tmp_path), "--format", "json")
    assert code == 0 and err == ""
    [document] = json.loads(out)
    assert document["schema_version"] == 1 and document["verdict"] == "suitable" and document["case_id"] == "case"


def test_json_for_several_cases_is_an_array_in_order(tmp_path, monkeypatch, capsys):
    first = write_case(tmp_path, "b.yaml", patient__ecog=1)
    second = write_case(tmp_path, "a.yaml")
    code, out, _ = run_main(monkeypatch, capsys, "assess", first, second, "--format", "json")
    assert code == 0
    documents = json.loads(out)
    assert [d["case_id"] for d in documents] == ["b", "a"]
    assert [d["bclc"]["stage"] for d in documents] == ["C", "A"]


def test_text_table(tmp_path, monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "assess", write_case(tmp_path), "--format", "text")
    assert code == 0
    for expected in ("verdict: suitable", "Child-Pugh", "A5", "bile_duct_distance", "BCLC 2022"):
        assert expected in out


def test_text_to_file(tmp_path, monkeypatch, capsys):
    target = tmp_path / "out" / "assessment.txt"
    code, out, _ = run_main(monkeypatch, capsys, "assess", write_case(tmp_path), "--format", "text", "-o", target)
    assert code == 0 and out == "" and "lesion_count" in target.read_text()


def test_html_page_is_standalone_and_escaped(tmp_path, monkeypatch, capsys):
    path = write_case(tmp_path, case_id="<script>alert(1)</script>", lesions=[{"id": "L<1>", "diameter_mm": 20}])
    target = tmp_path / "assessment.html"
    code, _, _ = run_main(monkeypatch, capsys, "assess", path, "--format", "html", "-o", target)
    assert code == 0
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page and "&lt;script&gt;" in page
    assert "L&lt;1&gt;" in page and "mdt review" in page and "http" not in page.split("<footer")[0]


def test_fhir_bundle_through_the_cli_lists_unused_entries(monkeypatch, capsys):
    from cryoplan.cli.assess import bundled_example_cases

    bundle = next(p for p in bundled_example_cases() if p.name == "hcc_fhir_bundle.json")
    code, out, _ = run_main(monkeypatch, capsys, "assess", bundle, "--format", "json")
    assert code == 0
    assert any("haemoglobin" in u for u in json.loads(out)[0]["unused_fhir_observations"])


def test_cryoshock_threshold_option(tmp_path, monkeypatch, capsys):
    path = write_case(tmp_path)
    _, out, _ = run_main(monkeypatch, capsys, "assess", path, "--format", "json", "--cryoshock-tumour-volume-ml", "5")
    assert "cryoshock_caution" in [r["id"] for r in json.loads(out)[0]["recommendations"]]


BAD = {
    "missing unit": ({"labs.bilirubin": {"value": 1.1}}, "labs.bilirubin.unit"),
    "unknown unit": ({"labs.creatinine": {"value": 80, "unit": "mmol/L"}}, "labs.creatinine.unit"),
    "wrong type": ({"labs.albumin": {"value": "low", "unit": "g/dL"}}, "labs.albumin.value"),
    "negative value": ({"labs.sodium": {"value": -139, "unit": "mmol/L"}}, "labs.sodium.value"),
    "INR below 0.5": ({"labs.inr": 0.3}, "labs.inr"),
    "platelets 0": ({"labs.platelets": {"value": 0, "unit": "/uL"}}, "labs.platelets.value"),
    "ECOG 7": ({"patient.ecog": 7}, "patient.ecog"),
    "lesion of 0 mm": ({"lesions.0.diameter_mm": 0}, "lesions[0].diameter_mm"),
    "INR and PT contradict": ({"labs.prothrombin_time_prolonged_s": 9}, "labs"),
    "duplicate lesion ids": ({"lesions": [{"id": "A", "diameter_mm": 10}, {"id": "A", "diameter_mm": 11}]}, "lesions"),
    "cirrhosis without liver disease": ({"diagnosis.liver_disease": "none"}, "diagnosis"),
    "missing diagnosis": ({"diagnosis": DELETE}, "diagnosis"),
}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("output_format", ["json", "html"])
def test_bad_case_exits_2_with_one_line_and_no_output(kind, output_format, tmp_path, monkeypatch, capsys):
    changes, field = BAD[kind]
    bad = write_case(tmp_path, "bad.yaml", **changes)
    target = tmp_path / "out" / f"assessment.{output_format}"
    code, out, err = run_main(monkeypatch, capsys, "assess", bad, "--format", output_format, "-o", target)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"{bad}: {field}: expected" in err and "Traceback" not in err
    assert not target.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", list(BAD))
def test_good_bad_good_assesses_the_good_ones_and_exits_2(kind, tmp_path, monkeypatch, capsys):
    changes, field = BAD[kind]
    first, last = write_case(tmp_path, "first.yaml"), write_case(tmp_path, "last.yaml", patient__ecog=1)
    bad = write_case(tmp_path, "bad.yaml", **changes)
    target = tmp_path / "assessment.json"
    code, out, err = run_main(monkeypatch, capsys, "assess", first, bad, last, "--format", "json", "-o", target)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"{bad}: {field}: expected" in err and "Traceback" not in err
    assert [(d["case_id"], d["bclc"]["stage"]) for d in json.loads(target.read_text())] == [
        ("first", "A"),
        ("last", "C"),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "a readable UTF-8 YAML or JSON file"),
        (b"\xff\xfe\x00\x9c", "readable UTF-8"),
        (b"schema_version: 1\ndiagnosis: [hcc\n", "valid YAML"),
        (b"- just\n- a list\n", "a case document"),
    ],
)
def test_unreadable_files_exit_2(content, expected, tmp_path, monkeypatch, capsys):
    path = tmp_path / "case.yaml"
    if content is not None:
        path.write_bytes(content)
    target = tmp_path / "out.json"
    code, _, err = run_main(monkeypatch, capsys, "assess", path, "--format", "json", "-o", target)
    assert code == 2 and err.count("\n") == 1 and str(path) in err and expected in err
    assert not target.exists()


def test_bad_fhir_unit_exits_2(tmp_path, monkeypatch, capsys):
    from cryoplan.cli.assess import bundled_example_cases

    document = json.loads(next(p for p in bundled_example_cases() if p.name == "hcc_fhir_bundle.json").read_text())
    document["entry"][4]["resource"]["valueQuantity"]["code"] = "mg/L"
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(document))
    code, _, err = run_main(monkeypatch, capsys, "assess", path, "--format", "json")
    assert code == 2 and "Bundle.entry[4].resource.valueQuantity.code" in err and "one of mg/dL, umol/L" in err


def test_bundled_examples_cover_every_verdict(tmp_path, monkeypatch, capsys):
    from cryoplan.cli.assess import bundled_example_cases

    target = tmp_path / "examples.json"
    code, _, _ = run_main(monkeypatch, capsys, "assess", *bundled_example_cases(), "--format", "json", "-o", target)
    assert code == 0
    verdicts = {d["case_id"]: d["verdict"] for d in json.loads(target.read_text())}
    assert set(verdicts.values()) == {"suitable", "suitable_with_conditions", "mdt_review", "not_recommended"}
    assert verdicts["hcc_eligible"] == "suitable" and verdicts["colorectal_metastases"] == "suitable_with_conditions"


def test_real_process_exit_codes(tmp_path):
    bad = write_case(tmp_path, "bad.yaml", patient__ecog=7)
    target = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "cryoplan", "assess", str(bad), "--format", "json", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"cryoplan: error: {bad}: patient.ecog: expected less than or equal to 5, got 7\n"
    assert not target.exists()
    good = write_case(tmp_path, "good.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "cryoplan", "assess", str(good), "--format", "json", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and json.loads(target.read_text())[0]["verdict"] == "suitable"
