"""The job-status endpoint the case page polls: each job's stage and progress, the case's plan job, access
as for the case, and no audit event per poll."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.testclient import TestClient
from support.service import browser_login

from cryoplan.output import write_json
from cryoplan.service.models import AuditEvent, Job
from cryoplan.service.routes import status as status_route

NOW = dt.datetime(2026, 3, 2, 9, 30, 0, tzinfo=dt.UTC)


def add_job(service, case_id: int, kind: str, status: str, created_at: dt.datetime = NOW) -> int:
    with service.client.app.state.sessions() as db:
        job = Job(
            case_id=case_id,
            kind=kind,
            status=status,
            attempts=1,
            case_version=1,
            created_by=1,
            created_at=created_at,
        )
        db.add(job)
        db.commit()
        return job.id


def audit_count(service) -> int:
    with service.client.app.state.sessions() as db:
        return db.query(AuditEvent).count()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_job_status_reports_stage_progress_and_the_plan_job(service, monkeypatch):
    case = service.create_case()
    done = add_job(service, case["id"], "plan", "done", NOW - dt.timedelta(minutes=10))
    running = add_job(service, case["id"], "uncertainty", "running", NOW - dt.timedelta(seconds=95.3))
    # the clock of the status route, stopped: a running job's elapsed time is now less its creation
    monkeypatch.setattr(status_route, "utcnow", lambda: NOW)
    progress = service.client.app.state.runner._jobs_dir / f"{running}.progress.json"
    progress.parent.mkdir(parents=True, exist_ok=True)
    write_json(progress, {"schema_version": 1, "fraction": 0.375, "message": "uncertainty: 8 samples"})

    before = audit_count(service)
    response = service.client.get(f"/api/cases/{case['id']}/job-status", headers=service.headers("viewer"))
    assert response.status_code == 200, response.text
    status = response.json()
    assert audit_count(service) == before  # polling is not an access to patient data
    assert status["schema_version"] == 1 and status["case_id"] == case["id"]
    assert status["plan_job_id"] == done
    newest, oldest = status["jobs"]
    assert newest["id"] == running and newest["status"] == "running"
    assert newest["stage"] == "uncertainty: 8 samples" and newest["stage_fraction"] == 0.375
    assert newest["kind_label"] == "Uncertainty analysis of the plan"
    assert newest["elapsed_s"] == 95.3
    assert oldest["id"] == done and oldest["stage"] == "done" and oldest["stage_fraction"] == 1.0
    assert oldest["elapsed_s"] is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_job_status_is_refused_like_the_case(service):
    case = service.create_case()
    url = f"/api/cases/{case['id']}/job-status"
    assert service.client.get(url).status_code == 401
    assert service.client.get("/api/cases/999/job-status", headers=service.headers("admin")).status_code == 404
    closed = service.client.post(
        f"/api/cases/{case['id']}/status",
        headers=service.headers("coordinator"),
        json={"to_status": "closed", "reason": "withdrawn", "version": 1},
    )
    assert closed.status_code == 200
    assert service.client.get(url, headers=service.headers("viewer")).status_code == 404
    assert service.client.get(url, headers=service.headers("clinician")).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_session_reads_the_status_and_the_plan_panel(service):
    case = service.create_case()
    client = TestClient(service.client.app)
    browser_login(client, "viewer")
    page = client.get(f"/cases/{case['id']}").text
    assert f'data-status-url="/api/cases/{case["id"]}/job-status"' in page
    assert "location.reload" not in client.get("/static/case.js").text
    assert client.get(f"/api/cases/{case['id']}/job-status").json()["jobs"] == []
    panel = client.get(f"/cases/{case['id']}/plan-panel")
    assert panel.status_code == 200 and "No finished plan." in panel.text and "<html" not in panel.text
