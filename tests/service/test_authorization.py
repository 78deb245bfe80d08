"""The authorisation matrix: every endpoint × every role and anonymous → allowed, 401 (API) or a redirect to
the login page (pages), or 403. A viewer changes nothing; the audit log cannot be changed by any endpoint."""

from __future__ import annotations

import re

import pytest
import sqlalchemy
from fastapi.routing import APIRoute
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, ROLES, browser_login

ALL = set(ROLES)
EDITORS = {"admin", "coordinator", "clinician"}
CLINICAL = {"admin", "clinician"}
AUDITORS = {"admin", "coordinator", "clinician"}
ADMIN = {"admin"}
PUBLIC = None  # no login needed

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

# (method, path template) -> (roles allowed, request keyword arguments)
API = {
    ("POST", "/api/auth/token"): (PUBLIC, {"json": {"username": "viewer", "password": "wrong-password!"}}),
    ("GET", "/api/me"): (ALL, {}),
    ("GET", "/api/users"): (ADMIN, {}),
    ("POST", "/api/users"): (
        ADMIN,
        {"json": {"username": "new_{role}", "password": "long-enough-pw", "role": "viewer"}},
    ),
    ("POST", "/api/users/{user_id}/deactivate"): (ADMIN, {}),
    ("GET", "/api/cases"): (ALL, {}),
    ("POST", "/api/cases"): (EDITORS, {"json": {"label": "by {role}", "case_document": CASE_DOCUMENT}}),
    ("GET", "/api/cases/{case_id}"): (ALL, {}),
    ("PUT", "/api/cases/{case_id}"): (EDITORS, {"json": {"version": 1, "label": "renamed by {role}"}}),
    ("POST", "/api/cases/{case_id}/status"): (EDITORS, {"json": {"to_status": "closed", "reason": "x", "version": 99}}),
    ("POST", "/api/cases/{case_id}/reopen"): (EDITORS, {"json": {"reason": "x", "version": 99}}),
    ("POST", "/api/cases/{case_id}/return-to-board"): (
        CLINICAL,
        {"json": {"to_status": "planned", "board_date": "2099-01-05", "reason": "x", "version": 99}},
    ),
    ("GET", "/api/board"): (ALL, {}),
    ("POST", "/api/cases/{case_id}/board-decision"): (
        CLINICAL,
        {"json": {"decision": "cryoablation", "notes": "", "version": 99, "confirmed": True}},
    ),
    ("GET", "/api/cases/{case_id}/documents"): (ALL, {}),
    ("POST", "/api/cases/{case_id}/documents"): (
        EDITORS,
        {"files": {"file": ("letter.pdf", PDF, "application/pdf")}, "data": {"purpose": "record"}},
    ),
    ("GET", "/api/cases/{case_id}/documents/{document_id}/content"): (ALL, {}),
    ("GET", "/api/cases/{case_id}/documents/{document_id}/volume.nii.gz"): (ALL, {}),
    ("GET", "/api/cases/{case_id}/messages"): (ALL, {}),
    ("POST", "/api/cases/{case_id}/messages"): (EDITORS, {"json": {"direction": "note", "body": "by {role}"}}),
    ("GET", "/api/cases/{case_id}/tasks"): (ALL, {}),
    ("POST", "/api/cases/{case_id}/tasks"): (EDITORS, {"json": {"title": "by {role}", "due_date": "2027-01-01"}}),
    ("POST", "/api/cases/{case_id}/tasks/{task_id}/done"): (EDITORS, {}),
    ("GET", "/api/cases/{case_id}/jobs"): (ALL, {}),
    ("POST", "/api/cases/{case_id}/jobs"): (EDITORS, {"json": {"kind": "no_such_kind"}}),
    ("GET", "/api/jobs/{job_id}"): (ALL, {}),
    ("GET", "/api/jobs/{job_id}/files/{name:path}"): (ALL, {}),
    ("GET", "/api/cases/{case_id}/audit"): (AUDITORS, {}),
    ("GET", "/api/audit"): (ADMIN, {}),
    ("GET", "/api/cases/{case_id}/report.html"): (ALL, {}),
    ("GET", "/api/cases/{case_id}/report.pdf"): (ALL, {}),
    ("GET", "/api/cases/{case_id}/referral.zip"): (EDITORS, {}),
    ("GET", "/api/cases/{case_id}/job-status"): (ALL, {}),
    ("POST", "/api/cases/{case_id}/preview"): (EDITORS, {"json": {}}),
    ("POST", "/api/cases/{case_id}/edited-plan"): (EDITORS, {"json": {}}),
    ("GET", "/api/cases/{case_id}/preview.nii.gz"): (ALL, {}),
    ("GET", "/api/lab-plausibility"): (ALL, {"params": {"analyte": "bilirubin", "value": "1.1", "unit": "mg/dL"}}),
    ("DELETE", "/api/auth/token"): (ALL, {}),  # last: it ends the role's token
}

