"""Helpers of the service tests: the test case file, the users, logging in, and a live `cryoplan serve`
process with the jobs it runs."""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from cryoplan.service.auth import issue_token, password_hasher
from cryoplan.service.models import Role, User
from support.cases import DELETE, case_document

PASSWORD = "a-long-test-password"
ROLES = [role.value for role in Role]

# The clinical tests' baseline case, its vessel 6 mm from the lesion (cryoablation rather than RFA), without the
# optional transplant and prior-treatment fields.
CASE_DOCUMENT = case_document(
    **{"lesions.0.distance_to_major_vessel_mm": 6, "transplant_listed": DELETE, "prior_treatments": DELETE}
)


def postgres_url() -> str:
    """The test PostgreSQL server, emptied; skips when none is configured, fails under CI=true."""
    url = os.environ.get("CRYOPLAN_TEST_POSTGRES_URL")
    if not url:
        reason = "CRYOPLAN_TEST_POSTGRES_URL not set (source .ci/postgres.sh to start a server)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:  # an empty database for each test
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
        connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@dataclass
class Service:
    """The app under test with a TestClient and a bearer token per role."""

    client: TestClient
    tokens: dict[str, str]
    data_dir: Path

    def headers(self, role: str | None) -> dict:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def create_case(self, label: str = "case A", document: dict | None = None, role: str = "coordinator") -> dict:
        response = self.client.post(
            "/api/cases", json={"label": label, "case_document": document or CASE_DOCUMENT}, headers=self.headers(role)
        )
        assert response.status_code == 201, response.text
        return response.json()


@functools.cache
def password_hash() -> str:
    """The Argon2 hash of PASSWORD, computed once (hashing is deliberately slow)."""
    return password_hasher.hash(PASSWORD)


def create_users(app) -> dict[str, str]:
    """One user per role, named after the role, with PASSWORD; returns an API token for each."""
    tokens = {}
    with app.state.sessions() as db:
        for role in ROLES:
            user = User(username=role, full_name=f"Test {role}", role=role, password_hash=password_hash(), active=True)
            db.add(user)
            db.flush()
            tokens[role], _ = issue_token(db, user, "api", 3600)
        db.commit()
    return tokens


def browser_login(client: TestClient, role: str) -> str:
    """Log in through the login form; returns the page's CSRF token."""
    response = client.post("/login", data={"username": role, "password": PASSWORD}, follow_redirects=True)
    assert response.status_code == 200, response.text
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """`cryoplan serve` in its own process group, as a user runs it (real uvicorn, real Dask)."""

    def __init__(self, data_dir: Path, database_url: str, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CRYOPLAN_DATA_DIR": str(data_dir),
            "CRYOPLAN_DATABASE_URL": database_url,
            "CRYOPLAN_SECRET_KEY": "live-test-secret",
            **env,
        }
        self.command = [sys.executable, "-m", "cryoplan", "serve", "--port", str(self.port)]
        self.process = None

    def cli(self, *args: str, **env: str):
        return subprocess.run(
            [sys.executable, "-m", "cryoplan", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, **env: str) -> LiveServer:
        self.log = open(Path(self.env["CRYOPLAN_DATA_DIR"]).parent / f"server-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            self.command, env={**self.env, **env}, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited at start"
            try:
                if httpx.get(self.url + "/login", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the server did not start within 90 s")

    def kill(self) -> None:
        """SIGKILL the server and everything it started (its Dask workers), as a power cut would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
            self.log.close()

    def token(self, username: str) -> dict:
        response = httpx.post(self.url + "/api/auth/token", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def wait_for_job(server, headers, job_id, timeout_s=180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/api/jobs/{job_id}", headers=headers, timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def start_with_users(live_server, **env):
    server = live_server(**env)
    for role in ("admin", "clinician"):
        created = server.cli("users", "create", role, "--role", role, CRYOPLAN_NEW_PASSWORD=PASSWORD)
        assert created.returncode == 0, created.stderr
    return server.start()
