"""The plan does not depend on the simulation grid beyond the grid's tolerance: the benchmark's 30 mm lesion
gets the same probes and protocol at 1 and 2 mm, the coarse search runs the same simulations on either plan grid
up to its first check, both plans meet the margin by the shared criterion, and the 1 mm plan meets it on the
2 mm grid too.

The 2 mm plan may be the first layout the search sends to the check: a margin on the 2 mm grid is known to half
its voxel (`margin_tolerance_mm`), so the check there accepts what the 1 mm grid may find short and search on
from; the two plans' tips then differ by more than 1 mm (a strict xfail until they do not)."""

import numpy as np
import pytest

from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.simulation import simulate_plan, unit_coverage


def until_first_check(unit):
    steps = [{k: v for k, v in s.items() if k != "elapsed_s"} for s in unit.simulations]
    return steps[: [s["stage"] for s in steps].index("check")]


@pytest.fixture(scope="module")
def plans():
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 30.0)], spacing_mm=1.0, seed=0)
    return {grid: plan_case(phantom, settings=PlanSettings(grid_mm=grid)) for grid in (1.0, 2.0)}


@pytest.mark.slow
def test_the_same_plan_at_1_and_2_mm(plans):
    fine, coarse = plans[1.0].units[0], plans[2.0].units[0]
    assert [p.probe_id for p in fine.candidate.probes] == [p.probe_id for p in coarse.candidate.probes]
    assert fine.candidate.freeze_minutes == coarse.candidate.freeze_minutes
    assert until_first_check(fine) == until_first_check(coarse)
    assert [lesion.margin_met for lesion in fine.coverage.lesions] == [
        lesion.margin_met for lesion in coarse.coverage.lesions
    ]
    on_2_mm = PlanSettings(grid_mm=2.0)
    result, lesion_masks, structures, _, _ = simulate_plan(plans[1.0].anatomy, fine.lesion_ids, fine.candidate, on_2_mm)
    covered = unit_coverage(result, lesion_masks, structures, plans[1.0].anatomy, on_2_mm)
    assert [lesion.margin_met for lesion in covered.lesions] == [lesion.margin_met for lesion in fine.coverage.lesions]


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="the 2 mm plan grid accepts, within its 1 mm tolerance, the first layout checked (3.97 mm on the 1 mm "
    "grid, which searches on): the two plans' tips are 2.1 mm apart",
)
def test_the_same_tips_at_1_and_2_mm(plans):
    tips = [np.array([p.tip_lps_mm for p in plans[grid].units[0].candidate.probes]) for grid in (1.0, 2.0)]
    assert np.abs(tips[0] - tips[1]).max() <= 1.0
