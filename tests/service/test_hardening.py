"""The findings of the service's security review, one test each: file reads through NRRD, decoded image
size, unbounded bodies before login, JSON depth and size, DICOM validated at upload, token revocation and
logout, login throttling without lock-out, password and user-name policy, broken zips and huge numbers,
partial uploads swept, audit paging and actors, cross-site login, job errors without paths, the report's
stylesheet inlined, closed cases read-only, closed cases' tasks."""

from __future__ import annotations

import asyncio
import base64
import copy
import gzip
import hashlib
import re
import time
import zipfile
from pathlib import Path

import httpx
import nibabel
import numpy as np
import pytest
import sqlalchemy
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, PASSWORD, browser_login, create_users, start_with_users, wait_for_job
from support.uploads import stored_files, upload, zip_bytes

from cryoplan.errors import InputError
from cryoplan.service.jobs import public_error

NRRD_HEADER = (
    "NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nspace: left-posterior-superior\n"
    "space directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\n"
)


def nrrd_bytes(extra: str = "", encoding: str = "raw", data: bytes | None = None) -> bytes:
    samples = np.arange(64, dtype="<i2").tobytes()
    body = data if data is not None else (gzip.compress(samples) if encoding == "gzip" else samples)
    return (NRRD_HEADER + f"encoding: {encoding}\nendian: little\n" + extra + "\n").encode() + body


def nifti_claiming(shape: tuple[int, ...], compressed: bool) -> bytes:
    """A NIfTI-1 header declaring `shape` int16 voxels, followed by only a few bytes of data."""
    header = nibabel.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 1024
    return gzip.compress(raw) if compressed else raw


# --- file reads and image sizes ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["data file: /etc/passwd", "datafile: ../secret_key", "data file: LIST"])
def test_nrrd_naming_another_file_is_refused_at_upload(service, field):
    case = service.create_case()
    response = upload(service, case["id"], "ct.nrrd", nrrd_bytes(field + "\n"), purpose="ct")
    assert response.status_code == 422, response.text
    assert "data file" in response.json()["detail"] and response.json()["field"] == "file"
    assert stored_files(service) == []
    assert upload(service, case["id"], "ct.nrrd", nrrd_bytes(), purpose="ct").status_code == 201


def test_nrrd_reader_refuses_detached_data(tmp_path):
    from cryoplan.imaging import read_volume

    secret = tmp_path / "secret.raw"
    secret.write_bytes(np.arange(64, dtype="<i2").tobytes())
    path = tmp_path / "ct.nrrd"
    path.write_bytes(nrrd_bytes(f"data file: {secret}\n", data=b""))
    with pytest.raises(InputError, match="data file"):
        read_volume(path)


def test_compressed_nrrd_decompressing_past_its_sizes_is_refused(service):
    case = service.create_case()
    bomb = gzip.compress(b"\0" * (64 * 2**20))  # 64 MiB of zeros in about 64 KiB, for 128 declared bytes
    assert len(bomb) < 100_000
    response = upload(service, case["id"], "ct.nrrd", nrrd_bytes(encoding="gzip", data=bomb), purpose="ct")
    assert response.status_code == 413, response.text
    assert stored_files(service) == []
    assert upload(service, case["id"], "ct.nrrd", nrrd_bytes(encoding="gzip"), purpose="ct").status_code == 201


@pytest.mark.parametrize("compressed", [False, True])
def test_image_header_declaring_more_than_the_limit_is_refused(service, compressed):
    case = service.create_case()
    name = "ct.nii.gz" if compressed else "ct.nii"
    huge = nifti_claiming((1024, 1024, 1024), compressed)  # 2 GiB of int16 declared, 1 KiB sent
    response = upload(service, case["id"], name, huge, purpose="ct")
    assert response.status_code == 413, response.text
    assert "decoded" in response.json()["detail"]
    assert stored_files(service) == []
    small = nifti_claiming((8, 8, 8), compressed)
    assert upload(service, case["id"], name, small, purpose="ct").status_code == 201


# --- bodies and JSON at the edge -----------------------------------------------------------------------


