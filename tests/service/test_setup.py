"""Settings, database setup and the service commands: WAL mode, migrations matching the models, users create."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cryoplan.service import db as database
from cryoplan.service.models import Base
from cryoplan.service.settings import ServiceSettings


def test_default_database_is_sqlite_in_the_data_folder_in_wal_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOPLAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRYOPLAN_DATABASE_URL", raising=False)
    settings = ServiceSettings()
    assert settings.resolved_database_url() == f"sqlite:///{(tmp_path / 'data' / 'cryoplan.db').resolve()}"
    engine = database.make_engine(settings.resolved_database_url())
    (tmp_path / "data").mkdir()
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_migrations_create_exactly_the_models_schema(database_url):
    engine = database.make_engine(database_url)
    database.migrate(engine)
    database.migrate(engine)  # applying again changes nothing
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cryoplan", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_users_create_and_its_bad_input(tmp_path):
    import os

    env = {**os.environ, "CRYOPLAN_DATA_DIR": str(tmp_path / "data"), "CRYOPLAN_NEW_PASSWORD": "first-admin-pw"}
    env.pop("CRYOPLAN_DATABASE_URL", None)
    created = run_cli("users", "create", "alice", "--role", "admin", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created alice (admin)"
    for args, field in (
        (("users", "create", "alice"), "username"),
        (("users", "create", "bob", "--role", "superuser"), "role"),
        (("users", "create", "bad name!"), "username"),
    ):
        result = run_cli(*args, env=env)
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"cryoplan: error: {field}:")
        assert "Traceback" not in result.stderr
    short = run_cli("users", "create", "carol", env={**env, "CRYOPLAN_NEW_PASSWORD": "short"})
    assert short.returncode == 2 and "password" in short.stderr


@pytest.mark.slow
def test_bad_setting_is_named_on_one_line_and_nothing_starts(tmp_path):
    import os

    env = {**os.environ, "CRYOPLAN_DATA_DIR": str(tmp_path / "data"), "CRYOPLAN_NEW_PASSWORD": "first-admin-pw"}
    for name, value, args in (
        ("CRYOPLAN_PLAN_GRID_MM", "10", ("serve", "--port", "8999")),
        ("CRYOPLAN_UNCERTAINTY_SAMPLES", "many", ("users", "create", "alice")),
        ("CRYOPLAN_MAX_UPLOAD_MB", "-1", ("serve", "--port", "8999")),
    ):
        result = run_cli(*args, env={**env, name: value})
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"cryoplan: error: {name}:"), result.stderr
        assert repr(value) in result.stderr
    assert not (tmp_path / "data").exists()  # refused before the data folder or database was made