PAGES = {
    ("GET", "/vendor/niivue.js"): (PUBLIC, {}),  # the viewer library: no patient data
    ("GET", "/login"): (PUBLIC, {}),
    ("POST", "/login"): (PUBLIC, {"data": {"username": "nobody", "password": "wrong"}}),
    ("GET", "/"): (ALL, {}),
    ("GET", "/cases/new"): (EDITORS, {}),
    ("POST", "/cases/new"): (EDITORS, {"data": {"label": "page case", "case_document": '{"schema_version": 1}'}}),
    ("POST", "/cases/new/import"): (
        EDITORS,
        {"files": {"case_file": ("case.json", b'{"schema_version": 1}', "application/json")}},
    ),
    ("GET", "/cases/{case_id}"): (ALL, {}),
    ("GET", "/cases/{case_id}/plan-panel"): (ALL, {}),
    ("GET", "/cases/{case_id}/compare"): (ALL, {}),
    ("GET", "/cases/{case_id}/summary"): (ALL, {}),
    ("GET", "/cases/{case_id}/edit"): (EDITORS, {}),
    ("POST", "/cases/{case_id}/edit"): (EDITORS, {"data": {"version": "99", "label": "x", "case_document": "{}"}}),
    ("POST", "/cases/{case_id}/team-messages"): (EDITORS, {"data": {"recipient": "admin", "body": "by {role}"}}),
    ("GET", "/inbox"): (ALL, {}),
    ("POST", "/inbox/send"): (EDITORS, {"data": {"recipient": "admin", "body": "by {role}"}}),
    ("POST", "/inbox/{message_id}/read"): (ALL, {}),
    ("POST", "/cases/{case_id}/status"): (EDITORS, {"data": {"version": "99", "to_status": "closed", "reason": "x"}}),
    ("POST", "/cases/{case_id}/return-to-board"): (
        CLINICAL,
        {"data": {"version": "99", "to_status": "planned", "board_date": "2099-01-05", "reason": "x"}},
    ),
    ("POST", "/cases/{case_id}/reopen"): (EDITORS, {"data": {"version": "99", "reason": "x"}}),
    ("GET", "/cases/{case_id}/referral"): (EDITORS, {}),
    ("POST", "/cases/{case_id}/documents"): (
        EDITORS,
        {"files": {"file": ("letter.pdf", PDF, "application/pdf")}, "data": {"purpose": "record"}},
    ),
    ("POST", "/cases/{case_id}/messages"): (EDITORS, {"data": {"direction": "note", "body": "page note"}}),
    ("POST", "/cases/{case_id}/tasks"): (EDITORS, {"data": {"title": "page task", "due_date": "2027-01-01"}}),
    ("POST", "/cases/{case_id}/tasks/{task_id}/done"): (EDITORS, {}),
    ("POST", "/cases/{case_id}/jobs"): (EDITORS, {"data": {"kind": "no_such_kind"}}),
    ("POST", "/cases/{case_id}/board-decision"): (
        CLINICAL,
        {"data": {"version": "99", "decision": "cryoablation", "notes": "", "confirm": "yes"}},
    ),
    ("GET", "/board"): (ALL, {}),
    ("GET", "/tasks"): (ALL, {}),
    ("GET", "/cases/{case_id}/audit"): (AUDITORS, {}),
    ("GET", "/audit"): (ADMIN, {}),
    ("GET", "/users"): (ADMIN, {}),
    ("POST", "/users"): (ADMIN, {"data": {"username": "page_{role}", "password": "long-enough-pw", "role": "viewer"}}),
    ("POST", "/users/{user_id}/role"): (ADMIN, {"data": {"role": "viewer"}}),
    ("POST", "/users/{user_id}/password"): (ADMIN, {"data": {"password": "another-fine-password-{role}"}}),
    ("POST", "/users/{user_id}/deactivate"): (ADMIN, {}),
    ("POST", "/users/{user_id}/reactivate"): (ADMIN, {}),
    ("POST", "/logout"): (ALL, {}),  # last: it ends the session
}


def routes_of(app) -> set[tuple[str, str]]:
    """Every (method, path) the app serves through its routes and included routers."""
    found = set()
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found |= {(method, route.path) for method in route.methods - {"HEAD"}}
        elif hasattr(route, "original_router"):  # a router included with include_router
            pending.extend(route.original_router.routes)
    return found


def fill(path: str, ids: dict) -> str:
    return path.replace(":path", "").format(**ids)


def with_role(kwargs: dict, role: str) -> dict:
    def substitute(value):
        if isinstance(value, str):
            return value.replace("{role}", role)
        if isinstance(value, dict):
            return {k: substitute(v) for k, v in value.items()}
        return value

    return {k: (substitute(v) if k in ("json", "data") else v) for k, v in kwargs.items()}


