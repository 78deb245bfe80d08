"""Two-phase Neumann problem (Carslaw & Jaeger 1959, §11.2) through the 3-D kernel on a one-voxel-wide column along S
(the kernel's inner axis, so the loop stays long)."""

from __future__ import annotations

import numpy as np
import pytest
from support.validation import random_frozen_tissue

from cryoplan.thermal import Grid, analytic, parse_protocol, simulate


def run_neumann(tissue, t_p, t_i, spacing_mm, seconds, length_mm):
    n = int(round(length_mm / spacing_mm))
    grid = Grid(origin_mm=np.zeros(3), spacing_mm=spacing_mm, shape=(1, 1, n))
    face = np.zeros(grid.shape, dtype=bool)
    face[0, 0, 0] = True  # voxel 0 is centred on x = 0, the face held at T_p
    result = simulate(
        grid,
        [],
        parse_protocol(f"passive_thaw:{seconds / 60.0}"),
        tissues=tissue,
        initial_temp_c=t_i,
        dirichlet_boundary=False,
        fixed_temperature=(face, t_p),
    )
    front_mm = spacing_mm * (0.5 + float(result.ice_fraction[0, 0, 1:].sum()))
    x_mm = spacing_mm * np.arange(n)
    profile = result.final_temperature_c[0, 0, :].astype(np.float64)
    return front_mm, x_mm, profile


def crossing_mm(x_mm, profile, temperature_c):
    n = int(np.flatnonzero(profile > temperature_c)[0])
    return x_mm[n - 1] + (temperature_c - profile[n - 1]) / (profile[n] - profile[n - 1]) * (x_mm[n] - x_mm[n - 1])


def drawn_problem(rng, draw):
    for _ in range(draw):  # a different draw per case, from the test's own seeded stream
        rng.uniform()
    tissue = random_frozen_tissue(rng, single_temperature=True)
    t_p, t_i = float(rng.uniform(-160.0, -100.0)), float(rng.uniform(30.0, 40.0))
    seconds = float(rng.uniform(300.0, 600.0))
    exact = analytic.NeumannSolution(
        tissue.conductivity_frozen_w_mk,
        tissue.heat_capacity_frozen_j_m3k,
        tissue.conductivity_unfrozen_w_mk,
        tissue.heat_capacity_unfrozen_j_m3k,
        tissue.latent_heat_j_m3,
        tissue.liquidus_c,
        t_p,
        t_i,
    )
    length_mm = exact.front_m(seconds) * 1e3 + 8e3 * np.sqrt(exact.alpha_u * seconds) + 5.0
    return tissue, t_p, t_i, seconds, exact, length_mm


@pytest.mark.parametrize("spacing_mm, tolerance_mm", [(0.25, 0.25), (1.0, 0.6)])
@pytest.mark.parametrize("draw", range(3))
def test_front_matches_neumann(rng, draw, spacing_mm, tolerance_mm):
    tissue, t_p, t_i, seconds, exact, length_mm = drawn_problem(rng, draw)
    front_mm, _, _ = run_neumann(tissue, t_p, t_i, spacing_mm, seconds, length_mm)
    assert front_mm == pytest.approx(exact.front_m(seconds) * 1e3, abs=tolerance_mm)


@pytest.mark.parametrize("spacing_mm, tolerance_mm", [(0.25, 0.25), (1.0, 0.6)])
@pytest.mark.parametrize("draw", range(3))
def test_isotherms_match_neumann(rng, draw, spacing_mm, tolerance_mm):
    tissue, t_p, t_i, seconds, exact, length_mm = drawn_problem(rng, draw)
    _, x_mm, profile = run_neumann(tissue, t_p, t_i, spacing_mm, seconds, length_mm)
    for isotherm in (-20.0, -40.0):
        expected = exact.isotherm_position_m(isotherm, seconds) * 1e3
        assert crossing_mm(x_mm, profile, isotherm) == pytest.approx(expected, abs=tolerance_mm)


def test_check_value_of_physics_md():
    from cryoplan.thermal import TISSUES

    liver = TISSUES["liver"]
    exact = analytic.NeumannSolution(
        liver.conductivity_frozen_w_mk,
        liver.heat_capacity_frozen_j_m3k,
        liver.conductivity_unfrozen_w_mk,
        liver.heat_capacity_unfrozen_j_m3k,
        liver.latent_heat_j_m3,
        -1.0,
        -140.0,
        37.0,
    )
    assert exact.front_m(600.0) * 1e3 == pytest.approx(26.1, abs=0.05)
