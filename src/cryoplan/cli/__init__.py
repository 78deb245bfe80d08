"""Command-line interface. Each module registers its commands on `cryoplan.cli.app.app`."""

from cryoplan.cli import assess, batch, imaging, planning, schema, service, thermal  # noqa: F401  (registers commands)
from cryoplan.cli.app import app, main

__all__ = ["app", "main"]
