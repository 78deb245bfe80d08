"""Run every benchmark script in this folder, one after another, each in its own Python process.

A script is a file here with a ``if __name__ == "__main__":`` guard; helper modules (common.py, the FiPy
peer) have none and are skipped. Each script prints its own table; this runner adds nothing but a heading
and exits non-zero if any script failed. `make bench` calls it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmark_scripts() -> list[Path]:
    """The runnable benchmark scripts in this folder, in name order."""
    return [
        path
        for path in sorted(HERE.glob("*.py"))
        if path.name != Path(__file__).name and '__name__ == "__main__"' in path.read_text(encoding="utf-8")
    ]


def main() -> int:
    failed = []
    for script in benchmark_scripts():
        print(f"\n## {script.name}\n", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
