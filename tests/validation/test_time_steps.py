"""The super steps against plain explicit steps: the schedule is stable by construction, and a run at the
default longest step (`SUPER_STEP_S`) reproduces the isotherms of the explicit enthalpy method."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryoplan.thermal import TISSUES, parse_protocol, simulate
from cryoplan.thermal.chart import chart_grid, probe_layout
from cryoplan.thermal.solver import SUPER_STEP_S, step_schedule


@pytest.mark.parametrize(
    "seconds, forward_euler_s, target_s",
    [(600.0, 0.137, None), (61.0, 0.5, 7.0), (0.3, 0.137, None), (100.0, 0.2, 0.1)],
)
def test_schedule_covers_the_stretch_within_the_rkl1_limit(seconds, forward_euler_s, target_s):
    schedule = step_schedule(seconds, forward_euler_s, target_s)
    assert sum(tau * count for tau, _, count in schedule) == pytest.approx(seconds)
    target = SUPER_STEP_S if target_s is None else target_s
    for tau, stages, _ in schedule:
        assert (stages * stages + stages) / 2 * forward_euler_s >= tau * (1 - 1e-9)  # RKL1 stability
        assert stages == 1 or ((stages - 1) ** 2 + stages - 1) / 2 * forward_euler_s < tau  # and the fewest stages
        assert tau <= max(target, forward_euler_s) * (1 + 1e-9)
    assert schedule[0][0] <= forward_euler_s * (1 + 1e-9)  # a stretch opens with a forward-Euler step


@pytest.mark.slow
def test_default_super_steps_match_explicit_steps():
    """One 17G rod probe in perfused liver, freeze 3 – passive thaw 1 – freeze 2 min on a 1.5 mm grid (ice
    enough for every isotherm to span 0.5 ml, 148 voxels): the 0, −20 and −40 °C volumes at the default steps
    within 1.5 % of explicit steps at the forward-Euler limit, and the sampled minimum temperature beside the
    probe within 2 °C."""
    probes = probe_layout("17g-rod")
    protocol = parse_protocol("freeze:3,passive_thaw:1,freeze:2")
    grid = chart_grid(probes, TISSUES["liver"], protocol, 1.5)
    super_run = simulate(grid, probes, protocol, tissues=TISSUES["liver"])
    explicit = simulate(grid, probes, protocol, tissues=TISSUES["liver"], time_step_s=0.15)  # limit ≈ 0.3 s
    assert explicit.time_step_s == pytest.approx(0.15) and 1.0 < super_run.time_step_s <= SUPER_STEP_S
    assert super_run.voxel_updates * 5 < explicit.voxel_updates
    for temperature in (0.0, -20.0, -40.0):
        reference = explicit.isotherm_volume_ml(temperature)
        assert reference > 0.5
        assert math.isclose(super_run.isotherm_volume_ml(temperature), reference, rel_tol=0.015), temperature
    a, b = probes[0].active_segment_mm()
    beside = [0.5 * (a + b) + np.array([d, 0.0, 0.0]) for d in (3.0, 6.0, 9.0)]
    np.testing.assert_allclose(
        super_run.temperature_along_c(np.array(beside), which="min"),
        explicit.temperature_along_c(np.array(beside), which="min"),
        atol=2.0,
    )


@pytest.mark.slow
def test_restarted_probe_transient_follows_explicit_steps():
    """A second freeze restarts the probes into frozen tissue, the fastest transient of a protocol: over its
    first 40 s, points 3 and 5 mm from a probe stay within 1 °C of explicit steps (steps doubling in the
    opening ramp once left such points up to 1.7 °C colder)."""
    probes = probe_layout("17g-rod", count=2, spacing_mm=15.0, layout="line")
    protocol = parse_protocol("freeze:6,passive_thaw:3,freeze:1")
    grid = chart_grid(probes, TISSUES["liver"], protocol, 1.0)
    a, b = probes[0].active_segment_mm()
    points = {f"{d:g} mm": 0.5 * (a + b) + np.array([0.0, d, 0.0]) for d in (3.0, 5.0)}
    runs = [
        simulate(grid, probes, protocol, tissues=TISSUES["liver"], record_points=points, time_step_s=step)
        for step in (None, 0.12)
    ]
    restart_s = 9 * 60.0
    times = np.arange(restart_s + 5.0, restart_s + 45.0, 5.0)
    for name in points:
        default, explicit = (np.interp(times, *run.histories[name]) for run in runs)
        assert np.min(explicit) < -20.0  # the cold wave arrives within the window
        np.testing.assert_allclose(default, explicit, atol=1.0, err_msg=name)
