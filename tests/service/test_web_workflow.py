"""Workflow and team on the pages: "planned" only with a current plan; a board decision takes an explicit
choice and a confirmation, and decided cases stay in the board's history; after "more information needed" the
case page puts the case back on a board meeting's agenda; a refused form keeps what was
typed and says why beside it; tasks are assigned from a user picker and "my tasks" lists one's own; the
case timeline gathers what happened."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from starlette.testclient import TestClient
from support.plans import case_with_plan, plan_document
from support.service import browser_login

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def page_client(service, role: str) -> tuple[TestClient, str]:
    client = TestClient(service.client.app, follow_redirects=False)
    return client, browser_login(client, role)


def move(service, case_id: int, to_status: str, version: int) -> None:
    response = service.client.post(
        f"/api/cases/{case_id}/status",
        json={"to_status": to_status, "reason": "next", "version": version},
        headers=service.headers("admin"),
    )
    assert response.status_code == 200, response.text


def status_options(page: str) -> list[str]:
    select = re.search(r'<select name="to_status" id="to-status">(.*?)</select>', page, re.S)
    return re.findall(r'<option value="(\w+)"', select.group(1)) if select else []


def test_planned_needs_a_current_plan(service):
    case = service.create_case()
    move(service, case["id"], "records_complete", 1)
    move(service, case["id"], "eligibility_reviewed", 2)
    client, csrf = page_client(service, "clinician")
    page = client.get(f"/cases/{case['id']}").text
    assert status_options(page) == ["closed"] and "“Planned” needs a finished plan." in page
    form = {"csrf_token": csrf, "version": "3", "to_status": "planned", "reason": "plan discussed"}
    refused = client.post(f"/cases/{case['id']}/status", data=form)
    assert refused.status_code == 409
    assert re.search(
        r'<p class="field-error" role="alert">“Planned” needs a finished plan: run a plan first', refused.text
    )
    assert 'value="plan discussed"' in refused.text  # the reason typed is kept
    assert service.client.get(f"/api/cases/{case['id']}", headers=service.headers("admin")).json()["status"] == (
        "eligibility_reviewed"
    )


def test_planned_is_offered_with_a_current_plan(service):
    case_id, _ = case_with_plan(service, plan_document(None, 7.0))
    move(service, case_id, "records_complete", 1)
    move(service, case_id, "eligibility_reviewed", 2)
    client, csrf = page_client(service, "clinician")
    assert status_options(client.get(f"/cases/{case_id}").text) == ["planned", "closed"]
    form = {"csrf_token": csrf, "version": "3", "to_status": "planned", "reason": "plan ready"}
    assert client.post(f"/cases/{case_id}/status", data=form).status_code == 303
    # On the board's agenda, the decision is the board page's to record: no status step stands in for it.
    page = client.get(f"/cases/{case_id}").text
    assert status_options(page) == ["closed"]
    assert re.search(r'<p id="on-the-agenda">On the tumour board.s agenda: .*<a href="/board">', page)


def test_a_board_decision_needs_a_choice_and_a_confirmation(service):
    case = service.create_case()
    move(service, case["id"], "records_complete", 1)
    move(service, case["id"], "eligibility_reviewed", 2)
    client, csrf = page_client(service, "clinician")
    board = client.get("/board").text
    assert '<option value="">choose the board\'s decision…</option>' in board
    assert not re.search(r'<option value="cryoablation"[^>]* selected', board)
    base = {"csrf_token": csrf, "version": "3", "notes": "discussed at length"}
    no_choice = client.post(f"/cases/{case['id']}/board-decision", data={**base, "confirm": "yes"})
    assert no_choice.status_code == 422 and "the board&#39;s decision, chosen from the list" in no_choice.text
    assert "discussed at length</textarea>" in no_choice.text
    unconfirmed = client.post(f"/cases/{case['id']}/board-decision", data={**base, "decision": "cryoablation"})
    assert unconfirmed.status_code == 422 and "confirmation" in unconfirmed.text
    assert re.search(r'<option value="cryoablation" selected>', unconfirmed.text)
    recorded = client.post(
        f"/cases/{case['id']}/board-decision", data={**base, "decision": "cryoablation", "confirm": "yes"}
    )
    assert recorded.status_code == 303
    board = client.get("/board").text
    history = re.search(r'<table class="list" id="board-history">(.*?)</table>', board, re.S).group(1)
    assert "Cryoablation" in history and "discussed at length" in history and "clinician" in history
    agenda = re.search(r'<table class="list" id="agenda">(.*?)</table>', board, re.S).group(1)
    assert "No case awaits the board" in agenda


def options(page: str, select_id: str) -> list[str]:
    select = re.search(rf'<select name="to_status" id="{select_id}">(.*?)</select>', page, re.S)
    return re.findall(r'<option value="(\w+)"', select.group(1)) if select else []


def test_after_more_information_the_case_page_sends_the_case_back_to_the_board(service):
    case_id, _ = case_with_plan(service, plan_document(None, 7.0))
    for step, version in (("records_complete", 1), ("eligibility_reviewed", 2), ("planned", 3)):
        move(service, case_id, step, version)
    client, csrf = page_client(service, "clinician")
    asked = {"csrf_token": csrf, "version": "4", "decision": "more_information_needed", "confirm": "yes"}
    asked["notes"] = "MRI of the liver first"
    assert client.post(f"/cases/{case_id}/board-decision", data=asked).status_code == 303
    page = client.get(f"/cases/{case_id}").text
    note = re.search(r'<div class="note" id="board-return">(.*?)</div>', page, re.S).group(1)
    assert "asked for more information" in note and "MRI of the liver first" in note
    # The way back is its own form (reviewed, or planned while the plan is current); the status form only closes.
    assert options(page, "board-return-status") == ["eligibility_reviewed", "planned"]
    assert options(page, "to-status") == ["closed"]
    coordinator, _ = page_client(service, "coordinator")
    seen = coordinator.get(f"/cases/{case_id}").text
    assert 'id="board-return"' in seen and 'id="board-return-form"' not in seen
    assert "A clinician presents it to the board again." in seen

    meeting = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    form = {"csrf_token": csrf, "version": "5", "to_status": "planned", "board_date": meeting, "reason": "MRI came"}
    past = client.post(f"/cases/{case_id}/return-to-board", data={**form, "board_date": "2020-01-07"})
    assert past.status_code == 422
    assert re.search(r'<p class="field-error" role="alert">board_date: expected a meeting today or later', past.text)
    assert 'value="MRI came"' in past.text and 'value="2020-01-07"' in past.text  # what was typed is kept
    no_reason = client.post(f"/cases/{case_id}/return-to-board", data={**form, "reason": " "})
    assert no_reason.status_code == 422 and "what came in that the board asked for" in no_reason.text
    assert coordinator.post(f"/cases/{case_id}/return-to-board", data=form).status_code == 403
    assert client.post(f"/cases/{case_id}/return-to-board", data=form).status_code == 303

    detail = service.client.get(f"/api/cases/{case_id}", headers=service.headers("viewer")).json()
    assert detail["status"] == "planned" and detail["board_date"] == meeting
    assert detail["status_history"][-1]["reason"] == "MRI came"
    board = client.get("/board", params={"board_date": meeting}).text
    agenda = re.search(r'<table class="list" id="agenda">(.*?)</table>', board, re.S).group(1)
    assert f'data-case-id="{case_id}"' in agenda
    page = client.get(f"/cases/{case_id}").text
    assert 'id="board-return"' not in page
    history = re.search(r'<ol class="history">(.*?)</ol>', page, re.S).group(1)
    assert "Tumour board: More information needed" in history and "more_information_needed" not in history
    again = client.post(f"/cases/{case_id}/return-to-board", data={**form, "version": "6"})
    assert again.status_code == 409 and "the board has not asked for more information" in again.text


def test_back_to_the_board_as_planned_needs_a_current_plan(service):
    case = service.create_case()
    for step, version in (("records_complete", 1), ("eligibility_reviewed", 2)):
        move(service, case["id"], step, version)
    decided = service.client.post(
        f"/api/cases/{case['id']}/board-decision",
        json={"decision": "more_information_needed", "version": 3, "confirmed": True},
        headers=service.headers("clinician"),
    )
    assert decided.status_code == 201, decided.text
    client, csrf = page_client(service, "clinician")
    page = client.get(f"/cases/{case['id']}").text
    assert options(page, "board-return-status") == ["eligibility_reviewed"]
    assert "“Planned” needs a finished plan." in page
    meeting = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    form = {"csrf_token": csrf, "version": "4", "board_date": meeting, "reason": "labs repeated"}
    refused = client.post(f"/cases/{case['id']}/return-to-board", data={**form, "to_status": "planned"})
    assert refused.status_code == 409 and "needs a finished plan: run a plan first" in refused.text
    assert re.search(r'<option value="eligibility_reviewed">', refused.text)
    back = client.post(f"/cases/{case['id']}/return-to-board", data={**form, "to_status": "eligibility_reviewed"})
    assert back.status_code == 303
    agenda = service.client.get("/api/board", params={"board_date": meeting}, headers=service.headers("viewer"))
    assert [c["id"] for c in agenda.json()] == [case["id"]]


def test_a_refused_message_keeps_its_text(service):
    case = service.create_case()
    client, csrf = page_client(service, "coordinator")
    body = "Asked for the MRI of 3 March."
    form = {"csrf_token": csrf, "direction": "sent", "counterpart": "x" * 201, "body": body}
    refused = client.post(f"/cases/{case['id']}/messages", data=form)
    assert refused.status_code == 422 and "at most 200 characters" in refused.text
    assert f">{body}</textarea>" in refused.text


def test_tasks_are_assigned_from_a_picker_and_listed_as_mine(service):
    case = service.create_case()
    client, csrf = page_client(service, "coordinator")
    page = client.get(f"/cases/{case['id']}").text
    picker = re.search(r'<select name="assignee" id="task-assignee">(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'<option value="(\w*)"', picker) == ["", "admin", "clinician", "coordinator", "viewer"]
    for title, assignee in (("Get the MRI", "clinician"), ("Call the GP", "coordinator")):
        form = {"csrf_token": csrf, "title": title, "due_date": "2027-01-05", "assignee": assignee}
        assert client.post(f"/cases/{case['id']}/tasks", data=form).status_code == 303
    bad = client.post(f"/cases/{case['id']}/tasks", data={"csrf_token": csrf, "title": "Later", "due_date": "soon"})
    assert bad.status_code == 422 and "a date YYYY-MM-DD" in bad.text and 'value="Later"' in bad.text
    clinician, _ = page_client(service, "clinician")
    mine = clinician.get("/tasks", params={"mine": "true"}).text
    assert "Get the MRI" in mine and "Call the GP" not in mine
    everyone = clinician.get("/tasks").text
    assert "Get the MRI" in everyone and "Call the GP" in everyone


def test_the_timeline_gathers_the_case_history(service):
    case = service.create_case()
    move(service, case["id"], "records_complete", 1)
    h = service.headers("coordinator")
    service.client.post(f"/api/cases/{case['id']}/messages", json={"direction": "note", "body": "GP called"}, headers=h)
    client, _ = page_client(service, "viewer")
    page = client.get(f"/cases/{case['id']}").text
    timeline = re.search(r'<section id="timeline".*?</section>', page, re.S).group(0)
    rows = re.findall(r"<tr><td>[\d-]+ [\d:]+</td><td>(\w+)</td>", timeline)
    assert rows == ["Message", "Workflow"]  # newest first
    # in words, not the stored codes
    assert "Intake → Records complete" in timeline and "Note: GP called" in timeline
    assert "records_complete" not in timeline
