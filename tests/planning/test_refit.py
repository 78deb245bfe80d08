"""Verification with the simulation re-fitted to the observed ice ball.

The intraprocedural CT is made from a simulation: two 17G rod probes at a known flow fraction freeze the
synthetic liver of `planning_synthetic` beside its vessel (a heat sink; finer grid than the fit's), the
final 0 °C isotherm is rendered as ice on CT with noise and metal probes, and the patient is moved by a
known rigid transform. The known
lethal margin is measured on that simulation's −20 °C isosurface (marching cubes, sub-voxel), not on a
voxel mask.
"""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from support.planning_synthetic import TUMOUR_CENTRE, grid_affine, liver_of, render_ct, volume_points

from cryoplan.imaging.io import write_nifti
from cryoplan.imaging.volume import Volume
from cryoplan.planning.margins import verify_margins
from cryoplan.planning.refit import (
    LOWEST_FLOW_FRACTION,
    MIN_ICE_DICE,
    dice,
    equivalent_radius_mm,
    fit_flow_fraction,
    scan_protocol,
    sphere_volume_ml,
)
from cryoplan.thermal import TISSUES, Grid, ProbePlacement, Vessel, parse_protocol, simulate

TRUE_FLOW_FRACTION = 0.7
# Small enough that the pair's ice edge (≈ 11 mm beyond the nearer rod at this flow) clears a 5 mm margin
# while its −20 °C isotherm (≈ 3.4 mm behind the edge) does not.
TUMOUR_RADIUS_MM = 5.0
PROTOCOL = "freeze:10,passive_thaw:5,freeze:10"
ROTATION_DEG = (3.0, -2.0, 5.0)
TRANSLATION_MM = (4.0, -3.0, 2.0)
DIRECTION = np.array([0.0, 0.0, 1.0])


def tip_for_centre(centre_mm, direction=DIRECTION, probe_id="17g-rod"):
    """The tip of a probe along `direction` whose cooled segment (`ProbePlacement.active_segment_mm`: the
    active zone and the cooled shaft behind it, about whose middle the ice ball forms) is centred on
    `centre_mm`."""
    at_origin = ProbePlacement(probe_id, np.zeros(3), direction)
    middle = 0.5 * (at_origin.active_segment_mm()[0] + at_origin.active_segment_mm()[1])
    return np.asarray(centre_mm, dtype=float) - middle


# Two rods entering from below (along +z), 10 mm apart, their cooled segments centred level with the tumour
# centre, one through it and one 10 mm to the patient's left, so that the lethal margin is thinnest on the
# right.
TIPS = [tip_for_centre(TUMOUR_CENTRE + [dx, 0.0, 0.0]) for dx in (0.0, 10.0)]
# The vessel of `planning_synthetic.render_ct` (along z through x = −5, y = −20 mm, 10 mm wide).
VESSEL_AXIS_POINT = np.array([-5.0, -20.0, 0.0])
VESSEL_DIAMETER_MM = 10.0


def probe_placements(flow_fraction=1.0):
    return [ProbePlacement("17g-rod", tip, DIRECTION, flow_fraction) for tip in TIPS]


