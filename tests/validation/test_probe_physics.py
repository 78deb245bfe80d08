"""Physical consistency of the probe model: more cooling never makes less ice, more heat load never makes
more, probes add up, and the library's probe sizes are ordered as their diameters (on the calibration's
2 mm grid, which the last test ties to a 1 mm one)."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.thermal import TISSUES, ProbePlacement, parse_protocol, simulate
from cryoplan.thermal import probes as probe_library
from cryoplan.thermal.calibration import current_parameters, medium_for
from cryoplan.thermal.chart import PROBE_AXIS, chart_grid, probe_layout
from cryoplan.thermal.probes import ProbeType

GRID_MM = 2.0
MARGIN_MM = 30.0
TOLERANCE_C = 0.1
"""Pointwise slack for comparisons of final temperature fields (float32 state)."""
STEP_S = 0.5
"""Longest time step of these runs: at most a few forward-Euler limits (≈ 0.6 s on the 2 mm grid). The
super steps' error near the front (up to 1 °C, tests/validation/test_time_steps.py) differs between runs
whose probes differ, and inverted the final fields of 1.47 and 1.7 mm probes by 0.7 °C at 5 s steps; at
0.3 s steps the inversion was gone, so the comparisons test the probe model and not the time stepping."""


def run(placements, medium, protocol="freeze:10", initial_temp_c=None, grid=None, grid_mm=GRID_MM):
    protocol = parse_protocol(protocol)
    grid = grid or chart_grid(placements, medium, protocol, grid_mm, margin_mm=MARGIN_MM)
    result = simulate(grid, placements, protocol, tissues=medium, initial_temp_c=initial_temp_c, time_step_s=STEP_S)
    return grid, result


def volumes(result, temperatures=(0.0, -20.0, -40.0)):
    return np.array([result.isotherm_volume_ml(t, which="final") for t in temperatures])


@pytest.fixture
def probe_types(monkeypatch):
    """Register probe types of the argon family for one test."""

    def register(**changes) -> str:
        base = probe_library.PROBES["1.7mm"]
        probe = base.model_copy(update={"id": "test-" + "-".join(f"{k}{v}" for k, v in changes.items()), **changes})
        ProbeType.model_validate(probe.model_dump())
        monkeypatch.setitem(probe_library.PROBES, probe.id, probe)
        return probe.id

    return register


def common_grid(placement_sets, medium, protocol):
    points = [p for placements in placement_sets for p in placements]
    return chart_grid(points, medium, parse_protocol(protocol), GRID_MM, margin_mm=MARGIN_MM)


@pytest.mark.parametrize("medium_name", ["gel", "liver"])
def test_a_thicker_probe_never_makes_less_ice(probe_types, medium_name):
    medium = TISSUES[medium_name]
    ids = [probe_types(diameter_mm=d) for d in (1.47, 1.7, 2.4, 3.8)]
    sets = [[ProbePlacement(i, np.zeros(3), PROBE_AXIS)] for i in ids]
    grid = common_grid(sets, medium, "freeze:10")
    fields = [run(s, medium, grid=grid)[1] for s in sets]
    for thin, thick in zip(fields, fields[1:]):
        assert np.all(thick.final_temperature_c <= thin.final_temperature_c + TOLERANCE_C)
        assert np.all(volumes(thick) > volumes(thin))


def test_a_longer_probe_never_makes_less_ice(probe_types):
    medium = TISSUES["liver"]
    ids = [probe_types(active_length_mm=a) for a in (10.0, 20.0, 35.0)]
    sets = [[ProbePlacement(i, np.zeros(3), PROBE_AXIS)] for i in ids]
    grid = common_grid(sets, medium, "freeze:10")
    fields = [run(s, medium, grid=grid)[1] for s in sets]
    for short, long in zip(fields, fields[1:]):
        assert np.all(long.final_temperature_c <= short.final_temperature_c + TOLERANCE_C)
        assert np.all(volumes(long) > volumes(short))


def test_a_warmer_medium_never_makes_more_ice():
    placements = probe_layout("2.4mm")
    gel = TISSUES["gel"]
    grid = common_grid([placements], gel, "freeze:10")
    fields = [run(placements, gel, initial_temp_c=t, grid=grid)[1] for t in (10.0, 25.0, 37.0, 39.0)]
    for cool, warm in zip(fields, fields[1:]):
        assert np.all(warm.final_temperature_c >= cool.final_temperature_c - TOLERANCE_C)
        assert np.all(volumes(warm) <= volumes(cool)) and volumes(warm)[0] < volumes(cool)[0]


def test_more_perfusion_never_makes_more_ice():
    placements = probe_layout("2.4mm")
    grid = common_grid([placements], TISSUES["liver"], "freeze:10")
    fields = [
        # Without metabolic heat, which would warm weakly perfused tissue above 37 °C (T_a + Q_m/W).
        run(placements, TISSUES["liver"].replace(perfusion_1_s=w, metabolic_heat_w_m3=0.0), grid=grid)[1]
        for w in (5e-4, 3e-3, 1e-2, 2e-2)
    ]
    for low, high in zip(fields, fields[1:]):
        assert np.all(high.final_temperature_c >= low.final_temperature_c - TOLERANCE_C)
        assert np.all(volumes(high) <= volumes(low)) and volumes(high)[0] < volumes(low)[0]


def test_adding_a_probe_never_shrinks_an_isotherm():
    medium = TISSUES["liver"]
    one = probe_layout("17g-rod")
    two = [*one, ProbePlacement("17g-rod", np.array([12.0, 5.0, 0.0]), PROBE_AXIS)]
    grid = common_grid([two], medium, "freeze:10,passive_thaw:5,freeze:10")
    alone = run(one, medium, "freeze:10,passive_thaw:5,freeze:10", grid=grid)[1]
    pair = run(two, medium, "freeze:10,passive_thaw:5,freeze:10", grid=grid)[1]
    assert np.all(pair.final_temperature_c <= alone.final_temperature_c + TOLERANCE_C)
    for t in (0.0, -20.0, -40.0):
        assert np.all(pair.isotherm_mask(t, "final") | ~alone.isotherm_mask(t, "final"))


def test_neighbours_shield_each_other():
    """Two probes side by side each draw less heat than one alone: they share the heat load."""
    medium = TISSUES["liver"]
    pair = probe_layout("17g-rod", 2, 6.0)
    grid = common_grid([pair], medium, "freeze:10")
    alone = run(pair[:1], medium, grid=grid)[1].energy_j["probes"]
    together = run(pair, medium, grid=grid)[1].energy_j["probes"]
    assert alone < 0 and abs(together) < 2.0 * abs(alone) * 0.9


@pytest.mark.parametrize("medium_name", ["agar", "liver"])
def test_the_1_7_mm_probe_makes_less_lethal_ice_than_the_2_4_mm_probe(medium_name):
    medium = medium_for(medium_name, 39.0 if medium_name == "agar" else 37.0, current_parameters())
    initial = 39.0 if medium_name == "agar" else None
    sets = [probe_layout("1.7mm"), probe_layout("2.4mm")]
    grid = common_grid(sets, medium, "freeze:15")
    small, large = (run(s, medium, "freeze:15", initial, grid=grid)[1] for s in sets)
    for t in (-20.0, -30.0, -40.0):
        assert small.isotherm_volume_ml(t, "final") < large.isotherm_volume_ml(t, "final")
    # Not pointwise: the 1.7 mm probe's active zone starts 1 mm nearer its tip than the 2.4 mm probe's.


def test_flow_fraction_scales_the_cooling():
    medium = TISSUES["liver"]
    grid = common_grid([probe_layout("2.4mm")], medium, "freeze:10")
    fields = [run(probe_layout("2.4mm"), medium, f"freeze:10@{f:g}", grid=grid)[1] for f in (0.0, 0.25, 0.5, 1.0)]
    assert fields[0].final_temperature_c.min() > 0.0  # no flow, no ice
    for low, high in zip(fields, fields[1:]):
        assert np.all(high.final_temperature_c <= low.final_temperature_c + TOLERANCE_C)
        assert high.isotherm_volume_ml(0.0, "final") > low.isotherm_volume_ml(0.0, "final")


@pytest.mark.slow  # 3–5 s on 2 cores (the 1 mm grid); the full suite runs it
def test_the_calibration_grid_agrees_with_a_1_mm_grid():
    """Widths at the middle of the active zone on 2 mm and 1 mm grids within 1 mm (one 2.4 mm probe, liver)."""
    medium = TISSUES["liver"]
    placements = probe_layout("2.4mm")
    middle = np.mean(placements[0].active_segment_mm(), axis=0)
    widths = {}
    for spacing in (2.0, 1.0):
        _, result = run(placements, medium, grid_mm=spacing)
        widths[spacing] = [
            2.0 * result.isotherm_distance_mm(t, middle, [1.0, 0.0, 0.0], which="final") for t in (0.0, -20.0, -40.0)
        ]
    assert widths[2.0] == pytest.approx(widths[1.0], abs=1.0)
