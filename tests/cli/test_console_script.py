"""The installed `cryoplan` console script itself, in its own process, once per command module: bad input
exits 2 with one line on stderr naming the field, no traceback, nothing on stdout and nothing written.

Every other command-line test runs the same entry point (`cryoplan.cli.app.main`) in the test's process
(`support.cli`), which costs the command and not an interpreter start with the scientific imports; these
few prove that what a user runs behaves the same, imports and all. The `assess` module's real process is
`python -m cryoplan` in `tests/clinical/test_assess_cli.py::test_real_process_exit_codes`. The modules whose
imports take over 2.5 s to start are `slow`; their bad input is checked in process by the fast loop
(`tests/cli/test_batch.py`, `tests/planning/test_cli_planning.py`, `tests/service/test_setup.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.cases import case_document

from cryoplan.cli import COMMANDS

SCRIPT = Path(sys.executable).with_name("cryoplan")


def _bad_case(folder: Path) -> Path:
    """hcc_eligible with ECOG 7."""
    path = folder / "bad.yaml"
    path.write_text(yaml.safe_dump(case_document(patient__ecog=7)))
    return path


def _no_images(folder: Path) -> Path:
    path = folder / "case.yaml"
    path.write_text("schema_version: 1\ndiagnosis: {type: hcc}\n")
    return path


# Command module → (arguments, given the test's folder; the field the one line names; extra environment).
BAD_INPUT = {
    "batch": (lambda f: ["batch", _bad_case(f), "-o", f / "out", "--workers", "0"], "--workers", {}),
    "schema": (lambda f: ["schema", "plan-ish"], "NAME", {}),
    "imaging": (lambda f: ["inspect", f / "missing.nii.gz", "-o", f / "out"], "missing.nii.gz", {}),
    "planning": (
        lambda f: ["plan", _no_images(f), "-o", f / "out", "--freeze-minutes", "0"],
        "freeze_minutes",
        {},
    ),
    "thermal": (lambda f: ["isotherms", "--probe", "no-such-probe", "--grid-mm", "2"], "probe", {}),
    "service": (
        lambda f: ["users", "create", "alice"],
        "CRYOPLAN_UNCERTAINTY_SAMPLES",
        {"CRYOPLAN_NEW_PASSWORD": "first-admin-pw", "CRYOPLAN_UNCERTAINTY_SAMPLES": "many"},
    ),
}


SLOW = {"batch", "planning", "service"}  # each over 2.5 s on 2 cores, most of it the module's imports


def test_every_command_module_is_run_in_its_own_process():
    assert set(BAD_INPUT) | {"assess"} == set(COMMANDS.values())


@pytest.mark.parametrize(
    "module", [pytest.param(m, marks=[pytest.mark.slow] if m in SLOW else []) for m in sorted(BAD_INPUT)]
)
def test_the_console_script_refuses_bad_input_in_one_line_with_exit_2(module, tmp_path):
    arguments, field, extra = BAD_INPUT[module]
    env = {**os.environ, "CRYOPLAN_DATA_DIR": str(tmp_path / "data"), **extra}
    env.pop("CRYOPLAN_DATABASE_URL", None)
    done = subprocess.run(
        [str(SCRIPT), *map(str, arguments(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    # one line and nothing else: progress bars are drawn only on a terminal, so none leaves a blank line
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoplan: error: ") and field in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()
