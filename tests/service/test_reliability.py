"""Reliability: a server killed during a job and restarted resumes the job (or marks it failed when its
attempts are spent) with the case intact; concurrent edits of one case never lose an update silently."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from support.service import CASE_DOCUMENT, start_with_users, wait_for_job


@pytest.mark.slow
def test_killed_server_resumes_the_job_and_the_case_is_intact(live_server):
    server = start_with_users(live_server)
    headers = server.token("clinician")
    case = httpx.post(
        f"{server.url}/api/cases", json={"label": "kill test", "case_document": CASE_DOCUMENT}, headers=headers
    ).json()
    job = httpx.post(
        f"{server.url}/api/cases/{case['id']}/jobs", json={"kind": "assessment"}, headers=headers, timeout=30
    ).json()
    assert job["status"] == "running" and job["attempts"] == 1
    server.kill()  # while the job is with Dask (the cluster is still starting, or the job running)

    server.start()
    headers = server.token("clinician")
    finished = wait_for_job(server, headers, job["id"])
    assert finished["status"] == "done", finished
    assert finished["attempts"] == 2
    assert finished["progress"]["fraction"] == 1.0
    output = server.env["CRYOPLAN_DATA_DIR"] + f"/jobs/{job['id']}/assessment.json"
    with open(output) as handle:
        assert json.load(handle)["verdict"] == case["assessment"]["verdict"]
    after = httpx.get(f"{server.url}/api/cases/{case['id']}", headers=headers).json()
    assert (after["version"], after["case_document"], after["assessment"]) == (
        case["version"],
        case["case_document"],
        case["assessment"],
    )
    audit = httpx.get(f"{server.url}/api/cases/{case['id']}/audit", headers=server.token("admin")).json()
    job_events = [e["action"] for e in reversed(audit) if e["object_type"] == "job" and e["action"] != "read"]
    assert job_events == ["job_started", "job_resumed", "job_done"]


@pytest.mark.slow
def test_killed_server_marks_the_job_failed_when_attempts_are_spent(live_server):
    server = start_with_users(live_server, CRYOPLAN_JOB_MAX_ATTEMPTS="1")
    headers = server.token("clinician")
    case = httpx.post(
        f"{server.url}/api/cases", json={"label": "kill test", "case_document": CASE_DOCUMENT}, headers=headers
    ).json()
    job = httpx.post(
        f"{server.url}/api/cases/{case['id']}/jobs", json={"kind": "assessment"}, headers=headers, timeout=30
    ).json()
    server.kill()
    server.start(CRYOPLAN_JOB_MAX_ATTEMPTS="1")
    headers = server.token("clinician")
    failed = httpx.get(f"{server.url}/api/jobs/{job['id']}", headers=headers).json()
    assert failed["status"] == "failed"
    assert "server stopped during the job" in failed["error"]
    after = httpx.get(f"{server.url}/api/cases/{case['id']}", headers=headers).json()
    assert (after["version"], after["case_document"]) == (case["version"], case["case_document"])
    # Nothing half-written is left for the failed job.
    assert not Path(server.env["CRYOPLAN_DATA_DIR"], "jobs", str(job["id"])).exists()


def test_second_of_two_concurrent_edits_gets_a_conflict(service):
    h = service.headers("coordinator")
    case = service.create_case()
    # Both open version 1; the first save wins, the second is told, and nothing is overwritten.
    first = service.client.put(f"/api/cases/{case['id']}", json={"version": 1, "label": "edit by Anna"}, headers=h)
    second = service.client.put(f"/api/cases/{case['id']}", json={"version": 1, "label": "edit by Ben"}, headers=h)
    assert first.status_code == 200 and first.json()["version"] == 2
    assert second.status_code == 409
    assert second.json()["current_version"] == 2
    assert "changed by someone else" in second.json()["detail"]
    assert service.client.get(f"/api/cases/{case['id']}", headers=h).json()["label"] == "edit by Anna"


@pytest.mark.slow
def test_racing_saves_on_a_live_server_lose_nothing(live_server):
    server = start_with_users(live_server)
    headers = server.token("clinician")
    case = httpx.post(
        f"{server.url}/api/cases", json={"label": "race", "case_document": CASE_DOCUMENT}, headers=headers
    ).json()
    for round_number in range(5):
        version = httpx.get(f"{server.url}/api/cases/{case['id']}", headers=headers).json()["version"]
        barrier = threading.Barrier(4)
        results = []

        def save(writer: int) -> None:
            barrier.wait()
            response = httpx.put(
                f"{server.url}/api/cases/{case['id']}",
                json={"version": version, "label": f"round {round_number} writer {writer}"},
                headers=headers,
                timeout=60,
            )
            results.append((writer, response.status_code))

        threads = [threading.Thread(target=save, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = sorted(code for _, code in results)
        assert codes == [200, 409, 409, 409], codes
        winner = next(w for w, code in results if code == 200)
        now = httpx.get(f"{server.url}/api/cases/{case['id']}", headers=headers).json()
        assert now["label"] == f"round {round_number} writer {winner}"
        assert now["version"] == version + 1


REFUSE_INSERTS = {  # a trigger that makes the database refuse every new row of a table
    "sqlite": ["CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()",
    ],
}


@pytest.mark.parametrize("table", ["documents", "audit_events"])
def test_upload_whose_database_write_fails_leaves_no_file(service, table):
    """The database refuses the document row (its INSERT fails) or its audit event (the INSERT at commit
    fails, after the document row was written): either way the stored file goes with the transaction."""
    import sqlalchemy
    from starlette.testclient import TestClient

    case = service.create_case()
    documents = service.data_dir / "documents"
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    kept = service.client.post(
        f"/api/cases/{case['id']}/documents",
        headers=service.headers("coordinator"),
        files={"file": ("first.pdf", pdf)},
        data={"purpose": "record"},
    )
    assert kept.status_code == 201
    before = sorted(documents.iterdir())
    refused = service.client.post(
        f"/api/cases/{case['id']}/documents",
        headers=service.headers("coordinator"),
        files={"file": ("letter.pdf", pdf)},
        data={"purpose": "ct"},
    )
    assert refused.status_code == 422 and refused.json()["field"] == "purpose"  # a PDF is no CT
    assert sorted(documents.iterdir()) == before
    engine = service.client.app.state.engine
    with engine.begin() as connection:
        for statement in REFUSE_INSERTS[engine.dialect.name]:
            connection.execute(sqlalchemy.text(statement.format(table=table)))
    client = TestClient(service.client.app, raise_server_exceptions=False)
    for data in (pdf, pdf + b"%" * 5000):
        response = client.post(
            f"/api/cases/{case['id']}/documents",
            headers=service.headers("coordinator"),
            files={"file": ("letter.pdf", data)},
            data={"purpose": "record"},
        )
        assert response.status_code == 500
        assert sorted(documents.iterdir()) == before  # no orphaned file
    with engine.connect() as connection:  # read directly: the API's reads are audited, which is refused now
        rows = (
            connection.execute(sqlalchemy.text("SELECT id FROM documents WHERE case_id = :case"), {"case": case["id"]})
            .scalars()
            .all()
        )
    assert rows == [kept.json()["id"]]
