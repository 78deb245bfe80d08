"""The admins' users page: list users, create one with a role, deactivate one; every form carries the CSRF
token, every change is audited, and a deactivated user's sessions and tokens stop working at once."""

from __future__ import annotations

import markupsafe
from starlette.testclient import TestClient
from support.service import PASSWORD, browser_login

NEW_PASSWORD = "another-long-password"


def user_row(page: str, username: str) -> str:
    start = page.index(f'<tr data-username="{username}">')
    return page[start : page.index("</tr>", start)]


def test_admin_creates_and_deactivates_a_user_on_the_users_page(service):
    admin = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(admin, "admin")
    page = admin.get("/users").text
    for role in ("admin", "coordinator", "clinician", "viewer"):
        assert f'<tr data-username="{role}">' in page

    form = {"username": "dana", "full_name": "<b>Dana</b> Moe", "role": "clinician", "password": NEW_PASSWORD}
    assert admin.post("/users", data=form).status_code == 403  # no CSRF token
    assert admin.post("/users", data={**form, "csrf_token": "forged"}).status_code == 403
    assert 'data-username="dana"' not in admin.get("/users").text
    created = admin.post("/users", data={**form, "csrf_token": csrf})
    assert created.status_code == 303 and created.headers["location"] == "/users"
    row = user_row(admin.get("/users").text, "dana")
    assert "clinician" in row and '<td class="user-active">yes</td>' in row
    assert str(markupsafe.escape("<b>Dana</b> Moe")) in row and "<b>Dana</b>" not in row

    dana = TestClient(service.client.app)
    logged_in = dana.post("/login", data={"username": "dana", "password": NEW_PASSWORD}, follow_redirects=False)
    assert logged_in.status_code == 303
    token = service.client.post("/api/auth/token", json={"username": "dana", "password": NEW_PASSWORD}).json()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert service.client.get("/api/me", headers=bearer).json() == {"username": "dana", "role": "clinician"}
    assert dana.get("/", follow_redirects=False).status_code == 200

    dana_id = next(
        u["id"]
        for u in service.client.get("/api/users", headers=service.headers("admin")).json()
        if u["username"] == "dana"
    )
    assert admin.post(f"/users/{dana_id}/deactivate").status_code == 403  # no CSRF token
    deactivated = admin.post(f"/users/{dana_id}/deactivate", data={"csrf_token": csrf})
    assert deactivated.status_code == 303
    assert '<td class="user-active">no</td>' in user_row(admin.get("/users").text, "dana")
    # Her open session and her API token end at once, and she cannot log in again.
    assert dana.get("/", follow_redirects=False).headers["location"] == "/login"
    assert service.client.get("/api/me", headers=bearer).status_code == 401
    again = service.client.post("/api/auth/token", json={"username": "dana", "password": NEW_PASSWORD})
    assert again.status_code == 401

    events = service.client.get("/api/audit", headers=service.headers("admin")).json()
    changes = [
        (e["username"], e["action"], e["detail"])
        for e in reversed(events)
        if e["object_type"] == "user" and e["action"] in ("create", "deactivate")
    ]
    assert changes == [("admin", "create", "dana as clinician"), ("admin", "deactivate", "dana")]


def test_bad_new_user_is_refused_with_the_reason_and_nothing_is_created(service):
    admin = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(admin, "admin")
    for form, field in (
        ({"username": "eve", "role": "viewer", "password": "short"}, "password"),
        ({"username": "eve", "role": "surgeon", "password": NEW_PASSWORD}, "role"),
        ({"username": "e/../ve", "role": "viewer", "password": NEW_PASSWORD}, "username"),
        ({"username": "viewer", "role": "viewer", "password": NEW_PASSWORD}, "username"),
    ):
        response = admin.post("/users", data={**form, "csrf_token": csrf})
        assert response.status_code == 422, form
        assert f"{field}:" in response.text, (form, response.text)
    names = [u["username"] for u in service.client.get("/api/users", headers=service.headers("admin")).json()]
    assert sorted(names) == ["admin", "clinician", "coordinator", "viewer"]


def test_an_admin_cannot_deactivate_themselves(service):
    me = next(
        u for u in service.client.get("/api/users", headers=service.headers("admin")).json() if u["username"] == "admin"
    )
    response = service.client.post(f"/api/users/{me['id']}/deactivate", headers=service.headers("admin"))
    assert response.status_code == 409 and "your own account" in response.json()["detail"]
    assert service.client.get("/api/me", headers=service.headers("admin")).status_code == 200
    missing = service.client.post("/api/users/999999/deactivate", headers=service.headers("admin"))
    assert missing.status_code == 404


def test_deactivation_through_the_api_ends_the_users_tokens(service):
    users = service.client.get("/api/users", headers=service.headers("admin")).json()
    viewer = next(u for u in users if u["username"] == "viewer")
    assert service.client.get("/api/cases", headers=service.headers("viewer")).status_code == 200
    response = service.client.post(f"/api/users/{viewer['id']}/deactivate", headers=service.headers("admin"))
    assert response.status_code == 200 and response.json()["active"] is False
    assert service.client.get("/api/cases", headers=service.headers("viewer")).status_code == 401
    login = service.client.post("/api/auth/token", json={"username": "viewer", "password": PASSWORD})
    assert login.status_code == 401
