"""Property-based requests generated from the app's OpenAPI schema (schemathesis) find no server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, create_users, postgres_url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live_app(request, tmp_path_factory):
    from cryoplan.service.app import create_app
    from cryoplan.service.settings import ServiceSettings

    folder = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder / 'service.db'}" if request.param == "sqlite" else postgres_url()
    app = create_app(
        ServiceSettings(
            data_dir=folder / "data", database_url=url, secret_key="x", max_upload_mb=1.0, login_max_failures=10_000
        )
    )
    tokens = create_users(app)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {tokens['admin']}"}
        case = client.post("/api/cases", json={"label": "seed", "case_document": CASE_DOCUMENT}, headers=headers)
        case_id = case.json()["id"]
        document = client.post(
            f"/api/cases/{case_id}/documents",
            headers=headers,
            data={"purpose": "record"},
            files={"file": ("letter.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")},
        )
        task = client.post(
            f"/api/cases/{case_id}/tasks", json={"title": "t", "due_date": "2027-01-01"}, headers=headers
        )
        app.state.test_headers = headers
        # Generated requests address these objects, so that they reach past the "not found" answer.
        app.state.test_ids = {"case_id": case_id, "document_id": document.json()["id"], "task_id": task.json()["id"]}
        yield app


@pytest.mark.slow
def test_no_server_error(live_app):
    """Every operation of /openapi.json, with generated valid and invalid input, as an admin."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", live_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Revoking the token would end the session the generated requests go on using (tested on its own).
    operations = [operation for operation in operations if operation.label != "DELETE /api/auth/token"]
    assert len(operations) >= 25
    statuses = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def no_server_error(case):
            for name, value in live_app.state.test_ids.items():
                if case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = value
            response = case.call_and_validate(headers=live_app.state.test_headers, checks=[not_a_server_error])
            statuses.append((operation.label, response.status_code))

        no_server_error()
    # The generated requests reached the application, not only its validation layer.
    assert len(statuses) >= 5 * len(operations)
    succeeded = {label for label, status in statuses if status < 300}
    assert len(succeeded) >= len(operations) // 2, sorted(succeeded)
