"""The admin changes a role, reactivates a user and sets a new password from the users page; each is
audited, and a new password ends the user's sessions."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from support.service import PASSWORD, browser_login

from cryoplan.service.models import AuditEvent, User

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def user_id(service, username: str) -> int:
    with service.client.app.state.sessions() as db:
        return db.query(User).filter_by(username=username).one().id


def actions(service) -> list[str]:
    with service.client.app.state.sessions() as db:
        return [e.action for e in db.query(AuditEvent).filter(AuditEvent.object_type == "user")]


def test_the_admin_changes_a_role_reactivates_and_resets_a_password(service):
    admin = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(admin, "admin")
    viewer = user_id(service, "viewer")
    assert admin.post(f"/users/{viewer}/role", data={"csrf_token": csrf, "role": "clinician"}).status_code == 303
    assert service.client.get("/api/me", headers=service.headers("viewer")).json()["role"] == "clinician"

    assert admin.post(f"/users/{viewer}/deactivate", data={"csrf_token": csrf}).status_code == 303
    assert service.client.get("/api/me", headers=service.headers("viewer")).status_code == 401
    assert admin.post(f"/users/{viewer}/reactivate", data={"csrf_token": csrf}).status_code == 303
    page = admin.get("/users").text
    assert 'data-username="viewer"' in page and f'action="/users/{viewer}/deactivate"' in page

    user = TestClient(service.client.app, follow_redirects=False)
    browser_login(user, "viewer")
    assert user.get("/").status_code == 200
    new_password = "a-new-and-longer-passphrase"
    assert (
        admin.post(f"/users/{viewer}/password", data={"csrf_token": csrf, "password": new_password}).status_code == 303
    )
    assert user.get("/").status_code == 303  # the old session ended: back to the login page
    assert user.post("/login", data={"username": "viewer", "password": PASSWORD}).status_code == 401
    assert user.post("/login", data={"username": "viewer", "password": new_password}).status_code == 303
    admin_actions = [a for a in actions(service) if a in ("change_role", "deactivate", "reactivate", "reset_password")]
    assert admin_actions == ["change_role", "deactivate", "reactivate", "reset_password"]


def test_refusals_are_shown_beside_the_user(service):
    admin = TestClient(service.client.app, follow_redirects=False)
    csrf = browser_login(admin, "admin")
    me, viewer = user_id(service, "admin"), user_id(service, "viewer")
    refused = admin.post(f"/users/{me}/role", data={"csrf_token": csrf, "role": "viewer"})
    assert refused.status_code == 422 and "cannot take the admin role from yourself" in refused.text
    short = admin.post(f"/users/{viewer}/password", data={"csrf_token": csrf, "password": "short"})
    assert short.status_code == 422 and 'class="field-error" role="alert"' in short.text
    coordinator = TestClient(service.client.app, follow_redirects=False)
    token = browser_login(coordinator, "coordinator")
    assert coordinator.post(f"/users/{viewer}/role", data={"csrf_token": token, "role": "admin"}).status_code == 403
