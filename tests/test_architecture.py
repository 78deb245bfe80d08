"""The package's shape: dependencies point down the pipeline, and every import stands at the top of its module.

The layer contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is checked here through
import-linter, which reads every import statement, inside functions too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cryoplan"
ROOT = PACKAGE.parents[1]

# Imports allowed inside functions: heavy libraries that most callers never need (PDF rendering, the browser,
# the peer solver, the web server, a Dask cluster).
DEFERRED_EXTERNAL = {"weasyprint", "playwright", "fipy", "uvicorn", "distributed"}
# The one module of the package imported inside a function: the service's job work, loaded by the Dask
# workers only, so that the web server never loads the planner and the report writer.
DEFERRED_INTERNAL = {"cryoplan.service.worker"}


def test_layer_contract_is_kept():
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--config", "pyproject.toml"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[run.stdout.find("Broken contracts") :] or run.stderr
    # Every declared contract was checked, none skipped by a configuration import-linter did not read.
    declared = len(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])
    assert re.search(rf"Contracts: {declared} kept, 0 broken", run.stdout), run.stdout


def test_every_module_of_the_package_sits_in_one_layer():
    """A top-level module or package left out of the layers would escape the contract unnoticed."""
    (contract,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    placed = [name.strip() for layer in contract["layers"] for name in re.split(r"[|:]", layer)]
    modules = sorted(
        f"cryoplan.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__")) or (path / "__init__.py").exists()
    )
    assert sorted(placed) == modules


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
                if name.split(".")[0] not in DEFERRED_EXTERNAL and name not in DEFERRED_INTERNAL:
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno} {name}")
    return found


# Alembic's env and migrations follow Alembic's own layout.
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "alembic" not in path.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_stand_at_the_top_of_the_module(path):
    assert _deferred_imports(path) == []
