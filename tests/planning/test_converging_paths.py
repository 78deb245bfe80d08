"""Converging probe paths (`PlanSettings.paths = "converging"`, `cryoplan plan --paths converging`).

A tumour behind a bony cage with one narrow window (`window_phantom.py`): parallel probes cannot pass the
window together, so the planner keeps the one probe that can and flags its shortfall; converging probes enter
through it, diverge towards their tips, and the full simulation of the plan covers tumour + 5 mm. A window
too narrow for any probe is refused, naming the lesion. Plus the geometry the option rests on (segment
distances, spacing rules) and the soundness of chart-based scoring for non-parallel probes, checked
against the engine. Coarse settings (2 mm grids, one probe type, up to 3 probes) keep the CI time down.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
from support.window_phantom import LABEL_MAP, in_bone, window_phantom

from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import anatomy_from_labels
from cryoplan.imaging.io import write_nifti
from cryoplan.planning.anatomy import planning_anatomy
from cryoplan.planning.charts import isotherm_chart
from cryoplan.planning.paths import PathMap, ranked_directions
from cryoplan.planning.pipeline import plan_case
from cryoplan.planning.search import (
    ProbePlan,
    build_target,
    converging_spacing_ok,
    estimate,
    search_candidates,
)
from cryoplan.planning.settings import PlanSettings
from cryoplan.thermal import TISSUES, Grid, get_probe, simulate
from cryoplan.thermal.probes import segment_distance_mm

COARSE = PlanSettings(
    paths="parallel",  # the control; the converging tests replace it (the default, "any", tries both)
    probe_types=("17g-rod",),
    freeze_minutes=(10.0, 15.0),
    grid_mm=2.0,
    chart_grid_mm=2.0,
    max_probes=3,
    max_full_simulations=3,
    # The window phantom's geometry is drawn for paths 2 mm from its bone (the default keeps 3 mm).
    clearances_mm={"bone": 2.0},
)
ROD = get_probe("17g-rod")


# ------------------------------------------------------------------------------------------ geometry


def dense_segment_distance(p0, p1, q0, q1, samples=4001):
    """Brute force: sample the first segment densely, project each sample on the second."""
    p = p0 + np.linspace(0, 1, samples)[:, None] * (p1 - p0)
    v = q1 - q0
    s = np.clip(((p - q0) @ v) / (v @ v), 0, 1)[:, None]
    return float(np.linalg.norm(p - (q0 + s * v), axis=1).min())


def test_segment_distance_matches_brute_force():
    rng = np.random.default_rng(5)
    cases = [rng.normal(0, 20, (4, 3)) for _ in range(25)]
    p0, p1 = np.zeros(3), np.array([0.0, 0.0, 50.0])
    cases += [
        (p0, p1, p0 + [3, 0, 10], p1 + [3, 0, 10]),  # parallel, overlapping: 3 mm
        (p0, p1, p0 + [4, 0, 60], p1 + [4, 0, 60]),  # parallel, end to end: |(4, 0, 10)|
        (p0, p1, np.array([-5.0, 2, 25]), np.array([5.0, 2, 25])),  # crossing at right angles: 2 mm
    ]
    for p0, p1, q0, q1 in cases:
        exact = segment_distance_mm(p0, p1, q0, q1)
        assert exact == pytest.approx(dense_segment_distance(p0, p1, q0, q1), abs=0.05)
        assert exact <= dense_segment_distance(p0, p1, q0, q1) + 1e-9
    assert segment_distance_mm(*cases[-3]) == pytest.approx(3.0)
    assert segment_distance_mm(*cases[-2]) == pytest.approx(np.hypot(4.0, 10.0))
    assert segment_distance_mm(*cases[-1]) == pytest.approx(2.0)
    point = np.array([3.0, 4.0, 20.0])  # a degenerate second segment: the distance from a point
    assert segment_distance_mm(p0, p1, point, point) == pytest.approx(5.0)
    assert segment_distance_mm(point, point, point, point) == 0.0


def converging_pair(entry_spacing_mm, centre_spacing_mm, path_mm=60.0):
    """Two 17G rods entering `entry_spacing_mm` apart at z = −`path_mm` and passing active-zone centres
    `centre_spacing_mm` apart at z = 0 (insertion along +z)."""
    probes = []
    for side in (-0.5, 0.5):
        entry = np.array([side * entry_spacing_mm, 0.0, -path_mm])
        centre = np.array([side * centre_spacing_mm, 0.0, 0.0])
        direction = (centre - entry) / np.linalg.norm(centre - entry)
        tip = centre + direction * (ROD.tip_offset_mm + ROD.active_length_mm / 2)
        probes.append(ProbePlan("17g-rod", tip, direction, entry))
    return probes


def test_converging_spacing_rules():
    settings = PlanSettings()  # spacing 10–20 mm
    assert converging_spacing_ok(converging_pair(4.0, 15.0), settings)
    # proximal ends of the active zones 8.8 mm apart: too close where they freeze
    assert not converging_spacing_ok(converging_pair(4.0, 10.0), settings)
    # tips 21.8 mm apart: too far for the ice balls to merge
    assert not converging_spacing_ok(converging_pair(8.0, 19.0), settings)
    # entries 2 mm apart: 0.53 mm between the shafts, less than a diameter (1.47 mm)
    assert not converging_spacing_ok(converging_pair(2.0, 15.0), settings)
    assert converging_spacing_ok(converging_pair(3.0, 15.0), settings)  # 1.53 mm between the shafts


def test_settings_name_the_path_option():
    with pytest.raises(InputError, match="paths"):
        PlanSettings(paths="crossing").check()
    with pytest.raises(InputError, match="entry_radius_mm"):
        PlanSettings(paths="converging", entry_radius_mm=0.0).check()


# ------------------------------------------------------------------------------------------ chart scoring


def simulated_lethal(probes, protocol):
    """The −20 °C region of the probes simulated in homogeneous liver, and the grid's centres (LPS)."""
    tips = np.array([p.tip_lps_mm for p in probes])
    directions = np.array([p.direction for p in probes])
    grid = Grid.around(np.vstack([tips, tips - directions * 30.0]), 25.0, 2.0)
    result = simulate(grid, [p.placement() for p in probes], protocol, tissues=TISSUES["liver"])
    return result.min_temperature_c.reshape(-1) <= -20.0, grid.centres_mm().reshape(-1, 3)