@pytest.fixture(scope="module")
def procedure():
    """Pre-procedural CT, tumour and vessel segmentations; the intraprocedural CT made from a 1.5 mm
    simulation at the known flow fraction, the synthetic patient's 10 mm vessel (2.5 mm from the ice edge) a
    heat sink, its 37 °C bath 40 mm from the probes where the ice no longer feels it, seen through
    x_pre = R x_intra + t; the known ice and lethal margins."""
    probes = probe_placements(TRUE_FLOW_FRACTION)
    points = [p for placement in probes for p in (placement.tip_mm, *placement.active_segment_mm())]
    grid = Grid.around(points, 40.0, 1.5)
    truth = simulate(
        grid,
        probes,
        parse_protocol(PROTOCOL),
        tissues=TISSUES["liver"],
        isotherms_c=(0.0, -20.0),
        vessels=[Vessel.cylinder(grid, VESSEL_AXIS_POINT, (0.0, 0.0, 1.0), VESSEL_DIAMETER_MM)],
    )
    rng = np.random.default_rng(3)
    shape, spacing = (110, 100, 72), (1.0, 1.0, 1.5)
    affine = grid_affine(shape, spacing, centre=(-15.0, 0.0, 5.0))
    pre_points = volume_points(shape, affine)
    pre = render_ct(pre_points, tumour_radius_mm=TUMOUR_RADIUS_MM) + rng.normal(0, 10.0, shape).astype(np.float32)
    tumour = np.sum((pre_points - TUMOUR_CENTRE) ** 2, axis=-1) <= TUMOUR_RADIUS_MM**2
    vessel = np.linalg.norm(pre_points[..., :2] - VESSEL_AXIS_POINT[:2], axis=-1) <= VESSEL_DIAMETER_MM / 2
    rotation = Rotation.from_euler("xyz", ROTATION_DEG, degrees=True).as_matrix()
    seen = pre_points @ rotation.T + np.asarray(TRANSLATION_MM)  # pre-frame point seen at each intra voxel
    intra = render_ct(seen, tumour_radius_mm=TUMOUR_RADIUS_MM)
    frozen = truth.temperature_along_c(seen.reshape(-1, 3), "final").reshape(shape) <= 0.0
    intra[frozen & (intra > -500)] = -5.0  # frozen tissue is hypodense (≈ 0 HU)
    for tip in TIPS:
        offset = seen - tip
        along = offset @ DIRECTION
        radial = np.linalg.norm(offset - along[..., None] * DIRECTION, axis=-1)
        intra[(radial <= 0.8) & (along <= 0) & (intra > -500)] = 2000.0
    intra += rng.normal(0, 10.0, shape).astype(np.float32)

    def margin_to(temperature_c, which):
        vertices, _ = truth.isotherm_surface(temperature_c, which)
        return float(np.min(np.linalg.norm(vertices - TUMOUR_CENTRE, axis=1))) - TUMOUR_RADIUS_MM

    known = {
        "ice_margin_mm": margin_to(0.0, "final"),
        "lethal_margin_mm": margin_to(-20.0, "min"),
        "ice_ml": truth.isotherm_volume_ml(0.0, "final"),
    }
    return (
        Volume(pre, affine, "CT"),
        Volume(tumour.astype(np.uint8), affine, "SEG"),
        Volume(intra, affine, "CT"),
        known,
        Volume(vessel.astype(np.uint8), affine, "SEG"),
    )


@pytest.fixture(scope="module")
def refitted(procedure):
    pre, tumour, intra, known, vessels = procedure
    report = verify_margins(
        tumour,
        intra,
        pre_image=pre,
        probes=probe_placements(),
        protocol=parse_protocol(PROTOCOL),
        vessels=vessels,
        lethal_depth_mm=3.0,
        margin_mm=5.0,
    )
    return report, known


@pytest.mark.slow
def test_the_fit_recovers_the_flow_fraction_and_the_lethal_margin(refitted):
    report, known = refitted
    assert report.registration.converged
    assert report.lethal_zone_method == "refitted_simulation"
    fit = report.fit
    assert fit.accepted and fit.parameter == "flow_fraction" and fit.vessel_count == 1
    # Tolerance: near f = 0.3 the equivalent radius of this pair's ice (≈ 18 mm) grows by 0.55 mm per 0.1
    # of flow fraction (17.68, 17.95 and 18.23 mm simulated at 0.25, 0.30 and 0.35 with the vessel on the
    # 2 mm grid), so ±0.05 is what an error of ±0.28 mm, under a third of a CT voxel, in the segmented ice
    # edge would explain.
    assert fit.value == pytest.approx(TRUE_FLOW_FRACTION, abs=0.05)
    assert fit.ice_dice >= 0.9
    assert fit.observed_ice_ml == pytest.approx(known["ice_ml"], rel=0.05)
    assert 3 <= fit.simulations <= 10
    assert report.ice_min_margin_mm == pytest.approx(known["ice_margin_mm"], abs=1.0)
    assert report.lethal_min_margin_mm == pytest.approx(known["lethal_margin_mm"], abs=1.0)
    # the lethal zone lies inside the observed ice and short of its edge
    assert report.lethal.any() and not np.any(report.lethal & ~report.ice)
    assert report.lethal_min_margin_mm < report.ice_min_margin_mm - 2.0
    document = report.to_dict()
    assert document["lethal_zone_method"] == "refitted_simulation"
    assert document["fit"]["parameter"] == "flow_fraction" and document["fit"]["simulations"] == fit.simulations
    assert document["lethal_depth_behind_ice_edge_mm"] is None


