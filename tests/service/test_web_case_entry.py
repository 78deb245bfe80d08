"""Structured case entry: the form builds the case document the assessment reads, keeps what was typed when
a field is wrong and says which, imports case files and FHIR bundles into the form, and warns (without
refusing) when a lab value is implausible in its unit, naming the likely mix-up."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, browser_login

from cryoplan import units
from cryoplan.case import parse_case
from cryoplan.errors import InputError
from cryoplan.service.routes.case_entry import (
    PLAUSIBLE,
    form_values,
    imported_document,
    lab_warnings,
    plausibility_warning,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def page_client(service, role: str = "coordinator") -> tuple[TestClient, str]:
    client = TestClient(service.client.app, follow_redirects=False)
    return client, browser_login(client, role)


def form_of(document: dict) -> dict:
    """The form fields a user fills in for `document` (what the page would post)."""
    fields = {}
    for name, value in form_values(document).items():
        if isinstance(value, bool):
            if value:
                fields[name] = "on"
        elif isinstance(value, list):
            fields[name] = value
        elif value is not None:
            fields[name] = str(value)
    return fields


def stored_document(service, case_id: int) -> dict:
    response = service.client.get(f"/api/cases/{case_id}", headers=service.headers("admin"))
    return response.json()["case_document"]


def test_the_form_round_trips_a_case_document(service):
    client, csrf = page_client(service)
    document = {**CASE_DOCUMENT, "transplant_listed": False, "prior_treatments": ["tace"]}
    response = client.post(
        "/cases/new", data={"csrf_token": csrf, "entry": "form", "label": "Form case", **form_of(document)}
    )
    assert response.status_code == 303, response.text
    case_id = int(response.headers["location"].rsplit("/", 1)[1])
    stored = stored_document(service, case_id)
    assert parse_case(stored) == parse_case(document)
    page = client.get(f"/cases/{case_id}").text
    assert "Verdict:" in page and "Check these lab values" not in page


def test_a_wrong_field_is_named_beside_it_and_the_input_is_kept(service):
    client, csrf = page_client(service)
    fields = {**form_of(CASE_DOCUMENT), "patient.age": "sixty-four", "lesions[0].diameter_mm": "-3"}
    response = client.post("/cases/new", data={"csrf_token": csrf, "entry": "form", "label": "Kept", **fields})
    assert response.status_code == 422
    errors = dict(re.findall(r'<p class="field-error" id="f-([\w-]+)-error">([^<]*)</p>', response.text))
    assert errors == {"patient-age": "expected a number, got &#39;sixty-four&#39;"}, errors
    assert 'value="sixty-four"' in response.text and 'value="Kept"' in response.text
    assert 'aria-invalid="true"' in response.text
    # Once the age is a number, the model's own check names the negative diameter.
    fields["patient.age"] = "64"
    response = client.post("/cases/new", data={"csrf_token": csrf, "entry": "form", "label": "Kept", **fields})
    assert response.status_code == 422
    try:
        parse_case({**CASE_DOCUMENT, "lesions": [{**CASE_DOCUMENT["lesions"][0], "diameter_mm": -3}]})
    except InputError as error:
        expected = html.escape(error.expected)
    assert f'id="f-lesions-0-diameter_mm-error">{expected}' in response.text
    assert 'value="-3"' in response.text
    assert service.client.get("/api/cases", headers=service.headers("admin")).json() == []


def test_the_advanced_json_view_keeps_bad_json_and_says_where(service):
    client, csrf = page_client(service)
    text = '{"schema_version": 1, "diagnosis": {"type": "hcc"},}'
    response = client.post(
        "/cases/new", data={"csrf_token": csrf, "entry": "json", "label": "J", "case_document": text}
    )
    assert response.status_code == 422
    assert "valid JSON (line 1" in response.text and "&#34;diagnosis&#34;" in response.text


@pytest.mark.parametrize(
    ("name", "expected"),
    [("hcc_eligible.yaml", None), ("hcc_fhir_bundle.json", None), ("colorectal_metastases.yaml", None)],
)
def test_imported_files_fill_the_form(service, name, expected):
    client, csrf = page_client(service)
    content = (EXAMPLES / name).read_bytes()
    response = client.post("/cases/new/import", data={"csrf_token": csrf}, files={"case_file": (name, content)})
    assert response.status_code == 200, response.text
    assert f"Read from {name}" in response.text
    age = re.search(r'name="patient.age"[^>]*value="([^"]*)"', response.text).group(1)
    if name.endswith(".yaml"):
        assert age == str(yaml.safe_load(content)["patient"]["age"])
    else:
        assert age.isdigit() and 18 <= int(age) <= 100  # from the bundle's birth date
    diagnosis = re.search(r'name="diagnosis.type".*?<option value="(\w+)" selected', response.text, re.S).group(1)
    assert diagnosis in ("hcc", "colorectal_metastasis")
    assert 'name="label"' in response.text and f'value="{name.rsplit(".", 1)[0]}"' in response.text


def test_an_unreadable_import_is_named_in_the_form(service):
    client, csrf = page_client(service)
    response = client.post(
        "/cases/new/import", data={"csrf_token": csrf}, files={"case_file": ("x.yaml", b"a: [unclosed\n")}
    )
    assert response.status_code == 422
    assert re.search(r'id="f-case_file-error">[^<]*YAML or JSON', response.text)


@pytest.mark.parametrize(
    ("text", "got"),
    [("a: [unclosed\n", "unreadable near line 2"), ("a: b\x00\n", "unreadable")],  # a control character has no line
)
def test_an_unreadable_case_file_is_an_input_error(database_url, text, got):
    with pytest.raises(InputError) as refused:
        imported_document(text, "x.yaml")
    assert refused.value.field == "case_file" and refused.value.got == got


def test_an_implausible_lab_is_saved_with_a_warning_naming_the_unit(service):
    client, csrf = page_client(service)
    labs = {**CASE_DOCUMENT["labs"], "albumin": {"value": 39, "unit": "g/dL"}}
    fields = form_of({**CASE_DOCUMENT, "labs": labs})
    response = client.post("/cases/new", data={"csrf_token": csrf, "entry": "form", "label": "Alb", **fields})
    assert response.status_code == 303  # a warning, not a refusal
    page = client.get(response.headers["location"]).text
    assert "Albumin 39 g/dL is implausible (expected 1–6.5 g/dL): it looks like g/L." in page
    check = client.get("/api/lab-plausibility", params={"analyte": "albumin", "value": 39, "unit": "g/dL"})
    assert check.json()["warning"].endswith("it looks like g/L.")
    assert client.get("/api/lab-plausibility", params={"analyte": "albumin", "value": 39, "unit": "g/L"}).json() == {
        "schema_version": 1,
        "analyte": "albumin",
        "warning": None,
    }
    assert (
        client.get("/api/lab-plausibility", params={"analyte": "albumin", "value": 3, "unit": "mmHg"}).status_code
        == 422
    )


@pytest.mark.parametrize("analyte", sorted(set(PLAUSIBLE) - {"inr", "sodium"}))
def test_each_unit_mix_up_is_named(analyte, database_url):
    """A value typed in one unit but given in the other: the warning names the unit it was measured in."""
    canonical, other = units.accepted_units(analyte)
    low, high = PLAUSIBLE[analyte]
    typical = (low * high) ** 0.5  # well inside the plausible range, in the canonical unit
    for measured_in, labelled in ((canonical, other), (other, canonical)):
        value = units.convert(analyte, typical, canonical, measured_in)
        assert plausibility_warning(analyte, value, measured_in) is None
        warning = plausibility_warning(analyte, value, labelled)
        if warning is not None:  # factors near 1 (none here) could leave both plausible
            assert warning.endswith(f"it looks like {measured_in}."), warning
    assert plausibility_warning(analyte, typical * 1000, canonical) is not None


def test_lab_warnings_are_keyed_by_form_field(database_url):
    labs = {"platelets": {"value": 140000, "unit": "10^9/L"}, "inr": 25.0, "sodium": {"value": 139, "unit": "mmol/L"}}
    warnings = lab_warnings({"labs": labs})
    assert set(warnings) == {"labs.platelets.value", "labs.inr"}
    assert warnings["labs.platelets.value"].endswith("it looks like /uL.")