def lethal_agreement(simulated, points, chart, tips, directions):
    """(Dice of the −20 °C regions, relative −20 °C volume error) of the chart estimate for probes ending
    at `tips` and read along `directions` against the simulated region."""
    estimated = estimate(chart, tips, directions, points) <= -20.0
    dice = 2 * np.sum(simulated & estimated) / (simulated.sum() + estimated.sum())
    return float(dice), float(abs(estimated.sum() / simulated.sum() - 1))


def chart_agreement() -> dict[str, tuple[float, float]]:
    """Agreement of the chart estimate with the engine for 17g-rods 16 mm apart at their active zones, 10 min
    double freeze: a parallel pair, and a pair entering 4 mm apart 40 mm back (8.5° each way) read per probe
    and read along its mid-axis. The README quotes these (run this module's function to reproduce them)."""
    protocol = COARSE.protocol(10.0)
    chart = isotherm_chart("17g-rod", str(protocol), COARSE.chart_grid_mm)
    parallel = converging_pair(16.0, 16.0, path_mm=40.0)
    converging = converging_pair(4.0, 16.0, path_mm=40.0)
    tips = np.array([p.tip_lps_mm for p in converging])
    directions = np.array([p.direction for p in converging])
    mid_axis = directions.mean(axis=0) / np.linalg.norm(directions.mean(axis=0))
    simulated, points = simulated_lethal(converging, protocol)
    return {
        "parallel": lethal_agreement(
            *simulated_lethal(parallel, protocol),
            chart,
            np.array([p.tip_lps_mm for p in parallel]),
            parallel[0].direction,
        ),
        "converging, per probe": lethal_agreement(simulated, points, chart, tips, directions),
        "converging, along the mid-axis": lethal_agreement(simulated, points, chart, tips, mid_axis),
    }


def test_chart_scores_converging_probes_as_well_as_parallel_ones():
    agreement = chart_agreement()
    parallel_dice, parallel_error = agreement["parallel"]
    dice, error = agreement["converging, per probe"]
    # as good as on the parallel pair the chart's combination was fitted on
    assert dice >= parallel_dice - 0.02
    assert error <= parallel_error + 0.02
    # and reading each probe in its own frame matters: treating them as parallel along the mid-axis is worse
    assert dice > agreement["converging, along the mid-axis"][0] + 0.01


