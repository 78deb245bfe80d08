"""Plans on phantoms whose tumours and vessels are known exactly, checked by their full simulations.

Coarse settings keep the CI time down (2 mm grids, one probe type); the demo and the benchmark use the
real ones.
"""

import dataclasses
import json

import numpy as np
import pytest

from cryoplan.imaging.io import read_volume
from cryoplan.imaging.phantom import TumourSpec, demo_phantom, make_phantom
from cryoplan.planning.anatomy import large_vessel_mask
from cryoplan.planning.charts import isotherm_chart
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.search import build_target
from cryoplan.planning.settings import PlanSettings
from cryoplan.report.plan_report import write_plan_outputs
from cryoplan.thermal import get_probe
from cryoplan.thermal.calibration import validated_error_mm

# The phantom's intercostal spaces are drawn for paths 2 mm from its ribs (the default keeps 3 mm).
COARSE = PlanSettings(
    probe_types=("17g-rod",),
    freeze_minutes=(10.0, 15.0),
    grid_mm=2.0,
    chart_grid_mm=2.0,
    max_full_simulations=3,
    clearances_mm={"bone": 2.0},
)
# Segment 8, the point of the phantom's right lobe farthest from its vessels and ducts (23 mm).
CENTRE = (-35.0, -10.0, 35.0)


def segment_to_segment_mm(p0, p1, q0, q1, samples=400):
    """Smallest distance between two segments (dense sampling of the first, exact projection on the second)."""
    t = np.linspace(0, 1, samples)[:, None]
    points = p0 + t * (p1 - p0)
    d = q1 - q0
    s = np.clip(((points - q0) @ d) / (d @ d), 0, 1)[:, None]
    return float(np.linalg.norm(points - (q0 + s * d), axis=1).min())


def assert_paths_clear_of_large_vessels(plan, phantom):
    for unit in plan.units:
        for probe in unit.candidate.probes:
            for tube in phantom.tubes:
                if tube.structure == "bile_duct" or tube.diameter_mm >= 3.0:
                    gap = segment_to_segment_mm(
                        probe.tip_lps_mm, probe.entry_lps_mm, np.array(tube.start_mm), np.array(tube.end_mm)
                    )
                    assert gap > tube.diameter_mm / 2, (probe, tube)


# The large tumour needs four 17G rods: tumour + 5 mm is 34 mm across, and four rods 10 min cover it with 6 mm
# of lethal margin to spare on the full simulation (a 30 mm tumour stays at 97 % of its margin after 15 min).
LARGE_MM = 24.0


@pytest.fixture(scope="module")
def small_and_large():
    plans = {}
    for diameter in (12.0, LARGE_MM):
        phantom = make_phantom([TumourSpec(CENTRE, diameter)], spacing_mm=2.0, seed=1)
        plans[diameter] = (phantom, plan_case(phantom, settings=COARSE))
    return plans


@pytest.mark.slow
def test_full_simulation_covers_tumour_and_margin(small_and_large):
    for diameter, (phantom, plan) in small_and_large.items():
        lesion = plan.units[0].coverage.lesions[0]
        assert lesion.margin_covered_pct >= 99.0, (diameter, plan.units[0].simulations)
        assert lesion.tumour_covered_pct == 100.0
        assert lesion.min_margin_mm > 0
        assert_paths_clear_of_large_vessels(plan, phantom)


@pytest.mark.slow
def test_larger_tumours_get_more_probes(small_and_large):
    small = small_and_large[12.0][1].units[0].candidate
    large = small_and_large[LARGE_MM][1].units[0].candidate
    assert len(large.probes) > len(small.probes)
    for candidate in (small, large):
        offsets = np.array([p.tip_lps_mm for p in candidate.probes])
        if len(offsets) > 1:
            gaps = np.linalg.norm(offsets[:, None] - offsets[None], axis=-1)
            assert gaps[~np.eye(len(offsets), dtype=bool)].min() >= 10.0 - 1e-6


@pytest.fixture(scope="module")
def demo_plan(tmp_path_factory):
    phantom = demo_phantom(spacing_mm=2.0)
    out = tmp_path_factory.mktemp("demo") / "plan"
    plan = plan_case(phantom, settings=COARSE)
    write_plan_outputs(plan, out)
    return phantom, plan, out


@pytest.mark.slow
def test_tumour_beside_a_large_vessel_accounts_for_the_heat_sink(demo_plan):
    phantom, plan, _ = demo_plan
    unit = plan.units[0]
    codes = {r.code for r in unit.coverage.risks}
    assert "heat_sink" in codes  # the 10 mm hepatic vein 5 mm from the tumour
    assert unit.structures["large_vessels"].any()  # simulated as a heat sink
    lesion = unit.coverage.lesions[0]
    # either the simulated plan (vessel included) reaches the target, or the shortfall is flagged
    assert lesion.margin_covered_pct >= 99.0 or "coverage_shortfall" in codes
    assert_paths_clear_of_large_vessels(plan, phantom)
    # the lumen never freezes in the simulation
    assert unit.result.min_temperature_c[unit.structures["large_vessels"]].min() > 0.0


