"""Measurements every benchmark script reports beside its own figures.

- `copy_bandwidth_gb_s`: the machine's memory bandwidth as one large `numpy.copyto` achieves it, counting
  bytes read plus bytes written (the STREAM convention, McCalpin 1995): the ceiling a memory-bound solver
  is judged against.
- `reset_peak_memory` / `peak_memory_bytes`: the process's peak resident memory (Linux VmHWM), resettable
  so that one script can measure several problems one after another.
- `peer_stencil_s`: the wall time of a minimal parallel Numba stencil, the yardstick the engine's times are
  divided by, so that figures measured on a busy or a different machine compare.
- `markdown_table`: the printed table, ready to paste into the docs.

References
----------
J. D. McCalpin, Memory bandwidth and machine balance in current high performance computers, IEEE TCCA
Newsletter, December 1995 (STREAM; its copy kernel counts bytes read plus bytes written).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from numba import njit, prange

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


@njit(parallel=True, cache=True)
def _peer_sweep(src, dst, c):
    """One sweep of the peer stencil: dst = src + c ∇²src over the interior (float32, 7 points)."""
    n0, n1, n2 = src.shape
    for i in prange(1, n0 - 1):
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                dst[i, j, k] = src[i, j, k] + c * (
                    src[i - 1, j, k]
                    + src[i + 1, j, k]
                    + src[i, j - 1, k]
                    + src[i, j + 1, k]
                    + src[i, j, k - 1]
                    + src[i, j, k + 1]
                    - np.float32(6.0) * src[i, j, k]
                )


def peer_stencil_s(updates: float = 1e9, edge: int = 120) -> float:
    """Wall time of a minimal parallel Numba 7-point float32 stencil doing `updates` voxel updates on an
    `edge`³ grid (compiled before timing). The engine's times divided by it are ratios that hold across
    machines and loads, since both run in the same process on the same cores."""
    a = np.random.default_rng(0).random((edge,) * 3, dtype=np.float32)
    b = a.copy()
    _peer_sweep(a, b, np.float32(0.1))
    sweeps = max(1, round(updates / (edge - 2) ** 3))
    start = time.perf_counter()
    for _ in range(sweeps // 2):
        _peer_sweep(a, b, np.float32(0.1))
        _peer_sweep(b, a, np.float32(0.1))
    if sweeps % 2:
        _peer_sweep(a, b, np.float32(0.1))
    return time.perf_counter() - start