# ------------------------------------------------------------------------------------------ the window


@pytest.fixture(scope="module")
def phantom():
    return window_phantom()


@pytest.fixture(scope="module")
def converging_plan(phantom):
    return plan_case(phantom, settings=replace(COARSE, paths="converging"))


@pytest.mark.slow
def test_parallel_paths_cannot_pass_the_window(phantom):
    unit = plan_case(phantom, settings=COARSE).units[0]
    # no parallel pair passes: the one probe that does is planned, and its full simulation falls short
    assert len(unit.candidate.probes) == 1
    lesion = unit.coverage.lesions[0]
    assert not lesion.margin_met and lesion.margin_covered_pct < 99.0
    assert "coverage_shortfall" in {r.code for r in unit.coverage.risks}


def test_a_window_too_narrow_for_one_probe_is_refused():
    # one probe's axis needs 5.5 mm of window (its radius and 2 mm of clearance to either side)
    with pytest.raises(InputError, match="lesions.L1: .*bone"):
        plan_case(window_phantom(4.0), settings=COARSE)


def feasible_pairs(phantom, settings):
    """Every two-probe layout whose paths are feasible, whatever its estimated coverage."""
    anatomy, _ = planning_anatomy(phantom.ct, anatomy_from_labels(phantom.labels, None, phantom.label_map))
    path_map = PathMap.build(anatomy, settings)
    target = build_target(anatomy, ["L1"], settings.margin_mm)
    directions = ranked_directions(
        path_map, target.centre, settings, ROD.radius_mm, ROD.active_length_mm / 2 + ROD.tip_offset_mm
    )
    return search_candidates(
        target, path_map, replace(settings, coverage_target_pct=0.0, max_probes=2), directions, min_probes=2
    )


def test_the_window_decides_which_paths_are_feasible(phantom):
    assert feasible_pairs(phantom, COARSE) == []
    converging = feasible_pairs(phantom, replace(COARSE, paths="converging"))
    assert converging
    for candidate in converging:
        assert candidate.probes[0].direction @ candidate.probes[1].direction < 0.999  # not parallel
    # the control: a 24 mm window leaves room for parallel pairs up to 18.5 mm apart
    wide = 24.0
    parallel = feasible_pairs(window_phantom(wide), COARSE)
    assert parallel
    for candidate in parallel:
        np.testing.assert_allclose(candidate.probes[0].direction, candidate.probes[1].direction, atol=1e-12)
        for probe in candidate.probes:
            axis = probe.entry_lps_mm + np.linspace(0, 1, 400)[:, None] * (probe.tip_lps_mm - probe.entry_lps_mm)
            assert not in_bone(axis, wide).any()


