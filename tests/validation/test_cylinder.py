"""Cross-section problems around a long probe (steady perfused cylinder, cylindrical line sink) through the
3-D kernel on a grid one voxel thick along L (the kernel's outer axis, so the inner loop stays long), where a
probe along L is an infinite line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.validation import random_frozen_tissue

from cryoplan.thermal import Grid, ProbePlacement, analytic, parse_protocol, simulate

SPACING_MM = 0.5
PROBE_ID = "17g-sphere"  # its physical radius, 0.735 mm, is the r_p of the exact solutions
DIRECTIONS = [(0.0, math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)]


def section(half_width_mm: float) -> Grid:
    n = 2 * int(math.ceil(half_width_mm / SPACING_MM)) + 1
    return Grid(origin_mm=[0.0] + [-(n // 2) * SPACING_MM] * 2, spacing_mm=SPACING_MM, shape=(1, n, n))


def ice_radius_mm(result) -> float:
    """Radius of the circle with the frozen area (ice fraction summed)."""
    return math.sqrt(float(result.ice_fraction.sum()) * SPACING_MM**2 / math.pi)


def mean_isotherm_radius_mm(result, temperature_c: float) -> float:
    return float(np.mean([result.isotherm_distance_mm(temperature_c, [0, 0, 0], d) for d in DIRECTIONS]))


@pytest.mark.parametrize("mushy", [False, True])
def test_steady_perfused_cylinder(rng, mushy):
    # Pseudo-time: the steady state does not depend on the latent heat, so a small one (5 MJ/m³) reaches
    # it sooner; perfusion is drawn high (physiological liver blood flow ≈ 1.7e-2 1/s).
    tissue = random_frozen_tissue(rng, single_temperature=not mushy, perfusion_1_s=float(rng.uniform(1.5e-2, 2.5e-2)))
    tissue = tissue.replace(latent_heat_j_m3=5e6)
    t_p = float(rng.uniform(-140.0, -100.0))
    r_p = 0.735e-3
    expected_mm = analytic.perfused_cylinder_radius_m(tissue, r_p, t_p) * 1e3
    grid = section(expected_mm + 8.0 * math.sqrt(tissue.conductivity_unfrozen_w_mk / tissue.perfusion_w_m3k) * 1e3)
    probe = ProbePlacement(PROBE_ID, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    result = simulate(grid, [probe], parse_protocol("freeze:20"), tissues=tissue, probe_surface_temp_c=t_p)
    radius_mm = ice_radius_mm(result) if not mushy else mean_isotherm_radius_mm(result, tissue.liquidus_c)
    assert radius_mm == pytest.approx(expected_mm, abs=0.5)
    if mushy:
        for isotherm in (-20.0, -40.0):
            exact = analytic.perfused_cylinder_isotherm_m(tissue, r_p, t_p, isotherm) * 1e3
            assert mean_isotherm_radius_mm(result, isotherm) == pytest.approx(exact, abs=0.5)


def test_physics_md_check_value_of_the_cylinder():
    from cryoplan.thermal import TISSUES

    tissue = TISSUES["liver"].replace(perfusion_1_s=1.67e-2, solidus_c=-1.0, liquidus_c=-1.0)
    assert analytic.perfused_cylinder_radius_m(tissue, 0.735e-3, -140.0) * 1e3 == pytest.approx(13.2, abs=0.05)


def test_line_sink(rng):
    tissue = random_frozen_tissue(rng, single_temperature=True)
    q_w_m = float(rng.uniform(250.0, 500.0))
    seconds = float(rng.uniform(300.0, 600.0))
    t_i = float(rng.uniform(30.0, 40.0))
    exact = analytic.LineSinkSolution(
        q_w_m,
        tissue.conductivity_frozen_w_mk,
        tissue.heat_capacity_frozen_j_m3k,
        tissue.conductivity_unfrozen_w_mk,
        tissue.heat_capacity_unfrozen_j_m3k,
        tissue.latent_heat_j_m3,
        tissue.liquidus_c,
        t_i,
    )
    front_mm = exact.front_m(seconds) * 1e3
    grid = section(front_mm + 8e3 * math.sqrt(exact.alpha_u * seconds) + 3.0)
    probe = ProbePlacement(PROBE_ID, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    result = simulate(
        grid,
        [probe],
        parse_protocol(f"freeze:{seconds / 60.0}"),
        tissues=tissue,
        initial_temp_c=t_i,
        line_power_w_m=[q_w_m],
    )
    assert ice_radius_mm(result) == pytest.approx(front_mm, abs=0.5)
    isotherm = float(rng.uniform(-15.0, -5.0))
    assert exact.isotherm_radius_m(isotherm, seconds) * 1e3 > 3.0  # outside the probe kernel
    assert mean_isotherm_radius_mm(result, isotherm) == pytest.approx(
        exact.isotherm_radius_m(isotherm, seconds) * 1e3, abs=0.5
    )