def test_the_anatomy_derives_its_large_vessels_and_targets_once(demo_plan):
    _, plan, _ = demo_plan
    anatomy, lesion_ids = plan.anatomy, plan.units[0].lesion_ids
    calibre = PlanSettings().min_vessel_calibre_mm
    large = anatomy.large_vessels(calibre)
    assert large is anatomy.large_vessels(calibre) and not large.flags.writeable
    np.testing.assert_array_equal(large, large_vessel_mask(anatomy.vessels, anatomy.grid.spacing_mm, calibre))
    target = build_target(anatomy, lesion_ids, 5.0)
    assert target is build_target(anatomy, lesion_ids, 5.0)
    assert build_target(anatomy, lesion_ids, 7.0) is not target  # another margin, another target
    fresh = build_target(dataclasses.replace(anatomy), lesion_ids, 5.0)  # a copy derives nothing yet
    assert fresh is not target
    for name in ("tumour_points", "margin_points", "healthy_points", "critical_points"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(target, name))
        assert not getattr(target, name).flags.writeable


@pytest.mark.slow
def test_plan_outputs_follow_the_contract(demo_plan):
    _, plan, out = demo_plan
    document = json.loads((out / "plan.json").read_text())
    assert document["schema_version"] == 1
    lesion = document["lesions"][0]
    assert lesion["id"] == "L1"
    for probe in lesion["probes"]:
        assert set(probe) >= {"type", "tip_lps_mm", "direction", "entry_lps_mm"}
        assert np.linalg.norm(probe["direction"]) == pytest.approx(1.0, abs=1e-3)
    assert lesion["protocol"][0]["phase"] == "freeze"
    assert set(lesion["coverage"]) >= {
        "lethal_isotherm_c",
        "tumour_covered_pct",
        "margin_mm",
        "margin_covered_pct",
        "min_margin_mm",
        "ice_min_margin_mm",
    }
    assert lesion["coverage"]["margin_covered_pct"] == pytest.approx(
        plan.units[0].coverage.lesions[0].margin_covered_pct, abs=0.01
    )
    assert "timing_s" in document and "frozen_liver_ml" in lesion and "risks" in lesion
    # the NIfTI holds the final simulation's minimum temperature with its affine
    temperature = read_volume(out / "min_temperature.nii.gz")
    np.testing.assert_allclose(temperature.affine, plan.units[0].result.grid.affine, atol=1e-4)
    np.testing.assert_allclose(temperature.array, plan.units[0].result.min_temperature_c, atol=1e-3)
    assert (out / "report.pdf").read_bytes()[:4] == b"%PDF"
    assert "Cryoablation plan" in (out / "report.html").read_text()
    for name in document["outputs"]["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name, isotherm in zip(document["outputs"]["isotherms"], (0.0, -20.0, -40.0)):
        mask = read_volume(out / name)
        np.testing.assert_array_equal(mask.array > 0, plan.units[0].result.min_temperature_c <= isotherm)


@pytest.mark.slow
def test_isotherm_charts_come_back_from_the_disk_cache(demo_plan, chart_cache):
    protocol = str(COARSE.protocol(10.0))
    computed = isotherm_chart("17g-rod", protocol, COARSE.chart_grid_mm)
    assert list(chart_cache.glob("chart-*.npz"))
    isotherm_chart.cache_clear()
    loaded = isotherm_chart("17g-rod", protocol, COARSE.chart_grid_mm)
    np.testing.assert_array_equal(loaded.min_temperature_c, computed.min_temperature_c)
    assert loaded.combination_exponent == computed.combination_exponent
    # the chart is a cold zone around the active segment that warms with distance: on the axis colder than the
    # most demanding lethal isotherm (−40 °C) yet never below the cryogen's temperature
    middle = loaded.min_temperature_c[:, np.argmin(np.abs(loaded.axial_mm))]
    assert get_probe("17g-rod").cooling.cryogen_temperature_c <= middle[0] < -40.0
    assert middle[-1] > 30 and np.all(np.diff(middle) >= -0.5)
    lethal_radius = loaded.radial_mm[np.flatnonzero(middle <= -20.0)[-1]]
    assert 5.0 < lethal_radius < 25.0


@pytest.mark.slow
def test_the_report_states_the_models_validated_error(demo_plan):
    _, _, out = demo_plan
    document = json.loads((out / "plan.json").read_text())
    assert document["model_error_mm"] == validated_error_mm()
    animal = validated_error_mm()["animal"]
    html = (out / "report.html").read_text()
    assert (
        f"{animal['mean_abs_error_mm']:.1f} mm on average and up to\n{animal['max_abs_error_mm']:.1f} mm in animal"
        in html
    )
