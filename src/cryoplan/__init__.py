"""cryoplan: eligibility, planning, simulation and verification of liver-tumour cryoablation.

The public functions are importable from the package itself and load their subpackage on first use, so that
``import cryoplan`` (and ``cryoplan --version``) stays light:

>>> import cryoplan
>>> sorted(cryoplan.__all__)
['Case', 'PlanSettings', 'assess', 'load_case', 'plan_case', 'simulate', 'verify_margins']
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("cryoplan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Public name → the module that defines it.
_PUBLIC = {
    "Case": "cryoplan.case",
    "load_case": "cryoplan.case",
    "assess": "cryoplan.clinical",
    "simulate": "cryoplan.thermal",
    "plan_case": "cryoplan.planning",
    "PlanSettings": "cryoplan.planning",
    "verify_margins": "cryoplan.planning",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Import a public name's subpackage when the name is first used (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'cryoplan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
