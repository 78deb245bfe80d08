"""Security of the service: uploads (path traversal, zip bomb, size, content/type mismatch), markup in every
text field, forms without the CSRF token, repeated failed logins, cookie flags and the report's URL fetcher.
The findings of the security review have their tests in test_hardening.py."""

from __future__ import annotations

import hashlib
import zipfile

import markupsafe
import pytest
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, PASSWORD, browser_login
from support.uploads import stored_files, upload, zip_bytes

DICOM_HEAD = b"\0" * 128 + b"DICM"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def test_real_dicom_series_zip_and_nifti_are_accepted_with_checksums(service, shared_data):
    case = service.create_case()
    series = sorted((shared_data / "03_totalseg_dicom_ct_series" / "dicom").iterdir())[:3]
    packed = zip_bytes({f"series/{p.name}": p.read_bytes() for p in series})
    response = upload(service, case["id"], "ct-series.zip", packed, purpose="ct")
    assert response.status_code == 201, response.text
    assert response.json()["file_type"] == "dicom_zip"
    assert response.json()["sha256"] == hashlib.sha256(packed).hexdigest()

    ct = (shared_data / "02_totalseg_ct_sm_vessels" / "example_ct_sm.nii.gz").read_bytes()
    response = upload(service, case["id"], "example_ct_sm.nii.gz", ct, purpose="ct")
    assert response.status_code == 201, response.text
    assert response.json()["file_type"] == "nifti_gz"
    # Stored under generated names only, never the uploaded one.
    assert not any("example" in name or "series" in name for name in stored_files(service))
    content = service.client.get(
        f"/api/cases/{case['id']}/documents/{response.json()['id']}/content", headers=service.headers("viewer")
    )
    assert hashlib.sha256(content.content).hexdigest() == hashlib.sha256(ct).hexdigest()
    assert content.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("entry", ["../../evil.dcm", "/etc/cron.d/evil", "a/../../evil.dcm", "C:\\evil.dcm"])
def test_zip_with_path_traversal_is_refused(service, entry):
    case = service.create_case()
    response = upload(service, case["id"], "series.zip", zip_bytes({"ok.dcm": DICOM_HEAD, entry: DICOM_HEAD}), "ct")
    assert response.status_code == 422
    assert "relative names" in response.json()["detail"]
    assert stored_files(service) == []


def test_zip_bomb_is_refused(service):
    case = service.create_case()
    bomb = zip_bytes({"slice.dcm": DICOM_HEAD + b"\0" * (3 * 2**20)})  # ~3 MiB of zeros packs to ~3 KiB
    assert len(bomb) < 20_000
    response = upload(service, case["id"], "series.zip", bomb, "ct")
    assert response.status_code == 422
    assert "zip bomb" in response.json()["detail"]
    # Many entries each under the ratio but together beyond the expansion limit (4 MiB here).
    import os

    wide = zip_bytes({f"{i}.dcm": DICOM_HEAD + os.urandom(600_000) for i in range(8)}, zipfile.ZIP_STORED)
    response = upload(service, case["id"], "series.zip", wide, "ct")
    assert response.status_code in (413, 422)
    assert stored_files(service) == []


def test_zip_of_non_dicom_files_is_refused(service):
    case = service.create_case()
    response = upload(service, case["id"], "series.zip", zip_bytes({"notes.txt": b"hello" * 100}), "ct")
    assert response.status_code == 422
    assert "DICOM" in response.json()["detail"]


def test_oversized_upload_is_refused(service):
    case = service.create_case()
    # Just over the limit: counted while stored, then removed.
    response = upload(service, case["id"], "big.pdf", b"%PDF-1.4\n" + b"0" * (2 * 2**20 + 10))
    assert response.status_code == 413
    # Far over it: refused from its Content-Length before the body is read.
    response = upload(service, case["id"], "huge.pdf", b"%PDF-1.4\n" + b"0" * (8 * 2**20))
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert stored_files(service) == []


@pytest.mark.parametrize(
    "name,data",
    [
        ("report.pdf", PNG),
        ("scan.nii.gz", b"<html><script>alert(1)</script></html>"),
        ("photo.png", b"%PDF-1.4 not an image"),
        ("labels.nrrd", b"\x1f\x8b not really gzip"),
        ("page.html", b"<html></html>"),
    ],
)
def test_content_not_matching_its_type_is_refused(service, name, data):
    case = service.create_case()
    response = upload(service, case["id"], name, data)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "file"
    assert stored_files(service) == []


MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_markup_in_every_text_field_is_escaped(service):
    h = service.headers
    document = {**CASE_DOCUMENT, "case_id": MARKUP, "lesions": [{**CASE_DOCUMENT["lesions"][0], "id": MARKUP}]}
    case = service.create_case(label=MARKUP, document=document)
    case_id = case["id"]
    client = service.client
    client.put(f"/api/cases/{case_id}", json={"version": 1, "board_date": "2027-01-05"}, headers=h("coordinator"))
    assert upload(service, case_id, MARKUP + ".pdf", b"%PDF-1.4\n%%EOF\n").status_code == 201
    client.post(
        f"/api/cases/{case_id}/messages",
        json={"direction": "received", "counterpart": MARKUP, "body": MARKUP},
        headers=h("coordinator"),
    )
    client.post(
        f"/api/cases/{case_id}/tasks", json={"title": MARKUP, "due_date": "2027-01-01"}, headers=h("coordinator")
    )
    for version, step in ((2, "records_complete"), (3, "eligibility_reviewed")):
        moved = client.post(
            f"/api/cases/{case_id}/status",
            json={"to_status": step, "reason": MARKUP, "version": version},
            headers=h("clinician"),
        )
        assert moved.status_code == 200, moved.text
    # Invalid input echoes the offending value in its error message: that must be escaped too.
    bad = client.post(
        f"/api/cases/{case_id}/status",
        json={"to_status": "closed", "reason": MARKUP, "version": 1},
        headers=h("clinician"),
    )
    assert bad.status_code == 409

    page_client = TestClient(client.app)
    browser_login(page_client, "admin")
    pages = [
        f"/cases/{case_id}",
        "/",
        "/board",
        "/tasks",
        f"/cases/{case_id}/audit",
        "/audit",
        f"/api/cases/{case_id}/report.html",
    ]
    escaped = str(markupsafe.escape(MARKUP))
    for page in pages:
        text = page_client.get(page).text
        assert MARKUP not in text, page
        assert "<script>alert" not in text and "<img src=x" not in text, page
        if "audit" not in page:  # the audit trail holds no user text, only what was done
            assert escaped in text, page  # shown, as text
    # Label, lesion id, document name, message counterpart and body, task title, two reasons: all shown.
    assert page_client.get(f"/cases/{case_id}").text.count(escaped) >= 8
    # The page's own error messages escape what they echo, too.
    csrf = browser_login(page_client, "coordinator")
    response = page_client.post("/cases/new", data={"label": MARKUP, "case_document": MARKUP, "csrf_token": csrf})
    assert response.status_code == 422
    assert MARKUP not in response.text and "<script>alert" not in response.text
    # And no inline script could run anyway: the policy allows scripts from the app's own origin only.
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_form_post_without_csrf_token_is_refused(service):
    case = service.create_case()
    client = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(client, "coordinator")
    form = {"direction": "note", "body": "hello"}
    assert client.post(f"/cases/{case['id']}/messages", data=form).status_code == 403
    assert client.post(f"/cases/{case['id']}/messages", data={**form, "csrf_token": "forged"}).status_code == 403
    # The API with the session cookie (as a script in the page would use it) needs the header as well.
    assert client.post(f"/api/cases/{case['id']}/messages", json=form).status_code == 403
    messages = service.client.get(f"/api/cases/{case['id']}/messages", headers=service.headers("admin")).json()
    assert messages == []
    assert client.post(f"/cases/{case['id']}/messages", data={**form, "csrf_token": csrf}).status_code == 303
    assert (
        client.post(f"/api/cases/{case['id']}/messages", json=form, headers={"X-CSRF-Token": csrf}).status_code == 201
    )


def test_session_cookie_flags(service):
    client = TestClient(service.client.app, follow_redirects=False)
    response = client.post("/login", data={"username": "viewer", "password": PASSWORD})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_repeated_failed_logins_slow_the_address_down(service):
    client = TestClient(service.client.app, follow_redirects=False)
    for _ in range(5):
        assert client.post("/login", data={"username": "clinician", "password": "guess"}).status_code == 401
    # This address must now wait, on the page and on the API, with a clear message.
    slowed = client.post("/login", data={"username": "clinician", "password": PASSWORD})
    assert slowed.status_code == 429
    assert "too many failed logins" in slowed.text and "retry-after" in slowed.headers
    api = client.post("/api/auth/token", json={"username": "clinician", "password": PASSWORD})
    assert api.status_code == 429
    # The account is not locked: from another address its owner logs in.
    elsewhere = TestClient(service.client.app, follow_redirects=False, client=("192.0.2.10", 50000))
    assert elsewhere.post("/login", data={"username": "clinician", "password": PASSWORD}).status_code == 303
    audit = service.client.get("/api/audit", headers=service.headers("admin")).json()
    failures = [e for e in audit if e["action"] == "login_failed"]
    assert len(failures) == 5 and {e["detail"] for e in failures} == {"clinician"}
    assert all(e["client_address"] == "testclient" for e in failures)


def test_report_fetcher_refuses_anything_outside_the_app(tmp_path):
    from cryoplan.service.reports import STATIC_DIR, RefusedURL, _app_files_fetcher, html_to_pdf

    fetcher = _app_files_fetcher()
    secret = tmp_path / "secret.css"
    secret.write_text("body { color: red }")
    for url in (
        secret.as_uri(),
        "file:///etc/passwd",
        "http://127.0.0.1:1/x.css",
        "https://example.org/a.png",
        (STATIC_DIR / ".." / "app.py").as_uri(),
    ):
        with pytest.raises(RefusedURL):
            fetcher.fetch(url)
    # the app's own stylesheet is served, byte for byte, as CSS
    served = fetcher.fetch((STATIC_DIR / "report.css").as_uri())
    try:
        assert served.content_type == "text/css"
        assert served.read() == (STATIC_DIR / "report.css").read_bytes()
    finally:
        served.close()
    pdf = html_to_pdf(f'<p>x</p><img src="{secret.as_uri()}"><img src="http://127.0.0.1:1/a.png">')
    assert pdf.startswith(b"%PDF")
