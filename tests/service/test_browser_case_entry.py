"""A navigator's journey in Chromium: create a case through the form (an implausible albumin gets its warning
as it is typed, naming the likely unit), then import the shipped YAML case and FHIR bundle into the form and
create those cases."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import launch_browser, log_in
from support.service import PASSWORD

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    yield from launch_browser()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_navigator_enters_and_imports_cases(browser, live_server):
    server = live_server()
    assert server.cli("users", "create", "nav", "--role", "coordinator", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    log_in(page, server.url, "nav")

    page.click("text=New case")
    page.fill("#f-label", "Form patient")
    page.fill("#f-patient-age", "71")
    page.select_option("#f-patient-sex", "female")
    page.select_option("#f-diagnosis-cirrhosis", "yes")
    page.select_option("#f-diagnosis-liver_disease", "hcv")
    page.fill("#f-labs-bilirubin-value", "1.4")
    page.fill("#f-labs-albumin-value", "39")  # g/dL is the unit selected: a g/L value typed
    page.fill("#f-labs-inr", "1.2")
    page.fill("#f-lesions-0-id", "L1")
    page.fill("#f-lesions-0-diameter_mm", "27")
    page.focus("#f-labs-inr")  # leaving the field checks it
    warning = page.locator("#f-labs-albumin-value-live")
    warning.wait_for(state="visible")
    assert warning.inner_text() == "Albumin 39 g/dL is implausible (expected 1–6.5 g/dL): it looks like g/L."
    page.select_option("#f-labs-albumin-unit", "g/L")  # the user corrects the unit: the warning goes
    page.wait_for_function("() => document.getElementById('f-labs-albumin-value-live').hidden")
    page.click('#case-form button[type="submit"]')
    page.wait_for_url("**/cases/*")
    assert page.locator("h1").inner_text().endswith("Form patient")
    assert page.locator("#summary .lab-albumin").inner_text() == "39 g/L"
    assert "Check these lab values" not in page.locator("#summary").inner_text()
    assert "Verdict:" in page.locator("#assessment").inner_text()

    for name, diagnosis in (("hcc_eligible.yaml", "Hepatocellular carcinoma"), ("hcc_fhir_bundle.json", None)):
        page.goto(server.url + "/cases/new")
        page.click("details.import summary")
        page.set_input_files("#f-case_file", str(EXAMPLES / name))
        page.click('#import-form button[type="submit"]')
        page.wait_for_load_state()
        assert f"Read from {name}" in page.locator("main").inner_text()
        assert page.input_value("#f-label") == name.rsplit(".", 1)[0]
        page.click('#case-form button[type="submit"]')
        page.wait_for_url("**/cases/*")
        summary = page.locator("#summary").inner_text()
        assert (diagnosis or "Hepatocellular carcinoma") in summary
        assert "Verdict:" in page.locator("#assessment").inner_text(), page.locator("#assessment").inner_text()
