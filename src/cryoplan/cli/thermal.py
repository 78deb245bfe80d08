"""Commands of the thermal area."""

from cryoplan.cli.app import app  # noqa: F401
