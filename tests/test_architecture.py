"""The package's shape: dependencies point down the pipeline, and every import stands at the top of its module.

The layer contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is checked here through
import-linter, which reads every import statement, inside functions too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cryoplan"
ROOT = PACKAGE.parents[1]

# Imports allowed inside functions: heavy libraries that most callers never need (PDF rendering, the browser,
# the peer solver, the web server, a Dask cluster).
DEFERRED_EXTERNAL = {"weasyprint", "playwright", "fipy", "uvicorn", "distributed"}


def test_layer_contract_is_kept():
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--config", "pyproject.toml"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[run.stdout.find("Broken contracts") :] or run.stderr


def _deferred_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom):
                names = ["." * inner.level + (inner.module or "")]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in DEFERRED_EXTERNAL:
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno} {name}")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_stand_at_the_top_of_the_module(path):
    if "alembic" in path.parts:  # Alembic's env and migrations follow Alembic's own layout
        pytest.skip("Alembic scripts")
    assert _deferred_imports(path) == []
