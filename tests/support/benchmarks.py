"""The benchmark scripts' modules, for the tests that check them: imported from their file by name, without
putting benchmarks/ on the import path (where its module names could shadow others)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """benchmarks/`name`.py as a module, imported once (later calls return the same module)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"no benchmark module {name}"
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: its dataclasses look their module up by name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
