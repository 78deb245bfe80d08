"""`cryoplan schema NAME` prints each document's JSON Schema, and real outputs validate against its model."""

import json

import pytest
from pydantic import TypeAdapter
from support.cli import run_main

from cryoplan.cli.assess import bundled_example_cases
from cryoplan.schemas import SCHEMAS, json_schema
from cryoplan.schemas.documents import AssessmentDocument, ProbesDocument


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_command_prints_the_schema(name, monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "schema", name)
    schema = json.loads(out)
    assert code == 0 and schema == json_schema(name)
    assert schema["$schema"].endswith("2020-12/schema") and schema["$id"] == f"urn:cryoplan:schema:{name}"


def test_unknown_schema_exits_2(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "schema", "plan-ish")
    assert code == 2 and out == "" and err.count("\n") == 1 and "one of case, assessment" in err


def test_every_example_assessment_matches_the_published_schema(tmp_path, monkeypatch, capsys):
    target = tmp_path / "a.json"
    code, _, _ = run_main(monkeypatch, capsys, "assess", *bundled_example_cases(), "-f", "json", "-o", target)
    documents = json.loads(target.read_text())
    assert code == 0 and isinstance(documents, list)
    TypeAdapter(list[AssessmentDocument]).validate_python(documents)  # extra keys or wrong types raise
    schema = json_schema("assessment")
    assert schema["type"] == "array"
    item = schema["$defs"]["AssessmentDocument"]
    for document in documents:
        assert set(document) == set(item["properties"]) == set(item["required"])


def test_case_schema_is_the_case_model():
    schema = json_schema("case")
    assert {"schema_version", "diagnosis"} <= set(schema["required"]) and "labs" in schema["properties"]


def test_probes_output_matches_the_published_schema(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "probes", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["probes"]
    ProbesDocument.model_validate(document)
    item = json_schema("probes")["$defs"]["ProbeRow"]
    assert all(set(row) == set(item["properties"]) for row in document["probes"])
