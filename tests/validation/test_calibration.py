"""The joint calibration: it recovers parameters from figures simulated with them, its leave-one-source-out
refit does without the left-out rows, and the fitted uncertainty is handed out reproducibly."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.thermal import calibration
from cryoplan.thermal.tissue import TISSUES


@pytest.fixture(scope="module")
def lung_rows():
    """The pig-lung rows (one source, one simulation), with the liver's Weber 1998 row as a second source."""
    rows = {row.id: row for row in calibration.load_rows()}
    return [rows["M07"], rows["M08"], rows["M09"], rows["M14"]]


def synthetic(rows, params, simulator):
    """The rows with their measured values replaced by what the model gives at `params`."""
    _, _, figures = calibration.evaluate(simulator, rows, params)
    return [replace(row, value_mm=round(figures[row.id], 3)) for row in rows]


@pytest.mark.slow
def test_the_fit_recovers_the_parameters_behind_synthetic_figures(lung_rows):
    simulator = calibration.Simulator()
    # The priors' centres, relative priors (kidney's ratio to liver) applied to the truth's liver perfusion.
    truth = calibration._as_params(
        calibration._start({"heat_transfer_w_m2k": 6000.0, "lung_perfusion_1_s": 1.5e-3, "liver_perfusion_1_s": 8e-3})
    )
    rows = synthetic(lung_rows, truth, simulator)
    start = {"heat_transfer_w_m2k": 2000.0, "lung_perfusion_1_s": 5e-3, "liver_perfusion_1_s": 2e-3}
    fitted = calibration.fit(simulator, rows, start=start)
    # The fit minimises the rows' and the priors' squared residuals together: it must do at least as well as
    # the truth, whose rows fit exactly but whose values sit off the priors.
    truth_cost = float(np.sum(calibration._prior_residuals(np.log([truth[n] for n in calibration.NAMES])) ** 2))
    fitted_cost = float(np.sum(fitted["residuals"] ** 2) + np.sum(calibration._prior_residuals(fitted["z"]) ** 2))
    assert fitted_cost <= truth_cost * 1.001
    assert np.all(np.abs(fitted["residuals"]) < 0.3)  # every row within 0.3 of its spread
    values = calibration._as_params(fitted["z"])
    # Three lung isotherms pin the lung's perfusion (measured: 1.52e-3 for a truth of 1.5e-3).
    assert values["lung_perfusion_1_s"] == pytest.approx(truth["lung_perfusion_1_s"], rel=0.1)
    for p in calibration.PARAMETERS:
        assert p.lower <= values[p.name] <= p.upper
    # A parameter no row depends on stays at its prior: kidney's perfusion at its prior ratio to the fitted liver's,
    # within the fit's stopping rule (no log-parameter step above 0.02; measured: 2e-4).
    kidney = next(p for p in calibration.PARAMETERS if p.name == "kidney_perfusion_1_s")
    assert values["kidney_perfusion_1_s"] == pytest.approx(kidney.prior * values["liver_perfusion_1_s"], rel=0.02)


@pytest.mark.slow
def test_leaving_a_source_out_changes_only_what_it_informs(lung_rows):
    simulator = calibration.Simulator()
    params = calibration.current_parameters()
    rows = synthetic(lung_rows, params, simulator)
    # Offset the lung rows so that their source, left out, would have pulled the fit.
    rows = [replace(r, value_mm=r.value_mm + 4.0) if r.source == "Hinshaw 2010" else r for r in rows]
    fitted = calibration.fit(simulator, rows, start=params, max_iterations=3)
    predicted = calibration.leave_one_source_out(simulator, rows, fitted)
    for row in rows:
        assert math.isfinite(predicted[row.id])
    # Without the lung rows the refit lung perfusion falls back towards its prior and predicts larger
    # residuals on them than the joint fit had.
    lung = [r for r in rows if r.source == "Hinshaw 2010"]
    joint = sum(abs(calibration.residual(r, fitted["figures"][r.id])) for r in lung)
    held_out = sum(abs(calibration.residual(r, predicted[r.id])) for r in lung)
    assert held_out > joint


def test_a_left_out_experiment_keeps_its_own_setup_while_shared_parameters_refit():
    """The phantom's heat load, which only Littrup's rows inform, stays at the joint fit when that source is
    left out; the shared parameters move (linear algebra of the refit, no simulation)."""
    rows = calibration.load_rows()
    params = calibration.current_parameters()
    z = np.log([params[name] for name in calibration.NAMES])
    rng = np.random.default_rng(3)
    J = rng.normal(size=(len(rows), len(calibration.NAMES)))
    for medium, name in calibration.MEDIUM_PARAMETER.items():  # a medium's parameter acts on its rows only
        J[[row.medium != medium for row in rows], calibration.NAMES.index(name)] = 0.0
    fitted = {"z": z, "residuals": rng.normal(size=len(rows)), "jacobian": J}
    refit = calibration.refit_without("Littrup 2009", rows, fitted)
    assert refit["agar_heat_load_w_m3k"] == pytest.approx(params["agar_heat_load_w_m3k"], rel=1e-12)
    moved = [n for n in calibration.PROBE_PARAMETERS if not math.isclose(refit[n], params[n], rel_tol=1e-6)]
    assert moved == list(calibration.PROBE_PARAMETERS)
    # A tissue's perfusion is physics, not setup: without the lung rows the lung's falls back towards its prior.
    lung = next(p for p in calibration.PARAMETERS if p.name == "lung_perfusion_1_s")
    without_lung = calibration.refit_without("Hinshaw 2010", rows, fitted)
    assert abs(math.log(without_lung["lung_perfusion_1_s"] / lung.prior)) < abs(
        math.log(params["lung_perfusion_1_s"] / lung.prior)
    )


def test_parameter_distribution_is_seeded_and_positive():
    first = calibration.parameter_distribution(2000, seed=7)
    again = calibration.parameter_distribution(2000, seed=7)
    other = calibration.parameter_distribution(2000, seed=8)
    for name in first["names"]:
        samples = first["samples"][name]
        assert np.all(samples > 0) and np.array_equal(samples, again["samples"][name])
        assert not np.array_equal(samples, other["samples"][name])
        # Log-normal with the recorded log-sd: the median of the samples is the fitted value.
        log_sd = math.sqrt(first["log_covariance"][first["names"].index(name)][first["names"].index(name)])
        assert np.median(samples) == pytest.approx(first["mean"][name], rel=4 * log_sd / math.sqrt(2000) + 1e-9)
    with pytest.raises(InputError) as error:
        calibration.parameter_distribution(10)
    assert error.value.field == "seed"


def test_calibrated_values_lie_within_their_published_ranges():
    distribution = calibration.parameter_distribution()
    for p in calibration.PARAMETERS:
        assert p.lower <= distribution["mean"][p.name] <= p.upper, p.name
        assert distribution["sd"][p.name] > 0, p.name
    # The library's in vivo tissues carry the fitted perfusion; kidney ice is smaller than liver ice at
    # higher perfusion, so its fitted perfusion is the larger.
    assert TISSUES["liver"].perfusion_1_s == pytest.approx(distribution["mean"]["liver_perfusion_1_s"], rel=1e-3)
    assert TISSUES["kidney"].perfusion_1_s == pytest.approx(distribution["mean"]["kidney_perfusion_1_s"], rel=1e-3)
    assert TISSUES["kidney"].perfusion_1_s > TISSUES["liver"].perfusion_1_s
