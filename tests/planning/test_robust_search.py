"""The local search step on the full simulation: find the thinnest margin and move the layout towards it."""

import numpy as np
import pytest

from cryoplan.planning.search import Candidate, ProbePlan, nudged, thinnest_margin
from cryoplan.planning.settings import PlanSettings
from cryoplan.thermal import Grid


class OpenBody:
    """A path map whose skin lies 100 mm back along every path and whose paths are all clear."""

    def __init__(self, clear=True):
        self.clear = clear

    def skin_entry(self, tip, outward, max_path_mm):
        return tip + 100.0 * outward

    def path_clearance_mm(self, tip, entry, need):
        return np.inf if self.clear else 0.0


def two_rods():
    axis = np.array([0.0, 1.0, 0.0])
    probes = [ProbePlan("17g-rod", np.array([x, 10.0, 0.0]), axis, np.array([x, -90.0, 0.0])) for x in (-6.0, 6.0)]
    return Candidate(probes, 10.0, 12.0, 100.0, 20.0, True)


def test_the_thinnest_margin_is_on_the_side_the_lethal_zone_is_pulled_away_from():
    grid = Grid.around(np.array([[-30.0, -30.0, -30.0], [30.0, 30.0, 30.0]]), 0.0, 1.0)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1)
    points = grid.origin_mm + index * grid.spacing_mm
    tumour = np.linalg.norm(points, axis=-1) <= 8.0
    # the lethal sphere (radius 14 mm) is shifted 3 mm to +x: the margin is thinnest at −x, 14 − 8 − 3 = 3 mm
    temperature = np.where(np.linalg.norm(points - [3.0, 0.0, 0.0], axis=-1) <= 14.0, -30.0, 5.0).astype(np.float32)
    point, margin = thinnest_margin(temperature, tumour, grid, -20.0)
    assert point[0] < -6.0 and abs(point[1]) <= 2.0 and abs(point[2]) <= 2.0
    assert margin == pytest.approx(3.0, abs=1.0)


class BlockedAside(OpenBody):
    """Paths are clear only on the line x = ±6 mm (the layout's own paths)."""

    def path_clearance_mm(self, tip, entry, need):
        return np.inf if abs(abs(tip[0]) - 6.0) < 1e-9 else 0.0


def test_a_nudge_moves_the_layout_towards_the_thinnest_margin_and_keeps_the_paths_checked():
    plan = two_rods()
    toward = np.array([-20.0, 10.0, 0.0])  # the layout's centre is (0, 10, 0)
    moved = nudged(plan, OpenBody(), PlanSettings(), toward, 2.0)
    shift = np.array([p.tip_lps_mm for p in moved.probes]) - np.array([p.tip_lps_mm for p in plan.probes])
    np.testing.assert_allclose(shift, [[-2.0, 0.0, 0.0]] * 2, atol=1e-9)
    np.testing.assert_allclose([p.entry_lps_mm for p in moved.probes], [[-8.0, -90.0, 0.0], [4.0, -90.0, 0.0]])
    assert (moved.freeze_minutes, moved.spacing_mm, len(moved.probes)) == (10.0, 12.0, 2)
    # blocked aside: the layout goes deeper along its own paths instead
    deeper = nudged(plan, BlockedAside(), PlanSettings(), np.array([-20.0, 30.0, 0.0]), 2.0)
    shift = np.array([p.tip_lps_mm for p in deeper.probes]) - np.array([p.tip_lps_mm for p in plan.probes])
    np.testing.assert_allclose(shift, [[0.0, 2.0, 0.0]] * 2, atol=1e-9)
    assert nudged(plan, OpenBody(clear=False), PlanSettings(), toward, 2.0) is None
