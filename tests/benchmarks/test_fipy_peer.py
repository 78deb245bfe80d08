"""The FiPy peer of the thermal benchmark solves the same physics: its planar freezing front against the
exact two-phase Neumann solution (`cryoplan.thermal.analytic`), for parameters drawn at random."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

from cryoplan.thermal import TISSUES, Grid, analytic, parse_protocol

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def fipy_peer():
    """benchmarks/fipy_peer.py, imported the way the benchmark scripts import it (their folder on the path)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("fipy_peer")
    finally:
        sys.path.remove(str(BENCHMARKS))


def crossing_mm(x_mm: np.ndarray, temperature_c: np.ndarray, level_c: float) -> float:
    """Where a profile rising with x first crosses `level_c`, by linear interpolation."""
    n = int(np.argmax(temperature_c > level_c))
    assert n > 0, f"the profile never crosses {level_c} °C"
    fraction = (level_c - temperature_c[n - 1]) / (temperature_c[n] - temperature_c[n - 1])
    return float(x_mm[n - 1] + fraction * (x_mm[n] - x_mm[n - 1]))


def test_peer_planar_front_matches_neumann(fipy_peer):
    rng = np.random.default_rng(20261124)
    tissue = TISSUES["liver"].replace(
        conductivity_frozen_w_mk=rng.uniform(1.5, 2.5), conductivity_unfrozen_w_mk=rng.uniform(0.4, 0.6),
        specific_heat_frozen_j_kgk=rng.uniform(1700, 2100), specific_heat_unfrozen_j_kgk=rng.uniform(3400, 3800),
        latent_heat_j_m3=rng.uniform(150e6, 300e6), perfusion_1_s=0.0, metabolic_heat_w_m3=0.0,
        solidus_c=(t_m := rng.uniform(-2.0, 0.0)), liquidus_c=t_m)
    t_p, t_i, seconds = rng.uniform(-160.0, -100.0), rng.uniform(30.0, 40.0), 600.0
    spacing_mm, n = 1.0, 80
    face = np.zeros((n, 1, 1), bool)
    face[0] = True  # the voxel at x = 0 is the face held at T_p
    result = fipy_peer.solve(
        Grid(np.zeros(3), spacing_mm, (n, 1, 1)), [], parse_protocol("freeze:10"), time_step_s=10.0,
        tissues=tissue, initial_temp_c=t_i, fixed_temperature=(face, t_p), dirichlet_boundary=False)
    exact = analytic.NeumannSolution(
        tissue.conductivity_frozen_w_mk, tissue.heat_capacity_frozen_j_m3k, tissue.conductivity_unfrozen_w_mk,
        tissue.heat_capacity_unfrozen_j_m3k, tissue.latent_heat_j_m3, t_m, t_p, t_i)
    x_mm = np.arange(n) * spacing_mm
    profile = result.final_temperature_c[:, 0, 0]
    assert result.unconverged_steps == 0
    for level in (-40.0, -20.0):
        assert crossing_mm(x_mm, profile, level) == pytest.approx(exact.isotherm_position_m(level, seconds) * 1e3, abs=0.6)
    # Ahead of the front, in unfrozen tissue: the +10 °C isotherm.
    ahead_m = brentq(lambda x: float(exact.temperature_c(x, seconds)) - 10.0, exact.front_m(seconds), 0.2)
    assert crossing_mm(x_mm, profile, 10.0) == pytest.approx(ahead_m * 1e3, abs=0.6)
