"""Monte Carlo uncertainty on a real Dask LocalCluster: seeded, independent of the number of workers."""

import os
from dataclasses import replace

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.planning.uncertainty import (
    BATCHES_PER_WORKER,
    SampleContext,
    batches,
    calibrated_perfusion_log_sd,
    default_workers,
    margin_succeeds,
    monte_carlo,
    perturbed_cooling,
    perturbed_probes,
    perturbed_tissues,
    sample_margin_mm,
    wilson_interval,
)
from cryoplan.thermal import TISSUES, Grid, ProbePlacement
from cryoplan.thermal.calibration import parameter_distribution
from cryoplan.thermal.probes import probes_too_close


def test_perturbations_have_the_stated_spread():
    rng = np.random.default_rng(3)
    probe = ProbePlacement("17g-rod", np.zeros(3), np.array([0.0, 0.0, 1.0]))
    moved = [perturbed_probes([probe], rng, 2.0, 2.0)[0] for _ in range(4000)]
    tips = np.array([m.tip_mm for m in moved])
    np.testing.assert_allclose(tips.std(axis=0), 2.0, rtol=0.06)
    angles = np.degrees(np.arccos(np.clip([m.direction[2] for m in moved], -1, 1)))
    # |N(0, 2°)| has mean 2·√(2/π) ≈ 1.60°
    assert np.mean(angles) == pytest.approx(2.0 * np.sqrt(2 / np.pi), rel=0.06)
    factors = [perturbed_tissues(rng, 0.5)[1] for _ in range(4000)]
    latent = np.array([f["latent_heat"] for f in factors])
    perfusion = np.array([f["perfusion"] for f in factors])
    assert 0.6 <= latent.min() and latent.max() <= 1.4
    assert np.std(np.log(perfusion)) == pytest.approx(0.5, rel=0.05)
    assert np.median(perfusion) == pytest.approx(1.0, abs=0.05)


def test_perturbed_probes_never_pass_through_each_other():
    """Three 2.4 mm probes with 3 mm between their axes (0.6 mm between their surfaces): with tip errors of
    σ = 2 mm most raw draws would put one needle through another; every sample drawn is a layout that can be
    placed, and the draws still spread as stated."""
    rng = np.random.default_rng(8)
    probes = [ProbePlacement("2.4mm", np.array([x, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])) for x in (0.0, 3.0, 6.0)]
    assert probes_too_close(probes) is None
    drawn = [perturbed_probes(probes, rng, 2.0, 2.0) for _ in range(300)]
    assert all(probes_too_close(layout) is None for layout in drawn)
    gaps = [np.linalg.norm(layout[1].tip_mm - layout[0].tip_mm) for layout in drawn]
    assert min(gaps) >= 2.4 and np.std([layout[0].tip_mm[2] for layout in drawn]) > 1.5
    # a layout with two needles through each other is what the draw refuses
    assert probes_too_close([probes[0], ProbePlacement("2.4mm", np.array([1.0, 0, 0]), np.array([0, 0, 1.0]))])


def test_perfusion_spread_is_the_calibrated_one():
    distribution = parameter_distribution(4000, seed=2)
    drawn = np.log(distribution["samples"]["liver_perfusion_1_s"])
    assert calibrated_perfusion_log_sd() == pytest.approx(np.std(drawn), rel=0.05)
    assert TISSUES["liver"].perfusion_1_s == pytest.approx(distribution["mean"]["liver_perfusion_1_s"], rel=1e-3)


@pytest.mark.slow
def test_probe_cooling_is_drawn_from_the_calibration():
    rng = np.random.default_rng(5)
    drawn = [perturbed_cooling(rng) for _ in range(3000)]
    distribution = parameter_distribution()
    for name in ("heat_transfer_w_m2k", "proximal_cooled_length_mm"):
        logs = np.log([d[name] for d in drawn])
        k = distribution["names"].index(name)
        assert np.std(logs) == pytest.approx(np.sqrt(distribution["log_covariance"][k, k]), rel=0.06)
        assert np.exp(np.mean(logs)) == pytest.approx(distribution["mean"][name], rel=0.05)


