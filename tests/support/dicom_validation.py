"""dciodvfy (dicom3tools) as a test oracle: the errors it reports for a DICOM file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy prints for `path`; skips when it is not installed (fails under CI=true)."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        reason = "dciodvfy not installed (Debian package dicom3tools)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]
