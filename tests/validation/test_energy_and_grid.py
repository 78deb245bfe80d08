"""Energy balance, grid convergence and rotation invariance of the 3-D solver with calibrated probes."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.thermal import TISSUES, Grid, ProbePlacement, Vessel, parse_protocol, simulate


def perpendicular_directions(axis):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    return [np.cos(a) * u + np.sin(a) * v for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]


def isotherm_profile(result, placement, temperatures=(0.0, -20.0, -40.0)):
    """Mean radius at the middle of the active zone and reach beyond the tip, per isotherm (mm)."""
    middle = np.mean(placement.active_segment_mm(), axis=0)
    out = {}
    for t in temperatures:
        radius = np.mean(
            [
                result.isotherm_distance_mm(t, middle, d, which="min")
                for d in perpendicular_directions(placement.direction)
            ]
        )
        reach = result.isotherm_distance_mm(t, middle, placement.direction, which="min")
        out[t] = (float(radius), float(reach))
    return out


def test_energy_balance_with_perfusion_vessel_and_thaws(rng):
    liver = TISSUES["liver"].replace(
        latent_heat_j_m3=float(rng.uniform(150e6, 300e6)), perfusion_1_s=float(rng.uniform(2e-4, 2e-3))
    )
    placement = ProbePlacement("17g-sphere", [0.0, 0.0, 0.0], [0.0, 0.0, -1.0])
    grid = Grid.around([placement.tip_mm, *placement.active_segment_mm()], 14.0, 1.0)
    middle = np.mean(placement.active_segment_mm(), axis=0)
    vessel = Vessel.cylinder(grid, middle + [7.0, 0.0, 0.0], [0.0, 1.0, 0.0], diameter_mm=4.0)
    result = simulate(
        grid, [placement], parse_protocol("freeze:2,passive_thaw:1,active_thaw:0.5"), tissues=liver, vessels=[vessel]
    )
    energy = result.energy_j
    supplied = energy["probes"] + energy["perfusion"] + energy["metabolic"] + energy["boundary"] + energy["vessels"]
    assert energy["vessels"] > 0 and energy["probes"] < 0 and energy["perfusion"] > 0
    assert abs(energy["enthalpy_change"] - supplied) <= 0.01 * abs(energy["probes"])


def test_grid_convergence_of_isotherms():
    placement = ProbePlacement("17g-sphere", [0.0, 0.0, 0.0], [0.0, 0.0, -1.0])
    profiles = {}
    for spacing in (1.0, 0.5):
        grid = Grid.around([placement.tip_mm, *placement.active_segment_mm()], 13.0, spacing)
        result = simulate(grid, [placement], parse_protocol("freeze:2.5"), tissues=TISSUES["gel"])
        profiles[spacing] = isotherm_profile(result, placement)
    for t in (0.0, -20.0, -40.0):
        for coarse, fine in zip(profiles[1.0][t], profiles[0.5][t]):
            assert coarse == pytest.approx(fine, abs=1.0), (t, profiles)


def test_rotating_the_probe_moves_no_isotherm_by_more_than_a_voxel(rng):
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    profiles = []
    for axis in ([0.0, 0.0, -1.0], direction):
        placement = ProbePlacement("17g-rod", [0.3, -0.2, 0.1], axis)
        grid = Grid.around([placement.tip_mm, *placement.active_segment_mm()], 14.0, 1.0)
        result = simulate(grid, [placement], parse_protocol("freeze:3"), tissues=TISSUES["gel"])
        profiles.append(isotherm_profile(result, placement))
    for t in (0.0, -20.0, -40.0):
        for aligned, rotated in zip(profiles[0][t], profiles[1][t]):
            assert rotated == pytest.approx(aligned, abs=1.0), (t, profiles)
