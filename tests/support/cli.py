"""The command line run in the test's own process: argv set, `cryoplan.cli.app.main` called.

A command run this way costs what the command costs, not an interpreter start and the scientific imports
(1.5–2 s each); `tests/cli/test_console_script.py` runs the installed `cryoplan` script itself, once per
command module.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from cryoplan.cli.app import main


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``cryoplan ARGS``."""
    monkeypatch.setattr(sys, "argv", ["cryoplan", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


class Completed(NamedTuple):
    """A command's exit code and output, named as `subprocess.run(..., capture_output=True, text=True)`
    names them, so that one assertion reads the same for a command run either way."""

    returncode: int
    stdout: str
    stderr: str


class InProcess:
    """``cryoplan ARGS`` in this process, with what a separate process would not share undone afterwards.

    `capture` is pytest's `capfd`, so that output written to the file descriptors (by a C library) is seen
    as it would be from a subprocess. Restored after each call: the working directory and environment
    variables the call asks for, Numba's thread count (which the solver sets), and the probe library
    (`cryoplan.thermal.probes.PROBES`, which ``--probe-file`` adds to). A logging handler set up during the
    call on the captured streams (Dask's, when the call first imports it) is moved to the process's own
    streams, which outlive this test's capture.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capture):
        self.monkeypatch = monkeypatch
        self.capture = capture

    def __call__(self, *args: object, cwd: Path | str | None = None, env: dict[str, str | None] | None = None):
        self.capture.readouterr()  # what the test printed before is not the command's
        if "--probe-file" in map(str, args):
            importlib.import_module("cryoplan.thermal.probes")  # so that the library is saved before it grows
        probes = sys.modules.get("cryoplan.thermal.probes")
        library = dict(probes.PROBES) if probes is not None else None
        numba = sys.modules.get("numba")
        threads = numba.get_num_threads() if numba is not None else None
        with self.monkeypatch.context() as scoped:
            if cwd is not None:
                scoped.chdir(cwd)
            for name, value in (env or {}).items():
                if value is None:
                    scoped.delenv(name, raising=False)
                else:
                    scoped.setenv(name, value)
            captured = (sys.stdout, sys.stderr)
            try:
                code, out, err = run_main(scoped, self.capture, *args)
            finally:
                _release_streams(captured)
                numba = sys.modules.get("numba")
                if numba is not None:  # as it was, or Numba's default where the command first imported it
                    numba.set_num_threads(threads if threads is not None else numba.config.NUMBA_NUM_THREADS)
                if library is not None:  # in place: modules hold the dict itself
                    probes.PROBES.clear()
                    probes.PROBES.update(library)
        return Completed(code, out, err)


def _release_streams(captured: tuple) -> None:
    """Point the logging handlers that write to the `captured` streams at ``sys.__stdout__``/``__stderr__``."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in captured:
                handler.setStream(sys.__stdout__ if handler.stream is captured[0] else sys.__stderr__)
