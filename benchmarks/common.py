"""Measurements every benchmark script reports beside its own figures.

- `copy_bandwidth_gb_s`: the machine's memory bandwidth as one large `numpy.copyto` achieves it, counting
  bytes read plus bytes written (physics.md §6): the ceiling a memory-bound solver is judged against.
- `reset_peak_memory` / `peak_memory_bytes`: the process's peak resident memory (Linux VmHWM), resettable
  so that one script can measure several problems one after another.
- `markdown_table`: the printed table, ready to paste into the README.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def copy_bandwidth_gb_s(nbytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Best-of-`repeats` bandwidth of one large single-threaded `numpy.copyto`, in GB/s (1e9 bytes).

    Each copy reads `nbytes` and writes `nbytes`, so 2 × `nbytes` bytes are counted per copy. The arrays are
    far larger than any cache, and both are written once before timing so page faults are not timed.
    """
    source = np.ones(nbytes // 8, dtype=np.float64)
    target = np.zeros_like(source)
    best_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best_s = min(best_s, time.perf_counter() - start)
    return 2 * source.nbytes / best_s / 1e9


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (writes 5 to clear_refs).

    Raises
    ------
    RuntimeError
        Where the kernel offers no resettable peak (not Linux ≥ 4.0): a peak read afterwards would include
        earlier work and be wrong.
    """
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError as error:
        raise RuntimeError(f"cannot reset the peak-memory mark through {_PROC_CLEAR_REFS}: {error}") from error


def peak_memory_bytes() -> int:
    """Peak resident memory of this process since start or the last `reset_peak_memory` (VmHWM), in bytes."""
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM line in {_PROC_STATUS}")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-markdown table of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
