"""Fixtures of the service tests: the app on a real database (a SQLite file, and PostgreSQL when
CRYOPLAN_TEST_POSTGRES_URL is set) with one user per role, and live `cryoplan serve` processes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.service import LiveServer, Service, create_users, postgres_url

from cryoplan.service.app import create_app
from cryoplan.service.settings import ServiceSettings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """A real, empty database: a SQLite file, or the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return postgres_url()


@pytest.fixture
def settings(tmp_path, database_url) -> ServiceSettings:
    return ServiceSettings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret",
        max_upload_mb=2.0,
        max_unzipped_mb=4.0,
    )


@pytest.fixture
def service(settings) -> Service:
    app = create_app(settings)
    tokens = create_users(app)
    with TestClient(app) as client:
        yield Service(client, tokens, settings.data_dir)


@pytest.fixture
def live_server(tmp_path, database_url):
    """A factory of live servers on one data folder and database; every server is stopped at the end."""
    servers = []

    def make(**env: str) -> LiveServer:
        server = LiveServer(tmp_path / "data", database_url, **env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
