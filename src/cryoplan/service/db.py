"""The database connection: engine creation (SQLite in WAL mode, or PostgreSQL), Alembic migrations, sessions."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """Create the engine for `url`; SQLite files get WAL journaling, foreign keys and a busy timeout, and
    are readable by their owner only (SQLite gives its journal files the database file's permissions)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        database = engine.url.database

        @event.listens_for(engine, "do_connect")
        def _private_file(_dialect: object, _record: object, _args: object, _params: object) -> None:
            # Before SQLite opens (and so creates) the file: create it for the owner alone.
            if database and database != ":memory:" and Path(database).parent.is_dir():
                os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
                os.chmod(database, 0o600)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=40)


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (the migrations ship inside the package)."""
    ini = Path(str(resources.files("cryoplan.service") / "alembic.ini"))
    config = Config(str(ini))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A factory of sessions whose objects stay readable after commit, and which remove the files of rows
    that are rolled back (`discard_on_rollback`)."""
    factory = sessionmaker(engine, expire_on_commit=False)

    @event.listens_for(factory, "after_commit")
    def _keep_files(session: Session) -> None:
        session.info.pop(_DISCARD_ON_ROLLBACK, None)

    @event.listens_for(factory, "after_rollback")
    def _discard_files(session: Session) -> None:
        for path in session.info.pop(_DISCARD_ON_ROLLBACK, []):
            path.unlink(missing_ok=True)

    return factory


_DISCARD_ON_ROLLBACK = "cryoplan_discard_on_rollback"


def discard_on_rollback(db: Session, path: Path) -> None:
    """Tie a stored file to the rows of `db`'s transaction: if it is rolled back (a failed insert, a failed
    commit, an error later in the request), the file is removed, so nothing stored outlives its row."""
    db.info.setdefault(_DISCARD_ON_ROLLBACK, []).append(path)
