"""Commands of the planning area."""

from cryoplan.cli.app import app  # noqa: F401
