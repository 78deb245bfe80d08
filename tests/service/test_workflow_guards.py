"""Workflow guards in the store, so the API keeps them as the pages do: "planned" only with a current plan, a
board decision only as an explicit, confirmed choice, and after "more information needed" the case goes back
to the board; a closed case reopens from its page; the audit trail pages through its events."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from starlette.testclient import TestClient
from support.plans import case_with_plan, plan_document
from support.service import CASE_DOCUMENT, browser_login

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def move(service, case_id: int, to_status: str, version: int, role: str = "clinician"):
    return service.client.post(
        f"/api/cases/{case_id}/status",
        json={"to_status": to_status, "reason": "next step", "version": version},
        headers=service.headers(role),
    )


def case_json(service, case_id: int, role: str = "clinician") -> dict:
    return service.client.get(f"/api/cases/{case_id}", headers=service.headers(role)).json()


def decide(service, case_id: int, decision: str, version: int, confirmed: bool = True):
    return service.client.post(
        f"/api/cases/{case_id}/board-decision",
        json={"decision": decision, "notes": "", "version": version, "confirmed": confirmed},
        headers=service.headers("clinician"),
    )


def test_the_api_refuses_planned_without_a_current_plan(service):
    case = service.create_case()
    assert move(service, case["id"], "records_complete", 1, "coordinator").status_code == 200
    assert move(service, case["id"], "eligibility_reviewed", 2).status_code == 200
    assert case_json(service, case["id"])["allowed_steps"] == ["closed"]
    refused = move(service, case["id"], "planned", 3)
    assert refused.status_code == 409 and "needs a finished plan: run a plan first" in refused.json()["detail"]
    assert case_json(service, case["id"])["status"] == "eligibility_reviewed"


def test_a_plan_the_case_moved_on_from_does_not_count(service):
    case_id, _ = case_with_plan(service, plan_document(None, 7.0))
    move(service, case_id, "records_complete", 1, "coordinator")
    move(service, case_id, "eligibility_reviewed", 2)
    assert case_json(service, case_id)["allowed_steps"] == ["planned", "closed"]
    edited = {**CASE_DOCUMENT, "lesions": [{**CASE_DOCUMENT["lesions"][0], "diameter_mm": 34}]}
    saved = service.client.put(
        f"/api/cases/{case_id}", json={"version": 3, "case_document": edited}, headers=service.headers("clinician")
    )
    assert saved.status_code == 200, saved.text
    assert case_json(service, case_id)["allowed_steps"] == ["closed"]
    refused = move(service, case_id, "planned", 4)
    assert refused.status_code == 409
    assert "up to date (the case file was edited after the plan" in refused.json()["detail"]


def test_more_information_sends_the_case_back_to_the_board(service):
    case_id, _ = case_with_plan(service, plan_document(None, 7.0))
    move(service, case_id, "records_complete", 1, "coordinator")
    move(service, case_id, "eligibility_reviewed", 2)
    assert move(service, case_id, "planned", 3).status_code == 200
    unconfirmed = decide(service, case_id, "more_information_needed", 4, confirmed=False)
    assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.text
    # Nor does a plain status step stand in for the decision.
    assert case_json(service, case_id)["allowed_steps"] == ["closed"]
    bare = move(service, case_id, "board_decided", 4)
    assert bare.status_code == 409 and "only with the board's decision, chosen and confirmed" in bare.json()["detail"]
    no_choice = service.client.post(
        f"/api/cases/{case_id}/board-decision",
        json={"notes": "", "version": 4, "confirmed": True},
        headers=service.headers("clinician"),
    )
    assert no_choice.status_code == 422 and "decision" in no_choice.text
    assert case_json(service, case_id)["status"] == "planned"
    assert decide(service, case_id, "more_information_needed", 4).status_code == 201
    # Back to the board (reviewed, or planned while the plan is current), not on to referral; a coordinator
    # takes neither clinical step.
    assert case_json(service, case_id)["allowed_steps"] == ["eligibility_reviewed", "planned", "closed"]
    assert case_json(service, case_id, "coordinator")["allowed_steps"] == ["closed"]
    assert move(service, case_id, "referred", 5).status_code == 409
    assert move(service, case_id, "planned", 5).status_code == 200
    agenda = service.client.get("/api/board", headers=service.headers("viewer")).json()
    assert [c["id"] for c in agenda] == [case_id]
    assert decide(service, case_id, "cryoablation", 6).status_code == 201
    detail = case_json(service, case_id)
    assert detail["status"] == "board_decided" and detail["allowed_steps"] == ["referred", "closed"]


def test_the_api_presents_the_case_to_a_board_meeting_again(service):
    case_id, _ = case_with_plan(service, plan_document(None, 7.0))
    move(service, case_id, "records_complete", 1, "coordinator")
    move(service, case_id, "eligibility_reviewed", 2)
    meeting = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    body = {"to_status": "planned", "board_date": meeting, "reason": "MRI came", "version": 3}
    back_to_board = lambda role: service.client.post(  # noqa: E731
        f"/api/cases/{case_id}/return-to-board", json=body, headers=service.headers(role)
    )
    early = back_to_board("clinician")
    assert early.status_code == 409 and "the board has not asked for more information" in early.json()["detail"]
    assert decide(service, case_id, "more_information_needed", 3).status_code == 201
    body["version"] = 4
    assert back_to_board("coordinator").status_code == 403
    back = back_to_board("clinician")
    assert back.status_code == 200, back.text
    assert back.json()["status"] == "planned" and back.json()["board_date"] == meeting
    agenda = service.client.get("/api/board", params={"board_date": meeting}, headers=service.headers("viewer"))
    assert [c["id"] for c in agenda.json()] == [case_id]
    assert "return_to_board" in {
        e["action"] for e in service.client.get(f"/api/cases/{case_id}/audit", headers=service.headers("admin")).json()
    }


def test_a_closed_case_reopens_from_its_page(service):
    case = service.create_case()
    assert move(service, case["id"], "closed", 1, "coordinator").status_code == 200
    client = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(client, "coordinator")
    page = client.get(f"/cases/{case['id']}").text
    assert 'id="reopen-form"' in page and 'id="status-form"' not in page
    form = {"csrf_token": csrf, "version": "2", "reason": " "}
    refused = client.post(f"/cases/{case['id']}/reopen", data=form)
    assert refused.status_code == 422 and "a reason for reopening the case" in refused.text
    reopened = client.post(f"/cases/{case['id']}/reopen", data={**form, "reason": "records arrived after all"})
    assert reopened.status_code == 303
    assert case_json(service, case["id"])["status"] == "intake"
    assert 'id="reopen-form"' not in client.get(f"/cases/{case['id']}").text
    viewer = TestClient(service.client.app, follow_redirects=False)
    browser_login(viewer, "viewer")
    move(service, case["id"], "closed", 3, "coordinator")
    assert viewer.get(f"/cases/{case['id']}").status_code == 404  # closed cases are hidden from viewers


def test_the_audit_trail_pages_through_its_events(service):
    case = service.create_case()
    for _ in range(120):  # every read of the case is an audit event
        service.client.get(f"/api/cases/{case['id']}", headers=service.headers("clinician"))
    client = TestClient(service.client.app, follow_redirects=False)
    browser_login(client, "clinician")
    first = client.get(f"/cases/{case['id']}/audit").text
    total = int(re.search(r"(\d+) events, newest first; page 1 of 2\.", first).group(1))
    assert total > 120
    rows = lambda page: len(re.findall(r"<tr><td>\d{4}-", page))  # noqa: E731
    assert rows(first) == 100 and f'href="/cases/{case["id"]}/audit?page=2"' in first and "audit-newer" not in first
    second = client.get(f"/cases/{case['id']}/audit", params={"page": 2}).text
    assert "page 2 of 2" in second and 0 < rows(second) <= 100
    assert f'href="/cases/{case["id"]}/audit?page=1"' in second and "audit-older" not in second
