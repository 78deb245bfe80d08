"""Fixtures of the physics validations."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name, so each test draws its own reproducible parameters."""
    return np.random.default_rng(int.from_bytes(request.node.originalname.encode()[-8:].rjust(8, b"\0"), "little"))
