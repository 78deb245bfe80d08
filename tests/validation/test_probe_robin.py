"""The probe's Robin cooling (cryogen temperature and film coefficient in series with the sub-grid kernel)
against the exact steady state around a long probe in perfused tissue, on a cross-section one voxel thick."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.validation import random_frozen_tissue

from cryoplan.thermal import Grid, ProbePlacement, analytic, parse_protocol, simulate
from cryoplan.thermal import probes as probe_library

SPACING_MM = 0.5
PROBE_ID = "17g-sphere"  # physical radius 0.735 mm
DIRECTIONS = [(0.0, math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)]


@pytest.fixture
def film(monkeypatch):
    """Set the argon family's heat-transfer coefficient for one test."""

    def set_h(h_w_m2k: float) -> None:
        family = probe_library.FAMILIES["argon"].model_copy(update={"heat_transfer_w_m2k": h_w_m2k})
        monkeypatch.setitem(probe_library.FAMILIES, "argon", family)

    return set_h


def section(half_width_mm: float) -> Grid:
    n = 2 * int(math.ceil(half_width_mm / SPACING_MM)) + 1
    return Grid(origin_mm=[0.0] + [-(n // 2) * SPACING_MM] * 2, spacing_mm=SPACING_MM, shape=(1, n, n))


@pytest.mark.parametrize("h_w_m2k", [800.0, 3000.0, 20000.0])
def test_steady_radius_with_a_film_matches_the_exact_solution(rng, film, h_w_m2k):
    tissue = random_frozen_tissue(rng, single_temperature=True, perfusion_1_s=float(rng.uniform(1.5e-2, 2.5e-2)))
    tissue = tissue.replace(latent_heat_j_m3=5e6)  # pseudo-time: the steady state does not depend on it
    film(h_w_m2k)
    cryogen = probe_library.FAMILIES["argon"].cryogen_temperature_c
    expected_m, surface_c = analytic.robin_cylinder_radius_m(tissue, 0.735e-3, cryogen, h_w_m2k)
    assert cryogen < surface_c < tissue.liquidus_c  # the surface warms under the heat load
    grid = section(expected_m * 1e3 + 8.0 * math.sqrt(tissue.conductivity_unfrozen_w_mk / tissue.perfusion_w_m3k) * 1e3)
    probe = ProbePlacement(PROBE_ID, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    result = simulate(grid, [probe], parse_protocol("freeze:20"), tissues=tissue)
    radius_mm = math.sqrt(float(result.ice_fraction.sum()) * SPACING_MM**2 / math.pi)
    assert radius_mm == pytest.approx(expected_m * 1e3, abs=0.5)


def test_exact_film_solution_tends_to_the_fixed_surface_one():
    """An infinite film coefficient is a surface held at the cryogen temperature; a weak film freezes less."""
    tissue = random_frozen_tissue(np.random.default_rng(3), single_temperature=True, perfusion_1_s=1.7e-2)
    fixed = analytic.perfused_cylinder_radius_m(tissue, 0.735e-3, -185.8)
    strong, surface = analytic.robin_cylinder_radius_m(tissue, 0.735e-3, -185.8, 1e9)
    assert strong == pytest.approx(fixed, rel=1e-6) and surface == pytest.approx(-185.8, abs=1e-3)
    weak, _ = analytic.robin_cylinder_radius_m(tissue, 0.735e-3, -185.8, 500.0)
    assert weak < strong
