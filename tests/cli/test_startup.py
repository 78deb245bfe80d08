"""The command line loads only what the command asked for needs."""

from __future__ import annotations

import json
import subprocess
import sys

import typer

from cryoplan.cli import COMMANDS, app, load_commands

HEAVY = ("numba", "scipy", "SimpleITK", "highdicom", "matplotlib", "fastapi", "distributed", "weasyprint")


def _modules_after(argv: list[str]) -> list[str]:
    code = (
        "import json, sys\n"
        "from cryoplan.cli.app import load_commands\n"
        f"load_commands({argv!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(run.stdout)


def test_version_imports_no_heavy_library():
    loaded = _modules_after(["--version"])
    assert [name for name in HEAVY if name in loaded] == []


def test_a_command_loads_its_own_module_only():
    loaded = _modules_after(["schema", "case"])
    assert "SimpleITK" not in loaded and "fastapi" not in loaded


def test_every_command_is_registered_by_the_module_named_for_it():
    load_commands()
    group = typer.main.get_command(app)
    registered = set(group.list_commands(group.context_class(group, info_name="cryoplan")))
    assert registered == set(COMMANDS)