def post_in_chunks(
    app, path: str, content_type: str, total: int, head: bytes = b"", headers: dict | None = None
) -> tuple[int, int]:
    """POST `head` and then `total` bytes to the ASGI app in 64 KiB chunks with no Content-Length, as a
    client streaming a body would; returns the response status and how many bytes the app pulled."""
    pulled, status = 0, []
    size = 2**16

    async def receive():
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.disconnect"}
        body = (head if pulled == 0 else b"") + b"{" * size
        pulled += size
        return {"type": "http.request", "body": body, "more_body": pulled < total}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", content_type.encode())]
        + [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    return status[0], pulled


def test_chunked_body_is_counted_before_login(service):
    app = service.client.app
    status, pulled = post_in_chunks(app, "/api/auth/token", "application/json", 300 * 2**20)
    assert status == 413 and pulled <= 2 * 2**20  # the limit (1 MiB) and a chunk, not 300 MiB
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF-'
    upload = ("/api/cases/1/documents", "multipart/form-data; boundary=x", 300 * 2**20, part)
    status, pulled = post_in_chunks(app, *upload, headers=service.headers("coordinator"))
    assert status == 413 and pulled <= 4 * 2**20  # the upload limit (2 MiB here) and the framing allowance
    status, pulled = post_in_chunks(app, *upload)  # no credentials at all: not a byte is read
    assert status == 401 and pulled == 0
    status, pulled = post_in_chunks(app, "/login", "application/x-www-form-urlencoded", 300 * 2**20)
    assert status == 413 and pulled <= 2 * 2**20


def count_cases(service) -> int:
    with service.client.app.state.engine.connect() as connection:
        return connection.execute(sqlalchemy.text("SELECT count(*) FROM cases")).scalar_one()


def test_deep_or_large_case_documents_are_refused_and_nothing_is_committed(service):
    nested: dict = {"leaf": 1}
    for _ in range(300):
        nested = {"n": nested}
    h = service.headers("coordinator")
    response = service.client.post(
        "/api/cases", json={"label": "deep", "case_document": {**CASE_DOCUMENT, "notes": nested}}, headers=h
    )
    assert response.status_code == 422, response.text
    # Far deeper than any parser's recursion: refused by a linear scan before parsing.
    deep = b'{"label": "x", "case_document": ' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    response = service.client.post("/api/cases", content=deep, headers={**h, "Content-Type": "application/json"})
    assert response.status_code in (413, 422), response.text
    # Brackets inside strings are text, not nesting.
    text_only = {**CASE_DOCUMENT, "notes": "[" * 100}
    assert service.client.post("/api/cases", json={"label": "t", "case_document": text_only}, headers=h).is_success
    large = {**CASE_DOCUMENT, "notes": "x" * (3 * 2**20)}
    response = service.client.post("/api/cases", json={"label": "large", "case_document": large}, headers=h)
    assert response.status_code == 413
    assert count_cases(service) == 1
    assert service.client.get("/api/cases", headers=service.headers("viewer")).status_code == 200
    # The page's form is bounded the same way.
    client = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(client, "coordinator")
    form = {"label": "deep", "case_document": "[" * 40 + "]" * 40, "csrf_token": csrf}
    assert client.post("/cases/new", data=form).status_code == 422
    assert count_cases(service) == 1


@pytest.mark.parametrize("value", [1e308, -1e300, 1e7])
def test_out_of_range_numbers_are_refused(service, value):
    document = copy.deepcopy(CASE_DOCUMENT)
    document["lesions"][0]["diameter_mm"] = value
    h = service.headers("coordinator")
    response = service.client.post("/api/cases", json={"label": "x", "case_document": document}, headers=h)
    assert response.status_code == 422, response.text
    assert "diameter_mm" in response.json()["field"]
    case = service.create_case()
    response = service.client.put(f"/api/cases/{case['id']}", json={"version": 1, "case_document": document}, headers=h)
    assert response.status_code == 422
    assert count_cases(service) == 1


def test_case_count_reads_ids_not_documents(service):
    for index in range(3):
        service.create_case(f"case {index}")
    statements = []
    engine = service.client.app.state.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
    sqlalchemy.event.listen(engine, "before_cursor_execute", listener)
    try:
        response = service.client.get("/api/cases?size=1", headers=service.headers("viewer"))
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", listener)
    assert response.headers["x-total-count"] == "3" and len(response.json()) == 1
    counts = [s for s in statements if "count(" in s.lower()]
    assert counts and all("case_document" not in s for s in counts)


# --- uploads: zips and DICOM ---------------------------------------------------------------------------


def test_zip_holding_a_malformed_dicom_is_refused(service, shared_data):
    case = service.create_case()
    series = sorted((shared_data / "03_totalseg_dicom_ct_series" / "dicom").iterdir())[:2]
    whole = {f"s/{p.name}": p.read_bytes() for p in series}
    assert upload(service, case["id"], "ct.zip", zip_bytes(whole), purpose="ct").status_code == 201
    first = next(iter(whole.values()))
    for broken in (first[: len(first) // 2], first[:1000], b"\0" * 128 + b"DICM" + bytes(range(256)) * 2):
        response = upload(service, case["id"], "ct.zip", zip_bytes({**whole, "s/broken.dcm": broken}), purpose="ct")
        assert response.status_code == 422, response.text
        assert "broken.dcm" in response.json()["detail"]
    assert len(stored_files(service)) == 1
    referral = service.client.get(f"/api/cases/{case['id']}/referral.zip", headers=service.headers("coordinator"))
    assert referral.status_code == 200


def test_zip_with_a_bad_crc_is_refused(service, shared_data):
    case = service.create_case()
    series = sorted((shared_data / "03_totalseg_dicom_ct_series" / "dicom").iterdir())[:1]
    packed = bytearray(zip_bytes({"s/a.dcm": series[0].read_bytes()}, zipfile.ZIP_STORED))
    packed[200] ^= 0xFF  # one byte of the stored file changed: its CRC-32 no longer matches
    response = upload(service, case["id"], "ct.zip", bytes(packed), purpose="ct")
    assert response.status_code == 422, response.text
    assert "intact zip" in response.json()["detail"]
    assert stored_files(service) == []


# --- sessions and tokens -------------------------------------------------------------------------------


def test_api_token_is_revoked_and_logout_works_for_tokens_and_cookies(service):
    client = service.client
    token = client.post("/api/auth/token", json={"username": "viewer", "password": PASSWORD}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=bearer).status_code == 200
    assert client.delete("/api/auth/token", headers=bearer).status_code == 204
    assert client.get("/api/me", headers=bearer).status_code == 401

    token = client.post("/api/auth/token", json={"username": "viewer", "password": PASSWORD}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.post("/logout", headers=bearer).status_code == 204
    assert client.get("/api/me", headers=bearer).status_code == 401

    browser = TestClient(client.app, follow_redirects=False)
    csrf = browser_login(browser, "viewer")
    cookie = browser.cookies["cryoplan_session"]
    assert browser.post("/logout", data={"csrf_token": csrf}).headers["location"] == "/login"
    replayed = TestClient(client.app, follow_redirects=False, cookies={"cryoplan_session": cookie})
    assert replayed.get("/").headers["location"] == "/login"
    events = client.get("/api/audit?action=logout", headers=service.headers("admin")).json()
    assert [e["detail"] for e in events] == ["session", "api"]
    assert all(e["username"] == "viewer" for e in events)


def login_from(app, address: str, username: str, password: str) -> tuple[int, float]:
    client = TestClient(app, client=(address, 40000), follow_redirects=False)
    start = time.monotonic()
    response = client.post("/api/auth/token", json={"username": username, "password": password})
    return response.status_code, time.monotonic() - start


def test_login_throttling_slows_an_attacker_without_locking_out_the_owner(service):
    app = service.client.app
    for _ in range(5):
        assert login_from(app, "10.0.0.66", "clinician", "guess-guess-guess")[0] == 401
    # The attacker's address now waits before each further try, for any user name.
    client = TestClient(app, client=("10.0.0.66", 40000))
    refused = client.post("/api/auth/token", json={"username": "clinician", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert login_from(app, "10.0.0.66", "viewer", PASSWORD)[0] == 429
    # The owner, from their own address, gets in at once but for the per-user delay.
    status, elapsed_s = login_from(app, "10.0.0.7", "clinician", PASSWORD)
    assert status == 200 and 0.2 <= elapsed_s < 5
    # The wait is a backoff, not a lock: one second after the fifth failure the address may try again.
    time.sleep(1.1)
    assert login_from(app, "10.0.0.66", "clinician", "guess-guess-guess")[0] == 401
    assert login_from(app, "10.0.0.66", "clinician", PASSWORD)[0] == 429  # now two seconds
    events = service.client.get("/api/audit", headers=service.headers("admin")).json()
    actions = [e["action"] for e in events if e["object_type"] == "user"]
    assert actions.count("login_throttled") == 3 and actions.count("login_failed") == 6


@pytest.mark.parametrize(
    "password,reason",
    [
        (" " * 10, "at least 12"),
        ("a  b  c  d  e  f", "at least 12"),  # runs of spaces count once: 11 characters
        ("password12", "at least 12"),
        ("password1234", "most common"),
        ("ILoveYou12345", None),
        ("dana-is-my-password", "user name"),
    ],
)
def test_password_policy(service, password, reason):
    response = service.client.post(
        "/api/users",
        headers=service.headers("admin"),
        json={"username": "Dana", "password": password, "role": "viewer"},
    )
    if reason is None:
        assert response.status_code == 201, response.text
        assert response.json()["username"] == "dana"
    else:
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "password" and reason in response.json()["detail"]


def test_user_names_are_ascii_and_case_insensitive(service):
    h = service.headers("admin")
    new = {"password": "a-fine-long-password", "role": "viewer"}
    assert service.client.post("/api/users", headers=h, json={**new, "username": "admin1"}).status_code == 201
    for look_alike in ("ADMIN1", "Admin1", "admın1", "аdmin1"):  # upper case, dotless ı, Cyrillic а
        response = service.client.post("/api/users", headers=h, json={**new, "username": look_alike})
        assert response.status_code == 422, look_alike
        assert response.json()["field"] == "username"
    token = service.client.post("/api/auth/token", json={"username": "ADMIN1", "password": new["password"]})
    assert token.status_code == 200
    me = service.client.get("/api/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["username"] == "admin1"


def test_login_from_another_site_is_refused(service):
    client = TestClient(service.client.app, follow_redirects=False)
    form = {"username": "viewer", "password": PASSWORD}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.post("/login", data=form, headers=headers)
        assert response.status_code == 403, headers
        assert "cryoplan_session" not in response.cookies
    same = client.post("/login", data=form, headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303


# --- audit ---------------------------------------------------------------------------------------------


def test_audit_pages_filters_real_actors_and_denials(service):
    client = service.client
    for index in range(7):
        service.create_case(f"case {index}")
    assert client.post("/api/auth/token", json={"username": "coordinator", "password": PASSWORD}).status_code == 200
    assert (
        client.post("/api/auth/token", json={"username": "coordinator", "password": "wrong-wrong"}).status_code == 401
    )
    assert client.get("/api/users", headers=service.headers("viewer")).status_code == 403
    h = service.headers("admin")
    pages = [client.get(f"/api/audit?action=create&username=coordinator&size=3&page={n}", headers=h) for n in (1, 2, 3)]
    assert all(page.headers["x-total-count"] == "7" for page in pages)
    ids = [e["id"] for page in pages for e in page.json()]
    assert [len(page.json()) for page in pages] == [3, 3, 1]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7  # newest first, pages disjoint
    assert {(e["action"], e["username"]) for page in pages for e in page.json()} == {("create", "coordinator")}
    first = client.get("/api/audit?size=3", headers=h)
    assert int(first.headers["x-total-count"]) >= 10 and len(first.json()) == 3
    logins = {
        e["action"]: e for e in client.get("/api/audit?size=1000", headers=h).json() if e["object_type"] == "user"
    }
    assert logins["login"]["username"] == "coordinator"
    assert logins["login_failed"]["username"] == "anonymous" and logins["login_failed"]["detail"] == "coordinator"
    denied = client.get("/api/audit?action=denied", headers=h).json()
    assert len(denied) == 1 and denied[0]["username"] == "viewer" and "/api/users" in denied[0]["detail"]
    since = first.json()[0]["at"]
    assert client.get("/api/audit", params={"since": since}, headers=h).json()[-1]["at"] >= since
    assert client.get("/api/audit?size=5000", headers=h).status_code == 422


# --- job errors, the report ----------------------------------------------------------------------------


def test_job_errors_are_shown_without_server_paths(service):
    from cryoplan.service.models import Job

    case = service.create_case()
    data_dir = str(service.data_dir.resolve())
    with service.client.app.state.sessions() as db:
        job = Job(case_id=case["id"], kind="plan", status="running", attempts=1, case_version=1, created_by=1)
        db.add(job)
        db.commit()
        job_id = job.id
    error = InputError(f"{data_dir}/documents/0a1b.nrrd", "a readable NRRD file", "FileNotFoundError: '/etc/shadow'")
    service.client.app.state.runner._finish(job_id, error)
    shown = service.client.get(f"/api/jobs/{job_id}", headers=service.headers("viewer")).json()
    assert shown["status"] == "failed"
    assert data_dir not in shown["error"] and "/etc/" not in shown["error"]
    assert "0a1b.nrrd" in shown["error"] and "a readable NRRD file" in shown["error"]
    assert public_error(OSError("cannot open /srv/cryoplan-data/c.db")) == "OSError: cannot open …/c.db"


def test_report_html_carries_its_stylesheet_inline(service):
    from cryoplan.service.reports import REPORT_CSS

    case = service.create_case()
    response = service.client.get(f"/api/cases/{case['id']}/report.html", headers=service.headers("viewer"))
    assert response.status_code == 200
    assert "file://" not in response.text and "<link" not in response.text
    inline = re.search(r"<style>(.*?)</style>", response.text, re.S).group(1)
    assert inline == REPORT_CSS and len(inline) > 100
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]


# --- closed cases --------------------------------------------------------------------------------------


def close(service, case_id: int, version: int) -> dict:
    response = service.client.post(
        f"/api/cases/{case_id}/status",
        json={"to_status": "closed", "reason": "patient moved", "version": version},
        headers=service.headers("coordinator"),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_closed_cases_are_read_only_until_reopened(service):
    client, h = service.client, service.headers("coordinator")
    case = service.create_case()
    moved = client.post(
        f"/api/cases/{case['id']}/status",
        json={"to_status": "records_complete", "reason": "all in", "version": 1},
        headers=h,
    ).json()
    task = client.post(f"/api/cases/{case['id']}/tasks", json={"title": "call", "due_date": "2027-01-01"}, headers=h)
    closed = close(service, case["id"], moved["version"])
    base = f"/api/cases/{case['id']}"
    refusals = [
        client.put(base, json={"version": closed["version"], "label": "edited"}, headers=h),
        upload(service, case["id"], "letter.pdf", b"%PDF-1.4\n%%EOF\n"),
        client.post(f"{base}/messages", json={"direction": "note", "body": "x"}, headers=h),
        client.post(f"{base}/tasks", json={"title": "x", "due_date": "2027-01-01"}, headers=h),
        client.post(f"{base}/tasks/{task.json()['id']}/done", headers=h),
        client.post(f"{base}/jobs", json={"kind": "assessment"}, headers=h),
    ]
    for response in refusals:
        assert response.status_code == 409, response.text
        assert "closed" in response.json()["detail"]
    assert stored_files(service) == []
    viewer = client.post(
        f"{base}/reopen", json={"reason": "x", "version": closed["version"]}, headers=service.headers("viewer")
    )
    assert viewer.status_code == 403
    assert (
        client.post(f"{base}/reopen", json={"reason": " ", "version": closed["version"]}, headers=h).status_code == 422
    )
    reopened = client.post(f"{base}/reopen", json={"reason": "patient back", "version": closed["version"]}, headers=h)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["status"] == "records_complete"
    assert (
        client.put(base, json={"version": reopened.json()["version"], "label": "edited"}, headers=h).status_code == 200
    )
    assert client.post(f"{base}/reopen", json={"reason": "again", "version": 99}, headers=h).status_code == 409
    history = client.get(base, headers=h).json()["status_history"]
    assert [(c["from_status"], c["to_status"]) for c in history][-2:] == [
        ("records_complete", "closed"),
        ("closed", "records_complete"),
    ]
    reopen_events = client.get(f"{base}/audit?action=reopen", headers=service.headers("admin")).json()
    assert [e["username"] for e in reopen_events] == ["coordinator"]


def test_viewers_do_not_see_closed_cases_tasks(service):
    h = service.headers("coordinator")
    open_case, closed_case = service.create_case("open one"), service.create_case("closed one")
    for case, title in ((open_case, "task of the open case"), (closed_case, "task of the closed case")):
        response = service.client.post(
            f"/api/cases/{case['id']}/tasks", json={"title": title, "due_date": "2027-01-01"}, headers=h
        )
        assert response.status_code == 201
    close(service, closed_case["id"], 1)
    viewer = TestClient(service.client.app)
    browser_login(viewer, "viewer")
    page = viewer.get("/tasks").text
    assert "task of the open case" in page and "task of the closed case" not in page
    listed = service.client.get(f"/api/cases/{closed_case['id']}/tasks", headers=service.headers("viewer"))
    assert listed.status_code == 404


# --- the data folder -----------------------------------------------------------------------------------


def test_data_folder_is_private_and_partial_uploads_are_swept(tmp_path, database_url):
    from cryoplan.service.app import create_app
    from cryoplan.service.settings import ServiceSettings

    data = tmp_path / "data"
    (data / "documents").mkdir(parents=True)
    data.chmod(0o755)
    stale = data / "documents" / ".0123abcd.pdf.part"
    stale.write_bytes(b"%PDF- half an upload")
    settings = ServiceSettings(data_dir=data, database_url=database_url, max_upload_mb=2.0)
    app = create_app(settings)
    assert not stale.exists()
    tokens = create_users(app)
    with TestClient(app) as client:
        case = client.post(
            "/api/cases",
            json={"label": "x", "case_document": CASE_DOCUMENT},
            headers={"Authorization": f"Bearer {tokens['coordinator']}"},
        ).json()
        uploaded = client.post(
            f"/api/cases/{case['id']}/documents",
            headers={"Authorization": f"Bearer {tokens['coordinator']}"},
            files={"file": ("letter.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")},
        )
        assert uploaded.status_code == 201
    for folder in (data, data / "documents", data / "jobs"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    written = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.parent.name == "documents" for p in written) and (data / "secret_key").exists()
    for path in written:
        assert path.stat().st_mode & 0o077 == 0, path


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_live_server_trusts_no_proxy_by_default_and_writes_private_files(live_server):
    server = start_with_users(live_server)
    headers = server.token("clinician")
    spoofed = {**headers, "X-Forwarded-For": "203.0.113.9"}
    case = httpx.post(f"{server.url}/api/cases", json={"label": "p", "case_document": CASE_DOCUMENT}, headers=spoofed)
    job = httpx.post(f"{server.url}/api/cases/{case.json()['id']}/jobs", json={"kind": "assessment"}, headers=headers)
    assert wait_for_job(server, headers, job.json()["id"])["status"] == "done"
    admin = server.token("admin")
    created = httpx.get(f"{server.url}/api/audit?action=create", headers=admin).json()
    assert [e["client_address"] for e in created if e["object_type"] == "case"] == ["127.0.0.1"]

    data = Path(server.env["CRYOPLAN_DATA_DIR"])
    for path in [data, *data.rglob("*")]:
        if path.is_dir():
            assert path.stat().st_mode & 0o777 == 0o700, path
        else:
            assert path.stat().st_mode & 0o077 == 0, path
    assert list((data / "jobs").rglob("assessment.json"))
    database = Path(server.env["CRYOPLAN_DATABASE_URL"].removeprefix("sqlite:///"))
    assert database.stat().st_mode & 0o077 == 0

    server.stop()
    server.start(CRYOPLAN_FORWARDED_ALLOW_IPS="127.0.0.1")  # now behind a proxy on this host
    headers = server.token("clinician")
    httpx.post(
        f"{server.url}/api/cases",
        json={"label": "q", "case_document": CASE_DOCUMENT},
        headers={**headers, "X-Forwarded-For": "203.0.113.9"},
    )
    created = httpx.get(f"{server.url}/api/audit?action=create", headers=server.token("admin")).json()
    assert [e["client_address"] for e in created if e["object_type"] == "case"] == ["203.0.113.9", "127.0.0.1"]
