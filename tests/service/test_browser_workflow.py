"""Workflow steps a user clicks through in Chromium: the board asks for more information and the case goes
back on a meeting's agenda from its page; the coordinator chooses what a referral packet holds, previews it
and downloads exactly that. Screenshots go to the test artefacts, and each page passes the axe-core check."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import httpx
import pytest
from support.browser import artefacts_dir, check_page, launch_browser, log_in
from support.plans import add_finished_plan
from support.service import CASE_DOCUMENT, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

LETTER = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def browser():
    yield from launch_browser()


def planned_case(server, database_url: str, data_dir, headers: dict[str, str], label: str) -> int:
    """A case with a current plan, moved on to "planned" (on the board's agenda)."""
    created = httpx.post(
        server.url + "/api/cases", json={"label": label, "case_document": CASE_DOCUMENT}, headers=headers
    )
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]
    add_finished_plan(server, database_url, case_id, data_dir)
    for step, version in (("records_complete", 1), ("eligibility_reviewed", 2), ("planned", 3)):
        moved = httpx.post(
            server.url + f"/api/cases/{case_id}/status",
            json={"to_status": step, "reason": "ready", "version": version},
            headers=headers,
        )
        assert moved.status_code == 200, moved.text
    return int(case_id)


def test_the_board_asks_for_more_information_and_the_case_goes_back_to_it(browser, live_server, database_url, tmp_path):
    server = live_server()
    assert server.cli("users", "create", "nora", "--role", "clinician", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    case_id = planned_case(server, database_url, tmp_path / "data", server.token("nora"), "Back to the board")
    out = artefacts_dir(tmp_path)

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    log_in(page, server.url, "nora")
    page.goto(server.url + "/board")
    row = page.locator(f'#agenda tr[data-case-id="{case_id}"]')
    row.locator("select").select_option("more_information_needed")
    row.locator("textarea").fill("MRI of the liver first")
    row.locator('input[type="checkbox"]').check()
    row.locator('button[type="submit"]').click()
    page.wait_for_url(server.url + "/board")
    assert page.locator("#board-history").inner_text().count("More information needed") == 1

    page.goto(f"{server.url}/cases/{case_id}")
    note = page.locator("#board-return")
    assert "MRI of the liver first" in note.inner_text()
    assert page.locator("#board-return-status option").all_inner_texts() == ["Eligibility reviewed", "Planned"]
    # A meeting already past is refused beside the form, and what was typed stays.
    page.select_option("#board-return-status", "planned")
    page.fill("#board-return-date", "2020-01-07")
    page.fill("#board-return-reason", "MRI of 3 March received")
    page.click('#board-return-form button[type="submit"]')
    page.wait_for_load_state("networkidle")
    error = page.locator("#workflow .field-error")
    assert error.inner_text() == "board_date: expected a meeting today or later, got '2020-01-07'"
    assert page.input_value("#board-return-reason") == "MRI of 3 March received"
    check_page(page, "board-return-refused", out)

    meeting = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    page.fill("#board-return-date", meeting)
    page.click('#board-return-form button[type="submit"]')
    page.wait_for_url(f"{server.url}/cases/{case_id}")
    assert page.locator("#board-return").count() == 0
    assert "MRI of 3 March received" in page.locator("#workflow ol.history").inner_text()
    check_page(page, "board-return-done", out)
    # The case is on that meeting's agenda again, ready for the board's next decision.
    page.goto(server.url + "/board")
    page.select_option("#board-date", meeting)
    page.click('#board-filter button[type="submit"]')
    page.wait_for_url(f"{server.url}/board?board_date={meeting}")
    assert page.locator(f'#agenda tr[data-case-id="{case_id}"]').count() == 1
    check_page(page, "board-return-agenda", out)


def test_the_coordinator_chooses_previews_and_downloads_the_referral_packet(
    browser, live_server, database_url, tmp_path
):
    server = live_server()
    for name, role in (("nora", "clinician"), ("cora", "coordinator")):
        assert server.cli("users", "create", name, "--role", role, CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    case_id = planned_case(server, database_url, tmp_path / "data", server.token("nora"), "Referral choice")
    documents = []
    for name in ("letter.pdf", "labs.pdf"):
        uploaded = httpx.post(
            server.url + f"/api/cases/{case_id}/documents",
            data={"purpose": "record"},
            files={"file": (name, LETTER, "application/pdf")},
            headers=server.token("cora"),
        )
        assert uploaded.status_code == 201, uploaded.text
        documents.append(uploaded.json()["id"])
    out = artefacts_dir(tmp_path)

    page = browser.new_page(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    log_in(page, server.url, "cora")
    page.goto(f"{server.url}/cases/{case_id}")
    page.click("text=Referral packet")
    page.wait_for_url(f"{server.url}/cases/{case_id}/referral")
    listed = lambda: page.locator("#referral-contents td.hash").all_inner_texts()  # noqa: E731
    assert listed()[0] == "report.pdf" and "plan/plan.json" in listed() and len(listed()) == 5
    # Without the report and the second letter: the preview shows what is left, before anything is made.
    page.uncheck("#referral-report")
    page.uncheck(f"#referral-document-{documents[1]}")
    page.click("#referral-preview")
    page.wait_for_load_state("networkidle")
    chosen = listed()
    assert len(chosen) == 3 and chosen[0].startswith(f"documents/document-{documents[0]}-")
    assert chosen[1:] == ["plan/plan.json", "manifest.json"]
    assert not page.is_checked("#referral-report") and page.is_checked(f"#referral-document-{documents[0]}")
    check_page(page, "referral-chosen", out)
    with page.expect_download() as download:
        page.click("#referral-download")
    packet = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
    assert sorted(packet.namelist()) == sorted(chosen)
    assert packet.read(chosen[0]) == LETTER
