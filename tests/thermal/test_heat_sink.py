"""Large vessels as heat sinks: ice never enters a lumen, and the isotherms are pulled back towards it."""

from __future__ import annotations

import numpy as np

from cryoplan.thermal import TISSUES, Grid, ProbePlacement, Vessel, parse_protocol, simulate


def test_vessel_keeps_its_lumen_unfrozen_and_pulls_back_the_isotherms():
    placement = ProbePlacement("17g-sphere", [0.0, 0.0, 0.0], [0.0, 0.0, -1.0])
    grid = Grid.around([placement.tip_mm, *placement.active_segment_mm()], 18.0, 1.0)
    middle = np.mean(placement.active_segment_mm(), axis=0)
    # A 6 mm vessel along P, level with the middle of the cooled segment, its wall 6 mm from the probe's axis.
    vessel = Vessel.cylinder(grid, middle + [9.0, 0.0, 0.0], [0.0, 1.0, 0.0], diameter_mm=6.0)
    protocol = parse_protocol("freeze:5")
    with_vessel = simulate(grid, [placement], protocol, tissues=TISSUES["liver"], vessels=[vessel])
    without = simulate(grid, [placement], protocol, tissues=TISSUES["liver"])
    lumen = vessel.mask
    assert lumen.sum() > 100
    assert with_vessel.min_temperature_c[lumen].min() >= 37.0 - 1e-3
    assert with_vessel.ice_fraction[lumen].max() == 0.0
    towards, away = [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]

    def reach(result, temperature, direction):
        return result.isotherm_distance_mm(temperature, middle, direction, which="min")

    # Without a vessel the field is symmetric; with it, every isotherm is nearer the probe on the vessel side.
    assert abs(reach(without, -40.0, towards) - reach(without, -40.0, away)) < 1e-3
    for temperature in (0.0, -20.0, -40.0):
        assert reach(with_vessel, temperature, towards) < reach(with_vessel, temperature, away) - 0.05
        assert reach(with_vessel, temperature, towards) < reach(without, temperature, towards) - 0.05
    # On the vessel side the ice stops at the lumen; it may reach the wall, as necrosis does (Surgery 1997;122:742).
    along_mm = np.arange(0.0, 12.0, 0.5)
    index = np.round(grid.index_of(middle + along_mm[:, None] * towards)).astype(int)
    first_lumen_mm = along_mm[lumen[tuple(index.T)]].min()
    assert reach(with_vessel, 0.0, towards) < first_lumen_mm
    assert reach(without, 0.0, towards) - reach(with_vessel, 0.0, towards) > 0.5
