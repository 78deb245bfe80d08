"""Commands of the service area: `cryoplan serve` and `cryoplan users create`."""

from __future__ import annotations

import getpass
import os

import typer

from cryoplan.cli.app import app
from cryoplan.errors import InputError
from cryoplan.service import db as database
from cryoplan.service import store
from cryoplan.service.app import create_app
from cryoplan.service.settings import ServiceSettings

users = typer.Typer(help="Manage the users of the case review service.", no_args_is_help=True)
app.add_typer(users, name="users")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Run the case review web service (settings from CRYOPLAN_* environment variables, see README)."""
    import uvicorn  # the web server: only this command needs it

    settings = ServiceSettings()
    # X-Forwarded-For/-Proto are believed only from the proxies named in the settings: by default none,
    # so that no client can choose the address that login throttling and the audit trail see.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


@users.command("create")
def users_create(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("admin", help="admin, coordinator, clinician or viewer."),
    full_name: str = typer.Option("", help="Name shown in the audit trail."),
) -> None:
    """Create a user (the first admin, typically); the password is read from CRYOPLAN_NEW_PASSWORD or asked."""
    password = os.environ.get("CRYOPLAN_NEW_PASSWORD") or getpass.getpass("Password: ")
    if not password:
        raise InputError("password", "a password (CRYOPLAN_NEW_PASSWORD or typed)")
    settings = ServiceSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = database.make_engine(settings.resolved_database_url())
    database.migrate(engine)
    with database.session_factory(engine)() as db:
        user = store.create_user(db, username, password, role, full_name)
        db.commit()
        typer.echo(f"created {user.username} ({user.role})")
    engine.dispose()
