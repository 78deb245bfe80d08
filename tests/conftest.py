"""Shared test fixtures: where the real imaging data lives, how its absence is handled, and where the
isotherm charts are cached."""

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


@pytest.fixture(scope="session", autouse=True)
def chart_cache(tmp_path_factory):
    """The isotherm charts of the whole session in a folder of its own, not in the user's home: every test,
    commands run in its process included, writes and reads the charts there (set before the first chart,
    which is then also kept in memory for the session)."""
    folder = tmp_path_factory.mktemp("chart-cache")
    previous = os.environ.get("CRYOPLAN_CACHE_DIR")
    os.environ["CRYOPLAN_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("CRYOPLAN_CACHE_DIR", None)
    else:
        os.environ["CRYOPLAN_CACHE_DIR"] = previous


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
