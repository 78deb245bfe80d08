"""Commands of the imaging area."""

from cryoplan.cli.app import app  # noqa: F401
