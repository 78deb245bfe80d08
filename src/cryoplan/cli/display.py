"""The command line's progress display on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, ProgressColumn

#: Where progress and messages for the person at the terminal go (stdout carries the documents).
stderr = Console(stderr=True)


def progress_display(*columns: str | ProgressColumn) -> Progress:
    """A progress display of `columns` on stderr that vanishes when done, drawn only on a terminal: on a pipe
    or a file rich would leave a blank line before a refused command's one line."""
    return Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal)
