"""Commands of the service area."""

from cryoplan.cli.app import app  # noqa: F401
