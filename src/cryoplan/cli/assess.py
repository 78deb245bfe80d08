"""Commands of the assess area."""

from cryoplan.cli.app import app  # noqa: F401