@pytest.mark.parametrize(
    ("successes", "samples", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_the_wilson_interval_is_the_published_one(successes, samples, low, high):
    """The score interval without continuity correction of Newcombe's four worked examples (Newcombe, Stat Med
    1998;17:857-872), to his four decimals."""
    interval = wilson_interval(successes, samples)
    assert interval == pytest.approx((low, high), abs=5e-5)
    assert interval[0] < successes / samples < interval[1] or successes == 0


def test_the_wilson_interval_of_no_samples_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.fixture(scope="module")
def context():
    grid = Grid.around(np.array([[0, 0, -40.0], [0, 0, 15.0]]), 18.0, 3.0)
    centres = grid.centres_mm()
    tumour = np.linalg.norm(centres - [0, 0, -8.0], axis=-1) <= 5.0
    margin = np.linalg.norm(centres - [0, 0, -8.0], axis=-1) <= 8.0
    return SampleContext(
        grid=grid,
        tissue_labels=tumour.astype(np.int32),
        vessels=[],
        probes=[ProbePlacement("17g-rod", np.array([0, 0, 5.0]), np.array([0, 0, 1.0]))],
        protocol_text="freeze:10",
        margin_mask=margin,
        lesion_masks=[tumour],
        margin_mm=3.0,
        lethal_isotherm_c=-20.0,
        tip_sigma_mm=2.0,
        direction_sigma_deg=2.0,
        perfusion_log_sd=calibrated_perfusion_log_sd(),
    )


@pytest.mark.parametrize("samples, workers", [(1, 4), (4, 1), (5, 2), (50, 2), (64, 3), (7, 16)])
def test_batches_cover_every_sample_once_in_order(samples, workers):
    cut = batches(samples, workers)
    assert [i for batch in cut for i in batch] == list(range(samples))
    assert all(batch for batch in cut)
    assert len(cut) <= workers * BATCHES_PER_WORKER
    sizes = [len(batch) for batch in cut]
    assert len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]  # equal batches, the last one no larger


def test_the_default_cluster_has_a_worker_per_usable_core():
    assert default_workers() == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_monte_carlo_on_a_local_cluster_is_seeded(context):
    """The same seed gives the same samples whatever the workers and hence the batches (5 samples: batches
    of 2 on one worker, of 1 on two)."""
    reports = []
    two = monte_carlo(context, 5, seed=7, workers=2, progress=lambda label, fraction: reports.append((label, fraction)))
    one = monte_carlo(context, 5, seed=7, workers=1)
    assert two.workers == 2 and one.workers == 1
    np.testing.assert_array_equal(two.margin_covered_pct, one.margin_covered_pct)
    np.testing.assert_array_equal(two.margin_met, one.margin_met)
    assert two.probability_of_success == np.mean(two.margin_met)
    # the interval is Wilson's for the successes among the 5 samples (its values: test_the_wilson_interval_...)
    low, high = two.interval
    assert (low, high) == wilson_interval(int(np.sum(two.margin_met)), 5)
    assert two.to_dict()["probability_interval_95"] == [round(low, 4), round(high, 4)]
    np.testing.assert_array_equal(two.probability.array, one.probability.array)
    probability = two.probability.array
    # each voxel's probability is the share of the 5 samples lethal there: k / 5 …
    shares = np.rint(probability * 5)
    assert set(np.unique(shares)) <= set(range(6))
    np.testing.assert_allclose(probability, shares / 5, atol=1e-6)
    # … so over tumour + margin the map's mean is the samples' mean coverage
    assert 100 * np.mean(probability[context.margin_mask]) == pytest.approx(np.mean(two.margin_covered_pct), rel=1e-5)
    # next to the probe's active zone every sample is lethal; far away none is
    index = np.rint(context.grid.index_of(np.array([0, 0, -8.0]))).astype(int)
    assert probability[tuple(index)] == 1.0
    assert probability[0, 0, 0] == 0.0
    assert two.to_dict()["samples"] == 5
    # the progress: a label, then the fraction done after each batch, ending at 1
    assert reports[0][0].startswith("uncertainty: 5 samples on 2 Dask workers") and reports[0][1] == 0.0
    fractions = [f for label, f in reports[1:] if label is None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == len(batches(5, 2))


@pytest.mark.parametrize(("lethal_radius_mm", "met"), [(8.6, True), (7.0, False)])
def test_a_sample_succeeds_by_the_margin_rule_not_by_coverage(context, lethal_radius_mm, met):
    """On a 1 mm grid a lethal sphere about a 5 mm tumour leaves a margin of its radius less 5 mm: met within
    the 0.5 mm tolerance at 8.6 mm (3.6 mm, 3 mm asked) and not at 7 mm (2 mm), whatever its coverage."""
    grid = Grid.around(np.array([[0, 0, 0.0]]), 12.0, 1.0)
    centres = grid.centres_mm()
    radius = np.linalg.norm(centres, axis=-1)
    fine = replace(context, grid=grid, lesion_masks=[radius <= 5.0], margin_mask=radius <= 8.0)
    assert margin_succeeds(fine, sample_margin_mm(fine, radius <= lethal_radius_mm)) is met
    # shifted 2 mm, the 8.6 mm sphere still covers almost 90 % of tumour + margin but leaves its far side 1.6 mm
    # from the tumour: no longer a success
    shifted = np.linalg.norm(centres - [0, 0, 2.0], axis=-1) <= 8.6
    assert np.mean(shifted[fine.margin_mask]) > 0.85 and not margin_succeeds(fine, sample_margin_mm(fine, shifted))


@pytest.mark.slow
def test_an_unreachable_scheduler_is_an_input_error(context):
    with pytest.raises(InputError, match="scheduler"):
        monte_carlo(context, 1, scheduler="tcp://127.0.0.1:9")
