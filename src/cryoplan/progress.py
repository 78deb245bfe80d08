"""The progress callback every long-running function of the package accepts.

A function that takes ``progress`` calls ``progress(label, fraction)``: a string `label` opens a new
stage, ``None`` reports the fraction (0 to 1) done within the current one. The CLI feeds it to a rich
progress bar; the service records it with the job.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str | None, float], None]
