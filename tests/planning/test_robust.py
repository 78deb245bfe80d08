"""Robust planning: the sequential test of a plan's probability of success, and the chosen plan's probability
re-estimated with fresh samples."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cryoplan.errors import InputError
from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.planning.coverage import margin_tolerance_mm
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.robust import SequentialTest, success_probability, wilson_interval
from cryoplan.planning.settings import PlanSettings


def run_test(test: SequentialTest, p: float, rng) -> str | None:
    successes = 0
    for n in range(1, test.max_samples + 1):
        successes += rng.random() < p
        decision = test.decision(successes, n)
        if decision:
            return decision
    return None


def test_wald_boundaries():
    test = SequentialTest(target=0.9, indifference=0.05, alpha=0.05, beta=0.1, max_samples=200)
    p0, p1 = 0.85, 0.95
    upper = np.log((1 - 0.1) / 0.05)
    per_success = np.log(p1 / p0)
    # Only successes: robust once n·log(p1/p0) reaches log((1 − β)/α), not one sample before.
    first = int(np.ceil(upper / per_success))
    assert test.decision(first, first) == "robust"
    assert test.decision(first - 1, first - 1) is None
    # Failures reject once n·log((1 − p1)/(1 − p0)) reaches log(β/(1 − α)): after 3 here.
    failures = int(np.ceil(np.log(0.1 / 0.95) / np.log(0.05 / 0.15)))
    assert failures == 3
    assert test.decision(0, failures) == "not_robust"
    assert test.decision(0, failures - 1) is None


@pytest.mark.parametrize(("p", "decision", "rate"), [(0.97, "robust", 0.9), (0.8, "not_robust", 0.95)])
def test_operating_characteristic(p, decision, rate):
    """Far from the indifference zone the test decides the right way at least as often as its error rates
    promise (1 − β for robust plans, 1 − α for poor ones), before its budget."""
    test = SequentialTest(max_samples=400)
    rng = np.random.default_rng(7)
    outcomes = [run_test(test, p, rng) for _ in range(400)]
    assert np.mean([o == decision for o in outcomes]) >= rate


def test_wilson_interval_matches_scipy():
    for successes, samples in ((0, 10), (27, 30), (60, 60), (5, 9)):
        expected = stats.binomtest(successes, samples).proportion_ci(0.95, method="wilson")
        assert wilson_interval(successes, samples) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_bad_tests():
    with pytest.raises(InputError, match="confidence"):
        SequentialTest(target=1.0).check()
    with pytest.raises(InputError, match="confidence"):
        PlanSettings(confidence=0.3).check()


@pytest.mark.slow
def test_the_robust_plans_probability_holds_with_fresh_samples():
    """A 12 mm lesion planned robustly (2 mm grids): its probability of success re-estimated with another
    seed and a fixed 60 samples is at least the target within the re-estimate's 95 % Wilson interval."""
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 12.0)], spacing_mm=2.0, seed=1)
    settings = PlanSettings(
        probe_types=("17g-rod",),
        grid_mm=2.0,
        chart_grid_mm=2.0,
        clearances_mm={"bone": 2.0},
        robust_samples=60,
        max_full_simulations=4,
    )
    plan = plan_case(phantom, settings=settings)
    (unit,) = plan.units
    assert unit.success is not None and unit.success.robust, unit.simulations
    assert "not_robust" not in {r.code for r in unit.coverage.risks}
    again = success_probability(plan.anatomy, unit, settings, seed=12345, samples=60, grid_mm=2.0)
    assert again.samples == 60
    # each sample's thinnest margin is kept, and the successes are the samples whose margin is met
    tolerance = margin_tolerance_mm([2.0] * 3)
    assert len(again.margins_mm) == 60
    assert sum(m >= settings.margin_mm - tolerance for m in again.margins_mm) == again.successes
    assert again.to_dict()["thinnest_sampled_margin_mm"] == round(min(again.margins_mm), 2)
    low, high = again.interval
    assert high >= settings.confidence, again.to_dict()


@pytest.mark.parametrize("value", ["1.5", "0.2"])
def test_cli_confidence_out_of_range_is_one_line_exit_2(tmp_path, value, cryoplan_cli):
    out = tmp_path / "plan"
    result = cryoplan_cli(
        "plan", "examples/hcc_eligible.yaml", "-o", out, "--confidence", value, cwd=Path(__file__).parents[2]
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "confidence" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