@pytest.mark.slow
def test_the_verdict_follows_the_refitted_lethal_margin(refitted):
    report, known = refitted
    assert known["lethal_margin_mm"] < 5.0 < known["ice_margin_mm"]
    # the ice edge clears 5 mm; the lethal isotherm of the refitted simulation does not
    assert report.verdict == "insufficient"
    # the probes sit to the patient's left of the tumour: the margin falls short on its right
    assert report.where[0]["side"].startswith("right")
    assert report.where[0]["lethal_margin_mm"] < 5.0


def test_without_probe_directions_the_lethal_zone_is_the_eroded_ice():
    tumour, ct, ice = _same_frame(20.0)
    report = verify_margins(tumour, ct, ice=ice, probe_tips_lps=np.zeros((1, 3)), lethal_depth_mm=4.0)
    assert report.lethal_zone_method == "erosion" and report.fit is None
    assert report.lethal_min_margin_mm == pytest.approx(20.0 - 8.0 - 4.0, abs=1.0)
    assert report.to_dict()["lethal_depth_behind_ice_edge_mm"] == 4.0


def _same_frame(ice_radius_mm, ice_centre_mm=(0.0, 0.0, 0.0), spacing_mm=2.0):
    """An 80 mm cube in one frame: a tumour of 8 mm at the origin, a spherical ice mask, liver-like CT."""
    shape = (round(80 / spacing_mm),) * 3
    affine = grid_affine(shape, (spacing_mm,) * 3)
    points = volume_points(shape, affine)
    tumour = np.linalg.norm(points, axis=-1) <= 8.0
    ice = np.linalg.norm(points - np.asarray(ice_centre_mm), axis=-1) <= ice_radius_mm
    ct = np.where(ice, 0.0, 60.0).astype(np.float32)
    return (Volume(tumour.astype(np.uint8), affine), Volume(ct, affine, "CT"), Volume(ice.astype(np.uint8), affine))


def _rod_at(centre):
    return ProbePlacement("17g-rod", tip_for_centre(centre), DIRECTION)


def test_an_ice_ball_out_of_the_probes_reach_is_flagged_not_used():
    tumour, ct, ice = _same_frame(36.0)
    report = verify_margins(
        tumour,
        ct,
        ice=ice,
        probes=[_rod_at((0.0, 0.0, 0.0))],
        lethal_depth_mm=5.0,
        protocol=parse_protocol("freeze:10"),
    )
    assert report.fit is not None and not report.fit.accepted
    assert "larger than the probes make at full flow" in report.fit.failure
    assert report.fit.value == 1.0 and report.fit.simulations == 1
    assert report.lethal_zone_method == "erosion"
    assert report.verdict == "unverified"
    assert any("re-fit not used" in reason for reason in report.reasons)
    assert report.to_dict()["fit"]["accepted"] is False


def test_an_ice_ball_away_from_the_probes_is_flagged_by_its_dice():
    # a single rod's ice ball after 10 min at full flow is 14.8 ml (15.2 mm in equivalent radius); the
    # observed one, 13 mm in radius, is within its reach but centred 22 mm away from the probe
    tumour, ct, ice = _same_frame(13.0, ice_centre_mm=(22.0, 0.0, 0.0))
    report = verify_margins(
        tumour,
        ct,
        ice=ice,
        probes=[_rod_at((0.0, 0.0, 0.0))],
        lethal_depth_mm=5.0,
        protocol=parse_protocol("freeze:10"),
    )
    fit = report.fit
    assert not fit.accepted and fit.ice_dice < MIN_ICE_DICE and "Dice" in fit.failure
    # the volume was matched all the same: the failure is the overlap, not the size
    assert equivalent_radius_mm(fit.simulated_ice_ml) == pytest.approx(
        equivalent_radius_mm(fit.observed_ice_ml), abs=0.3
    )
    assert report.verdict == "unverified" and report.lethal_zone_method == "erosion"


