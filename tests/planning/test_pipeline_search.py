"""The planner's search end to end: the demo's lesion beside the hepatic vein meets its margin with the default
rules (3 mm from the ribs), a search within the coarse grid's tolerance of its goal is checked on the plan grid,
and a plan that cannot names the limit that bound it."""

import json

import pytest

from cryoplan.imaging.phantom import TumourSpec, demo_phantom, make_phantom
from cryoplan.planning.coverage import margin_tolerance_mm
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.report.plan_report import plan_document

# The default rules on 2 mm grids (the demo plans on a 1 mm one; the search runs on 2 mm either way).
QUICK = PlanSettings(grid_mm=2.0, chart_grid_mm=2.0)


@pytest.mark.slow
def test_the_demo_lesion_meets_its_margin_or_says_why():
    plan = plan_case(demo_phantom(spacing_mm=2.0), settings=QUICK)
    (unit,) = plan.units
    (lesion,) = unit.coverage.lesions
    codes = {r.code: r.detail for r in unit.coverage.risks}
    assert lesion.margin_met or "the best plan searched" in codes["coverage_shortfall"], unit.simulations
    # every search and check is recorded, the last check being the plan reported
    stages = [s["stage"] for s in unit.simulations]
    assert stages[0] == "search" and stages[-1] == "check"
    last = unit.simulations[-1]
    assert last["min_margin_mm"] == pytest.approx(lesion.min_margin_mm, abs=0.01)
    assert last["margin_met"] == lesion.margin_met
    assert sum(s.get("simulations", 0) for s in unit.simulations) <= QUICK.max_search_simulations
    # a search that ends within the coarse grid's tolerance of its goal (half its 2 mm voxel) is checked on the
    # plan grid while checks remain, whether or not it reached the whole goal
    tolerance = margin_tolerance_mm([QUICK.chart_grid_mm] * 3)
    for n, (found, after) in enumerate(zip(unit.simulations, unit.simulations[1:])):
        checks = sum(s["stage"] == "check" for s in unit.simulations[:n])
        if found["stage"] == "search" and checks < QUICK.max_full_simulations:
            if found["min_margin_mm"] is not None and found["min_margin_mm"] >= found["goal_mm"] - tolerance:
                assert found["margin_met"] and after["stage"] == "check", unit.simulations
    # plan.json carries the sessions and the unit's probability of success (none without robust planning)
    document = json.loads(json.dumps(plan_document(plan)))
    assert [s["lesion_ids"] for s in document["sessions"]] == [["L1"]]
    assert document["lesions"][0]["success"] is None
    assert "coverage_target_pct" not in document["settings"]
    assert "everywhere" in document["settings"]["success_rule"]


@pytest.mark.slow
def test_a_shortfall_names_the_limit_that_bound():
    """One probe frozen 10 min cannot give a 30 mm tumour a 5 mm margin: the flag says the probe and freeze
    limits bound, not only that the margin fell short."""
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 30.0)], spacing_mm=2.0, seed=0)
    settings = PlanSettings(
        grid_mm=2.0, chart_grid_mm=2.0, probe_types=("17g-rod",), max_probes=1, freeze_minutes=(10.0,)
    )
    plan = plan_case(phantom, settings=settings)
    (unit,) = plan.units
    (lesion,) = unit.coverage.lesions
    assert not lesion.margin_met
    detail = {r.code: r.detail for r in unit.coverage.risks}["coverage_shortfall"]
    assert "1 probe frozen up to 10 min" in detail and "--max-probes is 1" in detail, detail
    assert len(unit.candidate.probes) == 1 and unit.candidate.freeze_minutes == 10.0
