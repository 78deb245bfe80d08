"""The case page follows its jobs by polling the job-status endpoint: starting a job and watching it run
never reloads the page, so text typed into a message and the workflow reason survive it."""

from __future__ import annotations

import time

import httpx
import pytest
from support.browser import launch_browser, log_in
from support.service import CASE_DOCUMENT, PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    yield from launch_browser()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_typed_text_survives_a_running_job(browser, live_server):
    server = live_server()
    assert server.cli("users", "create", "nora", "--role", "clinician", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    created = httpx.post(
        server.url + "/api/cases",
        json={"label": "Live status", "case_document": CASE_DOCUMENT},
        headers=server.token("nora"),
    )
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    log_in(page, server.url, "nora")
    page.goto(f"{server.url}/cases/{case_id}")
    page.evaluate("() => { window.notReloaded = true; }")  # gone if the page reloads or navigates
    message = "Called the referring hospital; the MRI follows on Monday."
    page.fill('#messages textarea[name="body"]', message)
    page.fill('#workflow input[name="reason"]', "records in")
    requests = []
    page.on("request", lambda request: requests.append(request.url))

    page.select_option("#job-kind", "assessment")
    page.click('#job-form button[type="submit"]')
    statuses = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = page.evaluate("() => document.querySelector('#jobs tbody tr[data-job-id]')?.dataset.jobStatus ?? null")
        statuses.append(status)
        if status in ("done", "failed"):
            break
        page.wait_for_timeout(200)
    assert statuses[-1] == "done", statuses
    assert page.evaluate("() => window.notReloaded === true"), "the page reloaded"
    assert page.input_value('#messages textarea[name="body"]') == message
    assert page.input_value('#workflow input[name="reason"]') == "records in"
    # The job panel was filled in from the status endpoint, not by loading the case page again.
    assert any(url.endswith(f"/api/cases/{case_id}/job-status") for url in requests), requests
    assert not any(url.rstrip("/").endswith(f"/cases/{case_id}") for url in requests if "/api/" not in url), requests
    row = page.locator("#jobs tbody tr[data-job-id]").first
    assert row.locator(".job-kind").inner_text() == "Eligibility assessment"
    assert row.locator("progress").evaluate("bar => bar.value") == 1.0
