"""Command-line interface. Each module registers its commands on `cryoplan.cli.app.app`; `main` loads only
the module of the command asked for, `load_commands()` every one."""

from cryoplan.cli.app import COMMANDS, app, load_commands, main

__all__ = ["COMMANDS", "app", "load_commands", "main"]