@pytest.mark.slow
def test_converging_paths_pass_the_window_and_cover_the_margin(converging_plan):
    unit = converging_plan.units[0]
    lesion = unit.coverage.lesions[0]
    # the plan's criterion on the full simulation: the lethal zone reaches the margin everywhere
    assert lesion.margin_met, unit.simulations
    assert "coverage_shortfall" not in {r.code for r in unit.coverage.risks}
    probes = unit.candidate.probes
    assert len(probes) >= 2  # one probe cannot cover 24 mm, and two parallel ones cannot pass the window
    entries = np.array([p.entry_lps_mm for p in probes])
    tips = np.array([p.tip_lps_mm for p in probes])
    # one small skin entry region, the probes diverging from it
    hub = entries.mean(axis=0)
    assert np.linalg.norm(entries - hub, axis=1).max() <= COARSE.entry_radius_mm
    entry_gaps = np.linalg.norm(entries[:, None] - entries[None], axis=-1)[np.triu_indices(len(probes), 1)]
    tip_gaps = np.linalg.norm(tips[:, None] - tips[None], axis=-1)[np.triu_indices(len(probes), 1)]
    assert np.all(tip_gaps > entry_gaps)
    assert tip_gaps.min() >= 10.0
    assert converging_spacing_ok(probes, COARSE)
    for probe in probes:
        # a straight segment from the entry to the tip, inserted along its direction
        along = (probe.tip_lps_mm - probe.entry_lps_mm) / np.linalg.norm(probe.tip_lps_mm - probe.entry_lps_mm)
        np.testing.assert_allclose(along, probe.direction, atol=1e-6)
        # nowhere through the analytic bone: the axis and the shaft's surface, every 0.2 mm
        t = np.linspace(0, 1, int(np.linalg.norm(probe.tip_lps_mm - probe.entry_lps_mm) / 0.2))[:, None]
        axis = probe.entry_lps_mm + t * (probe.tip_lps_mm - probe.entry_lps_mm)
        e1 = np.cross(probe.direction, [1.0, 0, 0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(probe.direction, e1)
        for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            surface = axis + ROD.radius_mm * (np.cos(angle) * e1 + np.sin(angle) * e2)
            assert not in_bone(surface).any()
        assert not in_bone(axis).any()


def write_case(phantom, folder):
    write_nifti(phantom.ct, folder / "ct.nii.gz")
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    case = {
        "schema_version": 1,
        "diagnosis": {"type": "hcc"},
        "imaging": {"image": "ct.nii.gz", "labels": "labels.nii.gz", "labels_map": LABEL_MAP},
    }
    (folder / "case.json").write_text(json.dumps(case))
    return folder / "case.json"


@pytest.fixture(scope="module")
def case_file(phantom, tmp_path_factory):
    return write_case(phantom, tmp_path_factory.mktemp("window-case"))


@pytest.fixture
def plan_command(cryoplan_cli):
    """``cryoplan plan CASE -o OUT`` at coarse settings, with OPTIONS, in this process;
    `tests/cli/test_console_script.py` runs the installed script."""
    return lambda case_file, out, *options: cryoplan_cli(*plan_arguments(case_file, out, *options))


def plan_arguments(case_file, out, *options):
    return [
        "plan",
        case_file,
        "-o",
        out,
        "--probe-types",
        "17g-rod",
        "--grid-mm",
        "2",
        "--max-probes",
        "3",
        # as in COARSE: the window is drawn for paths 2 mm from the bone
        "--clearance",
        "bone=2",
        *options,
    ]


@pytest.mark.slow
def test_plan_command_flags_the_one_parallel_probe_and_refuses_a_closed_window(case_file, tmp_path, plan_command):
    out = tmp_path / "plan"
    result = plan_command(case_file, out, "--paths", "parallel", "--format", "json")
    assert result.returncode == 0, result.stderr
    lesion = json.loads(result.stdout)["lesions"][0]
    assert len(lesion["probes"]) == 1
    assert not lesion["coverage"]["margin_met"] and lesion["coverage"]["margin_covered_pct"] < 99.0
    assert "coverage_shortfall" in {r["code"] for r in lesion["risks"]}
    closed = write_case(window_phantom(4.0), tmp_path)
    out = tmp_path / "closed"
    result = plan_command(closed, out, "--paths", "parallel")
    assert result.returncode == 2, result.stderr
    # the progress bar is transient: the error is the one line on stderr, without a traceback
    errors = [line for line in result.stderr.splitlines() if line.startswith("cryoplan: error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines() == errors
    assert "Traceback" not in result.stderr
    assert "lesions.L1" in errors[0] and "bone" in errors[0]
    assert not out.exists()
    result = plan_command(case_file, out, "--paths", "sideways")
    assert result.returncode == 2 and "--paths" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_plan_command_plans_converging_paths(case_file, tmp_path, plan_command):
    out = tmp_path / "plan"
    result = plan_command(case_file, out, "--paths", "converging", "--format", "json")
    assert result.returncode == 0, result.stderr
    lesion = json.loads(result.stdout)["lesions"][0]
    assert lesion["coverage"]["margin_met"]
    assert "coverage_shortfall" not in {r["code"] for r in lesion["risks"]}
    entries = np.array([p["entry_lps_mm"] for p in lesion["probes"]])
    directions = np.array([p["direction"] for p in lesion["probes"]])
    assert len(entries) >= 2
    assert np.linalg.norm(entries - entries.mean(axis=0), axis=1).max() <= 15.0
    assert directions[0] @ directions[1] < 0.999  # not parallel
    assert json.loads((out / "plan.json").read_text())["lesions"][0]["probes"] == lesion["probes"]
