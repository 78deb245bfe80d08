"""The tract freeze on withdrawal: parsed only as the closing phase, and it freezes the shaft's path."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.thermal import TISSUES, Grid, parse_protocol, simulate
from cryoplan.thermal.chart import chart_grid, probe_layout


def test_tract_freeze_parses_as_the_last_phase():
    protocol = parse_protocol("freeze:10,passive_thaw:5,freeze:10,tract_freeze:1:20@0.5")
    last = protocol.phases[-1]
    assert (last.kind, last.minutes, last.withdrawal_mm, last.flow_fraction) == ("tract_freeze", 1.0, 20.0, 0.5)
    assert str(protocol) == "freeze:10,passive_thaw:5,freeze:10,tract_freeze:1:20@0.5"
    assert parse_protocol(str(protocol)) == protocol


@pytest.mark.parametrize(
    "text, field",
    [
        ("tract_freeze:1:20,freeze:5", "protocol[0].kind"),
        ("freeze:5,tract_freeze:1", "protocol[1].withdrawal_mm"),
        ("freeze:5,tract_freeze:1:-3", "protocol[1].withdrawal_mm"),
        ("freeze:5:20", "protocol[0].minutes"),
    ],
)
def test_bad_tract_freezes_name_the_field(text, field):
    with pytest.raises(InputError) as error:
        parse_protocol(text)
    assert error.value.field == field


def _rod_in_liver(extra_proximal_mm: float):
    probes = probe_layout("17g-rod")
    grid = chart_grid(probes, TISSUES["liver"], parse_protocol("freeze:3"), 1.0)
    # Room behind the probe (it points along −S: its shaft runs towards +S).
    shape = (grid.shape[0], grid.shape[1], grid.shape[2] + int(extra_proximal_mm))
    return probes, Grid(grid.origin_mm, 1.0, shape)


def test_tract_freeze_freezes_the_path_the_probe_is_withdrawn_along():
    probes, grid = _rod_in_liver(20.0)
    probe = probes[0]
    _, proximal = probe.active_segment_mm()  # the end of what the probe cools
    on_tract = np.array([proximal - d * probe.direction for d in (13.0, 15.0)])
    aside = np.array([proximal - 13.0 * probe.direction + np.array([12.0, 0.0, 0.0])])
    plain = simulate(grid, probes, parse_protocol("freeze:3"), tissues=TISSUES["liver"])
    tract = simulate(grid, probes, parse_protocol("freeze:3,tract_freeze:1:15"), tissues=TISSUES["liver"])
    assert np.all(plain.temperature_along_c(on_tract, which="min") > 0.0)
    assert np.all(tract.temperature_along_c(on_tract, which="min") < -20.0)  # lethal along the withdrawn path
    assert tract.temperature_along_c(aside, which="min")[0] > 0.0  # and not beside it
    balance = tract.energy_j["enthalpy_change"] - sum(v for k, v in tract.energy_j.items() if k != "enthalpy_change")
    assert abs(balance) < 0.01 * abs(tract.energy_j["probes"])


def test_withdrawal_out_of_the_grid_is_refused():
    probes, grid = _rod_in_liver(0.0)
    with pytest.raises(InputError) as error:
        simulate(grid, probes, parse_protocol("freeze:1,tract_freeze:1:200"), tissues=TISSUES["liver"])
    assert error.value.field == "protocol[1].withdrawal_mm"


def test_isotherm_grid_makes_room_for_the_withdrawal():
    probes = probe_layout("17g-rod")
    plain = chart_grid(probes, TISSUES["liver"], parse_protocol("freeze:2"), 2.0)
    protocol = parse_protocol("freeze:2,tract_freeze:0.5:30")
    tract = chart_grid(probes, TISSUES["liver"], protocol, 2.0)
    axis = int(np.argmax(np.abs(probes[0].direction)))
    assert (tract.shape[axis] - plain.shape[axis]) * 2.0 >= 30.0 - 2.0
    result = simulate(tract, probes, protocol, tissues=TISSUES["liver"])  # no withdrawal error
    assert result.isotherm_volume_ml(0.0) > 0.0
