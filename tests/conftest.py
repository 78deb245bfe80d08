"""Shared test fixtures: where the real imaging data lives, and how its absence is handled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The real imaging data: $CRYOPLAN_TEST_DATA, else ../shared/data beside the checkout."""
    configured = os.environ.get("CRYOPLAN_TEST_DATA")
    path = Path(configured) if configured else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips when absent, but fails under CI=true where the data must be present."""
    path = shared_data_dir()
    if path is None:
        reason = "real imaging data not found (set CRYOPLAN_TEST_DATA or place it at ../shared/data)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def cryoplan_cli(monkeypatch, capfd):
    """Run ``cryoplan ARGS`` in this process: ``cryoplan_cli(*args, cwd=None, env=None)`` gives a
    `support.cli.Completed` (returncode, stdout, stderr), as `subprocess.run` would."""
    from support.cli import InProcess

    return InProcess(monkeypatch, capfd)
