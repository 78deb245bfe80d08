"""The plan as the case page shows it: probe, protocol, coverage, margin, structure and risk tables; a "not
robust" alert when the probability that every margin is met is below its target; an "out of date" badge once the case
file is edited or an image uploaded after the plan; an alert where typed and measured lesion values
disagree."""

from __future__ import annotations

import re

import pytest
from support.plans import case_with_plan, plan_document
from support.service import CASE_DOCUMENT

from cryoplan.output import write_json
from cryoplan.service.models import Job

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def section(page: str, css_class: str) -> str:
    match = re.search(rf'<table class="{css_class}">.*?</table>', page, re.S)
    assert match, css_class
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))).strip()


def test_the_plan_reads_as_tables(service):
    case_id, client = case_with_plan(service, plan_document(None, 7.0))
    page = client.get(f"/cases/{case_id}").text
    probes = section(page, "probes")
    assert "P1 17g-rod -89.6, 18.0, 39.2 -18.4, -0.1, 37.6 71.2" in probes  # the path's own length
    assert "cranio caudal 12°, lateral 81° Intercostal" in probes, probes
    assert "skin, intercostal muscle, liver nearest: portal vein 8.2 mm" in probes
    assert "P2 17g-rod" in probes and "73.5" in probes  # without a path description: the shaft length
    assert section(page, "protocol") == "Protocol Phase Minutes Freeze 15.0 Passive thaw 5.0 Freeze 15.0 Total 35.0"
    assert "-20 °C (lethal) 100.0 % 99.6 %" in section(page, "by-isotherm")
    assert "-40 °C 100.0 % 61.8 %" in section(page, "by-isotherm")
    assert "Smallest margin of the lethal zone 3.9 mm" in section(page, "margins")
    assert section(page, "critical") == "Coldest temperature reached in structures to spare Bile duct -20.4 °C"
    assert "Biloma bile duct reaches -20.4 °C" in section(page, "risks")
    assert "Not robust" not in page and "Out of date" not in page and "disagree" not in page


def test_a_plan_below_its_probability_target_is_marked_not_robust(service):
    case_id, client = case_with_plan(service, plan_document(0.02, 7.0))
    page = client.get(f"/cases/{case_id}").text
    alert = re.search(r'<div class="alert not-robust" role="alert">(.*?)</div>', page, re.S)
    assert alert, page
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", alert.group(1)))
    assert "L1: the plan is not robust" in text and "is 0.02, below the target of 0.90" in text
    assert "covers 99.6 %" in text
    robust_case, robust_client = case_with_plan(service, plan_document(0.96, 7.0))
    assert "Not robust" not in robust_client.get(f"/cases/{robust_case}").text


def test_an_edit_after_the_plan_marks_it_out_of_date(service):
    case_id, client = case_with_plan(service, plan_document(None, 7.0))
    assert "Out of date" not in client.get(f"/cases/{case_id}").text
    lesion = {**CASE_DOCUMENT["lesions"][0], "diameter_mm": 34}
    edited = service.client.put(
        f"/api/cases/{case_id}",
        json={"version": 1, "case_document": {**CASE_DOCUMENT, "lesions": [lesion]}},
        headers=service.headers("coordinator"),
    )
    assert edited.status_code == 200, edited.text
    page = client.get(f"/cases/{case_id}").text
    assert 'id="plan-stale"' in page and "the case file was edited after the plan" in page
    assert "by coordinator" in page


def test_a_status_change_alone_does_not_make_the_plan_out_of_date(service):
    case_id, client = case_with_plan(service, plan_document(None, 7.0))
    moved = service.client.post(
        f"/api/cases/{case_id}/status",
        json={"to_status": "records_complete", "reason": "all in", "version": 1},
        headers=service.headers("coordinator"),
    )
    assert moved.status_code == 200
    assert "Out of date" not in client.get(f"/cases/{case_id}").text


def test_typed_and_measured_distances_that_disagree_are_flagged(service):
    # Typed 6 mm to the nearest major vessel (the case file), measured 26.9 mm on the images.
    case_id, client = case_with_plan(service, plan_document(None, 26.9))
    page = client.get(f"/cases/{case_id}").text
    alert = re.search(r'<div class="caution discrepancy" role="status">(.*?)</div>', page, re.S)
    assert alert, page
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", alert.group(1)))
    assert "L1: typed and measured distance to the nearest major vessel disagree" in text
    assert "Typed 6 mm; the images measure 26.9 mm" in text and "use the measured value" in text
    assert page.count('class="caution discrepancy"') == 1  # the diameters (24 typed, 24.6 measured) agree


def test_two_plans_side_by_side(service):
    case_id, client = case_with_plan(service, plan_document(None, 7.0))
    with service.client.app.state.sessions() as db:
        job = Job(case_id=case_id, kind="uncertainty", status="done", attempts=1, case_version=1, created_by=1)
        db.add(job)
        db.commit()
        second = job.id
    robust = plan_document(0.96, 7.0)
    robust["lesions"][0]["coverage"]["margin_covered_pct"] = 99.91
    write_json(service.client.app.state.runner.output_dir(second) / "plan.json", robust)
    page = client.get(f"/cases/{case_id}/compare")
    assert page.status_code == 200
    table = re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(r'id="comparison">(.*?)</table>', page.text, re.S).group(1))
    )
    assert f"Job {second} (Uncertainty" in table and f"Job {second - 1} (Plan" in table  # the newest first
    assert "Tumour and margin covered 99.9 % 99.6 %" in table
    assert "P(every margin met) 0.96 not analysed" in table
    assert "Probes 2 × 17g-rod 2 × 17g-rod" in table and "Risks Biloma Biloma" in table
    assert client.get(f"/cases/{case_id}/compare", params={"a": 999}).status_code == 404


def test_the_one_page_board_summary(service):
    case_id, client = case_with_plan(service, plan_document(0.02, 7.0))
    page = client.get(f"/cases/{case_id}/summary")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    verdict = service.client.get(f"/api/cases/{case_id}", headers=service.headers("admin")).json()["assessment"]
    words = {
        "suitable": "Suitable",
        "suitable_with_conditions": "Suitable with conditions",
        "mdt_review": "Needs multidisciplinary review",
        "not_recommended": "Not recommended",
    }
    assert f"Verdict: {words[verdict['verdict']]} " in text
    assert "L1 2 × 17g-rod 15.0 / 5.0 / 15.0 min 99.6 % 3.9 mm 0.02 Biloma" in text, text
    assert "@media print" in client.get("/static/app.css").text
