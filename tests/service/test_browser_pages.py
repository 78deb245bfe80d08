"""Every page in Chromium at 1366×768 and 390×844: screenshots into the test artefacts ($CRYOPLAN_ARTEFACTS
or the test's tmp folder), no serious or critical axe-core (WCAG 2.1 A/AA) violation, no sideways
scrolling on a phone, and each page reachable from the navigation."""

from __future__ import annotations

import httpx
import pytest
from support.browser import artefacts_dir, check_page, launch_browser, log_in
from support.plans import add_finished_plan
from support.service import CASE_DOCUMENT, PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    yield from launch_browser()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_is_accessible_and_fits_a_phone(browser, live_server, database_url, tmp_path):
    server = live_server()
    for name, role in (("ada", "admin"), ("nora", "clinician")):
        created = server.cli("users", "create", name, "--role", role, CRYOPLAN_NEW_PASSWORD=PASSWORD)
        assert created.returncode == 0, created.stderr
    server.start()
    headers = server.token("nora")
    labs = {**CASE_DOCUMENT["labs"], "albumin": {"value": 39, "unit": "g/dL"}}
    case = httpx.post(
        server.url + "/api/cases",
        json={"label": "Accessibility case", "case_document": {**CASE_DOCUMENT, "labs": labs}},
        headers=headers,
    ).json()
    httpx.put(
        server.url + f"/api/cases/{case['id']}",
        json={"version": 1, "board_date": "2027-01-12"},
        headers=headers,
    )
    for step, version in (("records_complete", 2), ("eligibility_reviewed", 3)):
        moved = httpx.post(
            server.url + f"/api/cases/{case['id']}/status",
            json={"to_status": step, "reason": "ready", "version": version},
            headers=headers,
        )
        assert moved.status_code == 200, moved.text
    add_finished_plan(server, database_url, case["id"], tmp_path / "data")
    out = artefacts_dir(tmp_path)

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(server.url + "/login")
    check_page(page, "login", out)
    log_in(page, server.url, "ada")
    pages = {
        "cases": "/",
        "case": f"/cases/{case['id']}",
        "case-new": "/cases/new",
        "case-edit": f"/cases/{case['id']}/edit",
        "board": "/board",
        "tasks": "/tasks",
        "users": "/users",
        "audit": "/audit",
        "case-audit": f"/cases/{case['id']}/audit",
        "case-summary": f"/cases/{case['id']}/summary",
        "compare": f"/cases/{case['id']}/compare",
        "referral": f"/cases/{case['id']}/referral",
        "inbox": "/inbox",
        "not-found": "/cases/9999",
    }
    for name, path in pages.items():
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
        check_page(page, name, out)
    # The navigation reaches the list pages from any page.
    page.goto(server.url + f"/cases/{case['id']}")
    for link, path in (("Tumour board", "/board"), ("Tasks", "/tasks"), ("Users", "/users"), ("Cases", "/")):
        page.click(f"header nav >> text={link}")
        page.wait_for_url(server.url + path)
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    # A refusal is a page too, and its Back link (no script: the CSP allows none inline) leads back.
    clinician = browser.new_page(viewport={"width": 1366, "height": 768})
    log_in(clinician, server.url, "nora")
    clinician.goto(server.url + "/users", referer=server.url + "/board")
    assert clinician.locator("h1").inner_text() == "Not allowed (error 403)"
    check_page(clinician, "forbidden", out)
    clinician.click("#error-back")
    clinician.wait_for_url(server.url + "/board")
