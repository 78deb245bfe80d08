"""Settings, database setup and the service commands: WAL mode, migrations matching the models, users create."""

from __future__ import annotations

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


@pytest.fixture
def run_cli(cryoplan_cli, tmp_path):
    """``cryoplan ARGS`` in this process, with the data folder in `tmp_path`, the first admin's password set,
    no database URL and the variables `env` gives; `tests/cli/test_console_script.py` runs the installed
    script."""
    base = {"CRYOPLAN_DATA_DIR": str(tmp_path / "data"), "CRYOPLAN_NEW_PASSWORD": "first-admin-pw"}

    def run(*args: str, env: dict | None = None):
        return cryoplan_cli(*args, env={"CRYOPLAN_DATABASE_URL": None, **base, **(env or {})})

    return run


def test_users_create_and_its_bad_input(run_cli):
    created = run_cli("users", "create", "alice", "--role", "admin")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created alice (admin)"
    for args, field in (
        (("users", "create", "alice"), "username"),
        (("users", "create", "bob", "--role", "superuser"), "role"),
        (("users", "create", "bad name!"), "username"),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"cryoplan: error: {field}:")
        assert "Traceback" not in result.stderr
    short = run_cli("users", "create", "carol", env={"CRYOPLAN_NEW_PASSWORD": "short"})
    assert short.returncode == 2 and "password" in short.stderr


def test_bad_setting_is_named_on_one_line_and_nothing_starts(run_cli, tmp_path):
    for name, value, args in (
        ("CRYOPLAN_PLAN_GRID_MM", "10", ("serve", "--port", "8999")),
        ("CRYOPLAN_UNCERTAINTY_SAMPLES", "many", ("users", "create", "alice")),
        ("CRYOPLAN_MAX_UPLOAD_MB", "-1", ("serve", "--port", "8999")),
    ):
        result = run_cli(*args, env={name: value})
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"cryoplan: error: {name}:"), result.stderr
        assert repr(value) in result.stderr
    assert not (tmp_path / "data").exists()  # refused before the data folder or database was made
