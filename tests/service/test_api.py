"""The API end to end on a real database: cases, assessment on save, workflow, messages, tasks, documents."""

from __future__ import annotations

import copy

from support.service import CASE_DOCUMENT


def test_case_is_assessed_on_create_and_on_save(service):
    case = service.create_case()
    assert case["version"] == 1 and case["status"] == "intake"
    assert case["assessment"]["schema_version"] == 1
    assert case["assessment"]["verdict"] in {"suitable", "suitable_with_conditions", "mdt_review", "not_recommended"}
    before = case["assessment"]["verdict"]

    worse = copy.deepcopy(CASE_DOCUMENT)
    worse["labs"]["bilirubin"] = {"value": 4.5, "unit": "mg/dL"}
    worse["labs"]["albumin"] = {"value": 2.5, "unit": "g/dL"}
    worse["clinical"] = {"ascites": "moderate_severe", "encephalopathy_grade": 3}
    saved = service.client.put(
        f"/api/cases/{case['id']}", json={"version": 1, "case_document": worse}, headers=service.headers("clinician")
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2
    assert saved.json()["assessment"]["child_pugh"]["class"] == "C"
    assert saved.json()["assessment"]["verdict"] != before


def test_incomplete_case_is_saved_with_the_reason_it_cannot_be_assessed(service):
    case = service.create_case(document={"schema_version": 1, "labs": {"bilirubin": {"value": 1.0}}})
    assert case["assessment"] is None
    assert "diagnosis" in case["assessment_error"] or "labs.bilirubin" in case["assessment_error"]


def test_image_paths_in_the_case_document_are_refused(service):
    document = {**CASE_DOCUMENT, "imaging": {"image": "/etc/passwd"}}
    response = service.client.post(
        "/api/cases", json={"label": "x", "case_document": document}, headers=service.headers("coordinator")
    )
    assert response.status_code == 422
    assert response.json()["field"] == "case_document.imaging.image"


def test_list_filters_by_status_and_search(service):
    first = service.create_case("Referral 0001 Oslo")
    service.create_case("Referral 0002 Bergen")
    moved = service.client.post(
        f"/api/cases/{first['id']}/status",
        json={"to_status": "records_complete", "reason": "labs received", "version": 1},
        headers=service.headers("coordinator"),
    )
    assert moved.status_code == 200, moved.text
    listed = service.client.get("/api/cases", params={"status": "records_complete"}, headers=service.headers("viewer"))
    assert [c["label"] for c in listed.json()] == ["Referral 0001 Oslo"]
    searched = service.client.get("/api/cases", params={"search": "bergen"}, headers=service.headers("viewer"))
    assert [c["label"] for c in searched.json()] == ["Referral 0002 Bergen"]


def test_workflow_records_who_and_why_and_refuses_skips(service):
    case = service.create_case()
    h = service.headers
    skip = service.client.post(
        f"/api/cases/{case['id']}/status",
        json={"to_status": "planned", "reason": "skip", "version": 1},
        headers=h("clinician"),
    )
    assert skip.status_code == 409
    ok = service.client.post(
        f"/api/cases/{case['id']}/status",
        json={"to_status": "records_complete", "reason": "all records in", "version": 1},
        headers=h("coordinator"),
    )
    assert ok.status_code == 200
    # Eligibility review is a clinical judgement: not the coordinator's step.
    refused = service.client.post(
        f"/api/cases/{case['id']}/status",
        json={"to_status": "eligibility_reviewed", "reason": "x", "version": 2},
        headers=h("coordinator"),
    )
    assert refused.status_code == 409
    reviewed = service.client.post(
        f"/api/cases/{case['id']}/status",
        json={"to_status": "eligibility_reviewed", "reason": "criteria met", "version": 2},
        headers=h("clinician"),
    )
    assert reviewed.status_code == 200
    detail = service.client.get(f"/api/cases/{case['id']}", headers=h("viewer")).json()
    assert [(s["from_status"], s["to_status"], s["username"], s["reason"]) for s in detail["status_history"]] == [
        ("intake", "records_complete", "coordinator", "all records in"),
        ("records_complete", "eligibility_reviewed", "clinician", "criteria met"),
    ]
    agenda = service.client.get("/api/board", headers=h("viewer")).json()
    assert [c["id"] for c in agenda] == [case["id"]]
    decided = service.client.post(
        f"/api/cases/{case['id']}/board-decision",
        json={"decision": "cryoablation", "notes": "two probes", "version": 3, "confirmed": True},
        headers=h("clinician"),
    )
    assert decided.status_code == 201, decided.text
    assert service.client.get(f"/api/cases/{case['id']}", headers=h("viewer")).json()["status"] == "board_decided"
    assert service.client.get("/api/board", headers=h("viewer")).json() == []


def test_messages_and_tasks(service):
    case = service.create_case()
    h = service.headers("coordinator")
    sent = service.client.post(
        f"/api/cases/{case['id']}/messages",
        json={"direction": "sent", "counterpart": "Oslo University Hospital", "body": "Please send the CT."},
        headers=h,
    )
    assert sent.status_code == 201
    task = service.client.post(
        f"/api/cases/{case['id']}/tasks",
        json={"title": "Chase CT", "due_date": "2026-12-01", "assignee": "coordinator"},
        headers=h,
    )
    assert task.status_code == 201
    done = service.client.post(f"/api/cases/{case['id']}/tasks/{task.json()['id']}/done", headers=h)
    assert done.json()["done"] is True
    messages = service.client.get(f"/api/cases/{case['id']}/messages", headers=service.headers("viewer")).json()
    assert [(m["direction"], m["body"], m["username"]) for m in messages] == [
        ("sent", "Please send the CT.", "coordinator")
    ]
    tasks = service.client.get(f"/api/cases/{case['id']}/tasks", headers=service.headers("viewer")).json()
    assert [(t["title"], t["due_date"], t["done"], t["assignee"]) for t in tasks] == [
        ("Chase CT", "2026-12-01", True, "coordinator")
    ]


def test_every_read_and_write_is_audited_with_who_and_where(service):
    case = service.create_case()
    service.client.get(f"/api/cases/{case['id']}", headers=service.headers("viewer"))
    events = service.client.get(f"/api/cases/{case['id']}/audit", headers=service.headers("admin")).json()
    seen = [(e["username"], e["action"], e["object_type"]) for e in reversed(events)]
    assert ("coordinator", "create", "case") in seen
    assert ("viewer", "read", "case") in seen
    assert all(e["client_address"] for e in events)


def test_case_list_pages_through_every_case_once(service):
    created = [service.create_case(f"Referral {n:04d}")["id"] for n in range(7)]
    h = service.headers("viewer")
    pages = []
    for page in (1, 2, 3, 4):
        response = service.client.get("/api/cases", params={"page": page, "size": 3}, headers=h)
        assert response.status_code == 200, response.text
        assert response.headers["X-Total-Count"] == "7"
        pages.append([c["id"] for c in response.json()])
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert sum(pages, []) == created[::-1]  # newest first, each case once
    default = service.client.get("/api/cases", headers=h)
    assert [c["id"] for c in default.json()] == created[::-1]  # fewer than one default page (50)

    closed = service.client.post(
        f"/api/cases/{created[0]}/status",
        json={"to_status": "closed", "reason": "x", "version": 1},
        headers=service.headers("coordinator"),
    )
    assert closed.status_code == 200
    # Viewers do not see closed cases: neither in the page nor in the total.
    assert service.client.get("/api/cases", params={"size": 3}, headers=h).headers["X-Total-Count"] == "6"
    admin = service.client.get("/api/cases", params={"size": 3, "status": "closed"}, headers=service.headers("admin"))
    assert admin.headers["X-Total-Count"] == "1" and [c["id"] for c in admin.json()] == [created[0]]

    for params in ({"page": 0}, {"size": 0}, {"size": 201}, {"page": "two"}):
        response = service.client.get("/api/cases", params=params, headers=h)
        assert response.status_code == 422, params
