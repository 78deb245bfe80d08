"""Run every benchmark script in this folder, one after another, each in its own Python process.

A script is a file here with a ``if __name__ == "__main__":`` guard; helper modules (common.py, the FiPy
peer) have none and are skipped. Each script prints its own table; this runner prints first what a table in
docs/benchmarks.md records beside it (the date, the cores and the CPU model, the Numba threads), a heading per
script, and exits non-zero if any script failed. `make bench` calls it; ``run_all.py thermal time_steps`` runs
only the scripts named (without ``.py``).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import numba

HERE = Path(__file__).resolve().parent


def benchmark_scripts() -> list[Path]:
    """The runnable benchmark scripts in this folder, in name order."""
    return [
        path
        for path in sorted(HERE.glob("*.py"))
        if path.name != Path(__file__).name and '__name__ == "__main__"' in path.read_text(encoding="utf-8")
    ]


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    chosen = sys.argv[1:] if argv is None else argv
    scripts = benchmark_scripts()
    unknown = sorted(set(chosen) - {script.stem for script in scripts})
    if unknown:
        print(f"no benchmark script named {', '.join(unknown)} in {HERE}", file=sys.stderr)
        return 2
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {len(os.sched_getaffinity(0))} cores (nproc), {cpu_model()}")
    print(f"numba threads: {numba.get_num_threads()}, Python {platform.python_version()}, numba {numba.__version__}")
    failed = []
    for script in scripts:
        if chosen and script.stem not in chosen:
            continue
        print(f"\n## {script.name}\n", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