@pytest.fixture
def ids(service):
    case = service.create_case("matrix case", role="admin")
    h = service.headers("admin")
    document = service.client.post(
        f"/api/cases/{case['id']}/documents",
        headers=h,
        files={"file": ("letter.pdf", PDF, "application/pdf")},
        data={"purpose": "record"},
    )
    task = service.client.post(
        f"/api/cases/{case['id']}/tasks", json={"title": "t", "due_date": "2027-01-01"}, headers=h
    )
    from cryoplan.service.models import Job

    with service.client.app.state.sessions() as db:  # a finished job row to address (nothing is run)
        job = Job(
            case_id=case["id"],
            kind="assessment",
            status="failed",
            attempts=1,
            progress_fraction=0.0,
            case_version=1,
            created_by=1,
            error="test row",
        )
        db.add(job)
        db.commit()
        job_id = job.id
    # A user to deactivate: not one of the role users, whose tokens the matrix goes on using.
    user = service.client.post(
        "/api/users", headers=h, json={"username": "leaver", "password": "long-enough-pw", "role": "viewer"}
    )
    return {
        "case_id": case["id"],
        "document_id": document.json()["id"],
        "task_id": task.json()["id"],
        "job_id": job_id,
        "name": "plan.json",
        "user_id": user.json()["id"],
        "message_id": 1,
    }


def test_the_matrix_covers_every_endpoint(service):
    assert routes_of(service.client.app) == set(API) | set(PAGES)


def snapshot(service, ids) -> dict:
    h = service.headers("admin")
    case_id = ids["case_id"]
    return {
        "cases": service.client.get("/api/cases", headers=h).json(),
        "case": {k: v for k, v in service.client.get(f"/api/cases/{case_id}", headers=h).json().items()},
        "documents": service.client.get(f"/api/cases/{case_id}/documents", headers=h).json(),
        "messages": service.client.get(f"/api/cases/{case_id}/messages", headers=h).json(),
        "tasks": service.client.get(f"/api/cases/{case_id}/tasks", headers=h).json(),
        "users": service.client.get("/api/users", headers=h).json(),
        "jobs": service.client.get(f"/api/cases/{case_id}/jobs", headers=h).json(),
    }


def test_api_matrix(service, ids):
    before = snapshot(service, ids)
    # The viewer first: it must be refused every change, and nothing may differ afterwards.
    for role in ["viewer", None, "admin", "coordinator", "clinician"]:
        for (method, path), (allowed, kwargs) in API.items():
            headers = service.headers(role)
            response = service.client.request(
                method, fill(path, ids), headers=headers, **with_role(kwargs, role or "anonymous")
            )
            where = f"{method} {path} as {role or 'anonymous'}: {response.status_code} {response.text[:200]}"
            assert response.status_code < 500, where
            if allowed is PUBLIC:
                assert response.status_code not in (403,), where
            elif role is None:
                assert response.status_code == 401, where
            elif role in allowed:
                assert response.status_code not in (401, 403), where
            else:
                assert response.status_code == 403, where
        if role == "viewer":
            assert snapshot(service, ids) == before, "a viewer changed something"


def test_pages_matrix(service, ids):
    app = service.client.app
    for role in ["viewer", None, "admin", "coordinator", "clinician"]:
        client = TestClient(app, follow_redirects=False)
        csrf = browser_login(client, role) if role else None
        for (method, path), (allowed, kwargs) in PAGES.items():
            kwargs = with_role(kwargs, role or "anonymous")
            if method == "POST" and csrf:
                kwargs["data"] = {**kwargs.get("data", {}), "csrf_token": csrf}
            response = client.request(method, fill(path, ids), **kwargs)
            where = f"{method} {path} as {role or 'anonymous'}: {response.status_code} {response.text[:200]}"
            assert response.status_code < 500, where
            if allowed is PUBLIC:
                assert response.status_code != 403, where
            elif role is None:
                assert response.status_code == 303 and response.headers["location"] == "/login", where
            elif role in allowed:
                assert response.status_code not in (401, 403), where
            else:
                assert response.status_code == 403, where


def test_the_audit_log_cannot_be_changed(service, ids):
    app = service.client.app
    audit_routes = [(m, p) for m, p in routes_of(app) if "audit" in p]
    assert audit_routes and all(method == "GET" for method, _ in audit_routes)
    for path in ("/api/audit", f"/api/cases/{ids['case_id']}/audit"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = service.client.request(method, path, headers=service.headers("admin"), json={})
            assert response.status_code == 405, (method, path, response.status_code)
    events = service.client.get("/api/audit", headers=service.headers("admin")).json()
    assert {e["action"] for e in events} >= {"create", "upload"}
    # Not even a direct database session can alter or remove an event: the migration installed triggers.
    with app.state.engine.connect() as connection:
        for statement in ("UPDATE audit_events SET detail = 'forged'", "DELETE FROM audit_events"):
            with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
                with connection.begin():
                    connection.execute(sqlalchemy.text(statement))
    after = service.client.get("/api/audit", headers=service.headers("admin")).json()
    assert [e for e in after if e["id"] in {x["id"] for x in events}] == events
    assert not any(re.search("forged", e["detail"]) for e in after)