def test_fit_helpers():
    assert sphere_volume_ml(equivalent_radius_mm(80.0)) == pytest.approx(80.0)
    a = np.zeros((4, 4, 4), bool)
    a[:2] = True
    b = np.zeros_like(a)
    b[1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert (
        str(scan_protocol(parse_protocol("freeze:10,passive_thaw:5,freeze:8,passive_thaw:3")))
        == "freeze:10,passive_thaw:5,freeze:8"
    )
    assert 0 < LOWEST_FLOW_FRACTION < TRUE_FLOW_FRACTION


def test_bad_refit_inputs():
    from cryoplan.errors import InputError

    tumour, ct, ice = _same_frame(15.0)
    with pytest.raises(InputError, match="protocol"):
        scan_protocol(parse_protocol("passive_thaw:5"))
    with pytest.raises(InputError, match="ice"):
        fit_flow_fraction(
            ice.with_array(np.zeros(ice.shape, np.uint8)), [_rod_at((0, 0, 0))], parse_protocol("freeze:5")
        )
    with pytest.raises(InputError, match="grid_mm"):
        fit_flow_fraction(ice, [_rod_at((0, 0, 0))], parse_protocol("freeze:5"), grid_mm=10.0)
    with pytest.raises(InputError, match="lethal_isotherm_c"):
        verify_margins(tumour, ct, ice=ice, probes=[_rod_at((0, 0, 0))], lethal_depth_mm=3.0, lethal_isotherm_c=5.0)


@pytest.mark.slow
def test_verify_cli_refits_with_a_plan_and_its_case(procedure, tmp_path):
    pre, tumour, intra, known, vessels = procedure
    liver = tumour.with_array(liver_of(volume_points(pre.shape, pre.affine)).astype(np.uint8))
    for name, volume in (("pre", pre), ("tumour", tumour), ("intra", intra), ("vessels", vessels), ("liver", liver)):
        write_nifti(volume, tmp_path / f"{name}.nii.gz")
    plan = {
        "schema_version": 1,
        "lesions": [
            {
                "id": "L1",
                "protocol": [
                    {"phase": phase.kind, "minutes": phase.minutes} for phase in parse_protocol(PROTOCOL).phases
                ],
                "probes": [{"type": "17g-rod", "tip_lps_mm": list(tip), "direction": list(DIRECTION)} for tip in TIPS],
            }
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "case.yaml").write_text(
        "schema_version: 1\ndiagnosis: {type: hcc}\nimaging:\n  image: pre.nii.gz\n"
        "  masks: {liver: liver.nii.gz, tumour: tumour.nii.gz, hepatic_vein: vessels.nii.gz}\n"
    )
    images = [
        "--tumour",
        tmp_path / "tumour.nii.gz",
        "--pre-image",
        tmp_path / "pre.nii.gz",
        "--intra-image",
        tmp_path / "intra.nii.gz",
        "--probes",
        tmp_path / "plan.json",
    ]
    out = tmp_path / "verify"
    result = run_cli("verify", *images, "--case", tmp_path / "case.yaml", "--lethal-depth-mm", "3", "-o", out)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == json.loads((out / "margins.json").read_text())
    assert document["schema_version"] == 1 and document["registration"]["converged"] is True
    assert document["lethal_zone_method"] == "refitted_simulation" and document["lethal_depth_source"] is None
    assert document["fit"]["parameter"] == "flow_fraction" and document["fit"]["accepted"] is True
    assert document["fit"]["value"] == pytest.approx(TRUE_FLOW_FRACTION, abs=0.05)
    assert document["fit"]["protocol"] == PROTOCOL and document["fit"]["vessels"] == 1
    assert document["lethal_min_margin_mm"] == pytest.approx(known["lethal_margin_mm"], abs=1.0)
    assert document["verdict"] == "insufficient"
    # a case whose image is not the pre-procedural image is refused before anything is written
    small = Volume(np.ones((8, 8, 8), np.int16), np.eye(4), "CT")
    write_nifti(small, tmp_path / "other.nii.gz")
    (tmp_path / "other.yaml").write_text(
        "schema_version: 1\ndiagnosis: {type: hcc}\nimaging:\n  image: other.nii.gz\n  masks: {tumour: other.nii.gz}\n"
    )
    result = run_cli("verify", *images, "--case", tmp_path / "other.yaml", "-o", tmp_path / "never")
    assert result.returncode == 2 and "--case" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_vessels_are_heat_sinks_of_the_refit():
    """Ice made by a rod at flow fraction 0.3 in a 10 min freeze beside a 6 mm vessel 7 mm away: fitted with
    the vessel the flow fraction is recovered; fitted without it, the heat sink is mistaken for weaker
    cooling."""
    tumour, ct, _ = _same_frame(10.0, spacing_mm=1.0)
    rod = _rod_at((0.0, 0.0, 0.0))
    grid = Grid.around([rod.tip_mm, *rod.active_segment_mm()], 30.0, 1.5)
    made = simulate(
        grid,
        [replace(rod, flow_fraction=0.3)],
        parse_protocol("freeze:10"),
        tissues=TISSUES["liver"],
        vessels=[Vessel.cylinder(grid, (7.0, 0.0, 0.0), (0.0, 0.0, 1.0), 6.0)],
    )
    points = volume_points(ct.shape, ct.affine)
    frozen = (made.temperature_along_c(points.reshape(-1, 3), "final") <= 0.0).reshape(ct.shape)
    ice = ct.with_array(frozen.astype(np.uint8))
    image = ct.with_array(np.where(frozen, 0.0, 60.0).astype(np.float32))
    vessel = ct.with_array((np.hypot(points[..., 0] - 7.0, points[..., 1]) <= 3.0).astype(np.uint8))
    fits = {}
    for name, vessels in (("with", vessel), ("without", None)):
        report = verify_margins(
            tumour,
            image,
            ice=ice,
            probes=[rod],
            vessels=vessels,
            protocol=parse_protocol("freeze:10"),
            lethal_depth_mm=5.0,
        )
        fits[name] = report.fit
    assert fits["with"].accepted and fits["with"].vessel_count == 1
    assert fits["with"].value == pytest.approx(0.3, abs=0.05)
    # without the sink the fit comes out lower by more than that tolerance, and matches the shape worse
    assert fits["without"].vessel_count == 0 and fits["without"].value < fits["with"].value - 0.05
    assert fits["without"].ice_dice < fits["with"].ice_dice


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cryoplan", *map(str, args)], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_verify_cli_bad_probes_and_protocol(tmp_path):
    out = tmp_path / "never"
    common = [
        "verify",
        "--tumour",
        tmp_path / "t.nii.gz",
        "--pre-image",
        tmp_path / "p.nii.gz",
        "--intra-image",
        tmp_path / "i.nii.gz",
        "-o",
        out,
    ]
    (tmp_path / "probes.json").write_text(
        json.dumps([{"type": "17g-rod", "tip_lps_mm": [0, 0, 0], "direction": [0, 0, 0]}])
    )
    result = run_cli(*common, "--probes", tmp_path / "probes.json")
    assert result.returncode == 2 and "--probes[0].direction" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    (tmp_path / "probes.json").write_text(json.dumps([{"type": "17g-rod", "tip_lps_mm": [0, 0, 0]}]))
    result = run_cli(*common, "--probes", tmp_path / "probes.json", "--protocol", "freeze:ten")
    assert result.returncode == 2 and "--protocol[0].minutes" in result.stderr
    assert not out.exists()
