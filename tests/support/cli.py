"""The command line run in the test's own process: argv set, `cryoplan.cli.app.main` called."""

from __future__ import annotations

import sys

import pytest

from cryoplan.cli.app import main


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``cryoplan ARGS``."""
    monkeypatch.setattr(sys, "argv", ["cryoplan", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err
