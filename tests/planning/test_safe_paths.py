"""Safe probe paths on real anatomy: the CT of set 02 with synthetic tumours painted into its liver (under the
lung, beside the IVC, beside the gallbladder), cut-off images (set 02 cropped, set 03, a 5 mm-slice copy, the
MR of set 06), ice reaching other organs, and bad input on the command line.

Every planned path is checked on the ORIGINAL label map and CT, independently of the planner's own masks:
what it crosses, how far it stays from each labelled structure (voxel centres, true spacing), and that it
starts at the skin with air outside.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree
from support import set02_cases

from cryoplan.case import load_case
from cryoplan.imaging import ImagingWarning
from cryoplan.imaging.anatomy import load_anatomy
from cryoplan.imaging.body import field_of_view_warnings
from cryoplan.imaging.io import read_volume, write_nifti
from cryoplan.imaging.phantom import TumourSpec, make_phantom
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import planning_anatomy
from cryoplan.planning.organs import (
    organ_exposure,
    organ_risks,
    tissue_label_volume,
    tissue_map,
    tissue_names_on,
)
from cryoplan.planning.paths import (
    PATH_STEP_MM,
    NoSafePath,
    PathMap,
    entry_directions,
    path_angles_deg,
    ranked_directions,
    why_no_path,
)
from cryoplan.planning.pipeline import load_source, plan_case, plan_unit
from cryoplan.planning.settings import DEFAULT_CLEARANCES_MM, PlanSettings
from cryoplan.planning.simulation import resample_mask
from cryoplan.thermal import Grid, get_probe

QUICK = PlanSettings(
    probe_types=("17g-rod",),
    freeze_minutes=(10.0,),
    grid_mm=3.0,
    max_probes=4,
    max_full_simulations=1,
)
AIR_HU = -500.0


def label_names(shared_data) -> dict[int, str]:
    table = json.loads((shared_data / "totalsegmentator_labels.json").read_text(encoding="utf-8"))["total"]
    return {int(k): v for k, v in table.items()}


def structure_of(name: str) -> str | None:
    """The clearance-table structure a TotalSegmentator class belongs to (None: no clearance)."""
    for prefix, structure in (
        ("lung_", "lung"),
        ("rib_", "rib"),
        ("costal_cartilages", "costal_cartilage"),
        ("vertebrae_", "vertebra"),
        ("kidney_", "kidney"),
        ("adrenal_gland_", "adrenal"),
        ("inferior_vena_cava", "ivc"),
        ("portal_vein", "portal_vein"),
    ):
        if name.startswith(prefix):
            return structure
    return name if name in DEFAULT_CLEARANCES_MM else None


ALLOWED = ("liver", "autochthon", "iliopsoas", "gluteus")  # liver, tumour (a mask over it) and muscle


def check_path(probe: dict, ct: Volume, labels: Volume, names: dict[int, str], clearances):
    """Assert what issue-level safety means for one planned path, on the original CT and label map."""
    tip, entry = np.array(probe["tip_lps_mm"]), np.array(probe["entry_lps_mm"])
    radius = get_probe(probe["type"]).radius_mm
    length = np.linalg.norm(tip - entry)
    outward = (entry - tip) / length
    samples = entry + np.linspace(0.0, 1.0, int(length / 0.25) + 1)[:, None] * (tip - entry)
    # Starts at the skin, air outside it, inside the image.
    outside = entry + np.array([1.0, 2.0, 3.0])[:, None] * outward
    index = np.rint(ct.lps_to_index(outside)).astype(int)
    assert np.all((index >= 0) & (index < ct.shape)), "the air outside the entry lies inside the image"
    assert np.all(ct.array[tuple(index.T)] < AIR_HU), "air outside the skin entry"
    inside = samples[np.linalg.norm(samples - entry, axis=1) >= 1.0]
    index = np.rint(ct.lps_to_index(inside)).astype(int)
    assert np.all((index >= 0) & (index < ct.shape))
    assert np.all(ct.array[tuple(index.T)] > AIR_HU), "no gas or air along the path inside the body"
    # Crosses only liver, tumour, muscle and unlabelled soft tissue.
    crossed = {int(v) for v in labels.array[tuple(index.T)]} - {0}
    crossed_names = {names[v] for v in crossed}
    assert all(n.startswith(ALLOWED) for n in crossed_names), crossed_names
    # Keeps every labelled structure's clearance beyond the probe's radius (voxel centres, true spacing).
    tree = cKDTree(samples)
    array = np.asarray(labels.array).astype(int)
    for value, name in names.items():
        structure = structure_of(name)
        if structure is None:
            continue
        voxels = np.argwhere(array == value)
        if not len(voxels):
            continue
        # (set 02's aorta, IVC and portal vein are all wider than 3 mm: every one of their voxels counts)
        distance = tree.query(labels.index_to_lps(voxels))[0].min()
        assert distance >= clearances[structure] + radius - 1e-6, (name, distance)
    assert probe["path"]["length_mm"] <= get_probe(probe["type"]).working_length_mm + 0.05


@pytest.fixture(scope="module")
def three_lesions(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("set02-three")
    case_file = set02_cases.write_case(shared_data, folder, ["dome", "ivc", "gallbladder"])
    case = load_case(case_file)
    return case, plan_case(case, settings=QUICK)


@pytest.mark.slow
def test_every_planned_path_on_set02_is_safe_on_the_original_labels(three_lesions, shared_data):
    _, plan = three_lesions
    ct, labels = set02_cases.images(shared_data)
    names = label_names(shared_data)
    assert len(plan.anatomy.lesions) == 3
    planned = [probe for unit in plan.units for probe in unit.candidate.probes]
    assert planned
    for unit in plan.units:
        for probe, path in zip(unit.candidate.probes, unit.paths):
            check_path({**probe.to_dict(), "path": path}, ct, labels, names, QUICK.clearances)
            assert path["approach"] in ("subcostal", "intercostal", "posterior_lateral")
            assert abs(path["angles_deg"]["craniocaudal"]) <= np.degrees(np.arcsin(QUICK.entry_max_craniocaudal)) + 0.1
            if path["approach"] == "intercostal":
                assert path["intercostal_space"].endswith("intercostal space")


@pytest.mark.slow
def test_the_ice_reaching_other_organs_is_measured_per_plan(three_lesions):
    _, plan = three_lesions
    for unit in plan.units:
        exposure = unit.exposure
        assert exposure is not None
        assert {"lung", "skin"} <= set(exposure.distances_mm)
        for name, (ice, lethal) in exposure.volumes_ml.items():
            assert ice >= lethal >= 0.0
            assert name not in ("liver", "tumour")
        # Every organ inside the ice is flagged, and the simulation did not treat it as liver.
        flagged = " ".join(r.detail for r in unit.coverage.risks)
        for name in exposure.volumes_ml:
            if exposure.simulated_as.get(name) not in ("blood", "bone") and name != "bile_duct":
                assert name.replace("_", " ") in flagged
        assert exposure.simulated_as["fat"] == "fat"


def test_a_site_no_path_reaches_safely_is_refused_with_the_blocking_structure(shared_data, tmp_path):
    case = load_case(set02_cases.write_case(shared_data, tmp_path, ["dome"]))
    ct, anatomy = load_anatomy(
        case.imaging.image, labels=case.imaging.labels, label_preset="totalsegmentator", masks=case.imaging.masks
    )
    planning, _ = planning_anatomy(ct, anatomy)
    settings = replace(QUICK, clearances_mm={"lung": 30.0}).check()
    with pytest.raises(NoSafePath) as refused:
        plan_unit(planning, PathMap.build(planning, settings), ["L1"], settings, "U1")
    message = str(refused.value)
    assert message.startswith("lesions.L1: no path avoids the lung within 30 mm with the patient supine; ")
    assert "\n" not in message


def test_angles_of_a_path():
    assert path_angles_deg(np.array([0.0, 1.0, 0.0])) == {"craniocaudal": 0.0, "mediolateral": 0.0}
    angles = path_angles_deg(np.array([1.0, 1.0, np.sqrt(2.0)]))
    assert angles == {"craniocaudal": 45.0, "mediolateral": 45.0}


@pytest.mark.parametrize("position", ["supine", "prone", "left_decubitus"])
def test_entry_windows_keep_the_table_side_closed(position):
    settings = replace(PlanSettings(), position=position)
    outward = -entry_directions(settings)
    axis, sign = {"supine": (1, 1), "prone": (1, -1), "left_decubitus": (0, 1)}[position]
    assert np.all(sign * outward[:, axis] <= settings.entry_max_posterior + 1e-12)
    assert np.all(np.abs(outward[:, 2]) <= settings.entry_max_craniocaudal + 1e-12)
    assert len(outward) > 200


def test_the_path_check_measures_clearance_from_the_samples_themselves():
    """The planner's clearance along a path is the true distance to the nearest voxel centre less
    that structure's clearance (random paths near a random obstacle, anisotropic voxels)."""
    rng = np.random.default_rng(7)
    shape = (30, 26, 14)
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    obstacle = np.zeros(shape, dtype=bool)
    obstacle[tuple(rng.integers(0, s, 12) for s in shape)] = True
    grid = Volume(np.zeros(shape, np.float32), affine, "CT")

    class Anatomy:
        def obstacles(self, _):
            return {"rib": obstacle}

    anatomy = Anatomy()
    anatomy.grid = grid
    anatomy.body = np.ones(shape, dtype=bool)
    path_map = PathMap.build(anatomy, PlanSettings())
    centres = grid.index_to_lps(np.argwhere(obstacle))
    points = grid.index_to_lps(rng.uniform(-0.4, np.array(shape) - 0.6, (5000, 3)))
    true = cKDTree(centres).query(points)[0] - DEFAULT_CLEARANCES_MM["rib"]
    np.testing.assert_allclose(path_map.exact_slack(points)[0], true, atol=1e-9)
    assert np.all(path_map.lower_slack(points) <= true + 1e-9)
    for _ in range(40):
        start, end = (grid.index_to_lps(rng.uniform(0, np.array(shape) - 1, 3)[None])[0] for _ in range(2))
        clearance = path_map.path_clearance_mm(start, end)
        along = start + np.linspace(0, 1, 2000)[:, None] * (end - start)
        true = cKDTree(centres).query(along)[0].min() - DEFAULT_CLEARANCES_MM["rib"]
        # Exact at the samples, less half a step: never above the true clearance of the whole path.
        assert clearance <= true + 1e-6
        assert clearance >= true - PATH_STEP_MM / 2 - 1e-6


def test_organ_exposure_counts_volumes_and_distances_on_a_known_field():
    names = np.full((20, 10, 10), "fat", dtype=object)
    names[:, :, :] = "soft_tissue"
    names[12:14] = "colon"
    names[18:] = "air"
    temperature = np.full(names.shape, 37.0)
    temperature[:10] = -30.0  # ice up to index 9, lethal (−20 °C) too
    temperature[10:13] = -5.0  # ice only: reaches the first colon slab (12)
    exposure = organ_exposure(temperature, names.astype(str), 2.0, -20.0, 25.0, 0.0)
    voxel_ml = 8.0 / 1000.0
    assert exposure.volumes_ml["colon"] == pytest.approx((100 * voxel_ml, 0.0))
    assert exposure.distances_mm["bowel"] == pytest.approx((0.0, 3 * 2.0))
    assert exposure.distances_mm["skin"] == pytest.approx((6 * 2.0, 9 * 2.0))
    codes = {r.code for r in organ_risks(exposure)}
    assert codes == {"bowel_in_ice"}
    labels, tissues = tissue_map(np.array([["kidney", "lung"], ["gas", "pancreas"]]), {}, np.zeros((2, 2), bool))
    assert [tissues[v].name for v in labels.ravel()] == ["kidney", "lung", "lung", "muscle"]


def test_the_tissue_label_map_gives_the_plans_tissues_on_any_grid():
    """`verify`'s re-fit samples the plan's tissues from a label map on the image grid: at the centres of a
    simulation grid (1.5 mm, off the image's 2 mm voxel centres) it gives the labels that the plan's own
    simulation builds there from the body model's names and the planner's masks."""
    phantom = make_phantom([TumourSpec((-35.0, -10.0, 35.0), 20.0)], spacing_mm=2.0, seed=1)
    ct, anatomy, _ = load_source(phantom)
    planning, _ = planning_anatomy(ct, anatomy)
    assert planning.body_model is not None
    labels = tissue_label_volume(planning.body_model, planning.liver, planning.lesions.values())
    assert labels.same_grid(ct)
    centre = ct.index_to_lps(np.argwhere(planning.lesions["L1"]).mean(axis=0))
    grid = Grid(centre - 24.3137, 1.5, (32, 32, 32))
    names, beyond_pct = tissue_names_on(planning.body_model, grid)
    assert beyond_pct == 0.0
    lesions = {i: resample_mask(m, ct, grid) for i, m in planning.lesions.items()}
    expected, tissues = tissue_map(names, lesions, resample_mask(planning.liver, ct, grid))
    sampled = labels.resampled(grid.shape, grid.affine).array
    np.testing.assert_array_equal(sampled, expected)
    # not liver alone: the tumour, the vessels' blood and the soft tissue beyond the liver
    assert {tissues[v].name for v in np.unique(expected)} >= {"liver", "tumour", "blood", "muscle"}


def test_skin_near_the_ice_is_flagged():
    names = np.full((10, 4, 4), "soft_tissue", dtype=object)
    names[7:] = "air"  # 4 voxels (8 mm) beyond the last ice voxel
    temperature = np.full(names.shape, 37.0)
    temperature[:4] = -10.0
    exposure = organ_exposure(temperature, names.astype(str), 2.0, -20.0, 25.0, 0.0)
    assert exposure.distances_mm["skin"][0] == pytest.approx(8.0)
    assert [r.code for r in organ_risks(exposure)] == ["skin_injury"]


# ------------------------------------------------------------------------------------------ cut-off images


def planning_of(image: Volume, labels: Volume, tumour: np.ndarray, preset: str, folder):
    write_nifti(image, folder / "image.nii.gz")
    write_nifti(labels, folder / "labels.nii.gz")
    write_nifti(labels.with_array(tumour.astype(np.uint8)), folder / "tumour.nii.gz")
    ct, anatomy = load_anatomy(
        folder / "image.nii.gz",
        labels=folder / "labels.nii.gz",
        label_preset=preset,
        masks={"tumour": folder / "tumour.nii.gz"},
    )
    return planning_anatomy(ct, anatomy)[0]


def assert_nothing_through_the_unseen(planning, settings):
    """Every path the search ranks starts at a skin inside the image with air outside; with none, the
    refusal names its reason."""
    path_map = PathMap.build(planning, settings)
    centre = planning.grid.index_to_lps(np.argwhere(planning.lesions["L1"]).mean(axis=0)[None])[0]
    radius = get_probe("17g-rod").radius_mm
    directions = ranked_directions(path_map, centre, settings, radius)
    for direction in directions:
        entry = path_map.skin_entry(centre, -direction, settings.max_path_mm)
        assert entry is not None
        beyond = entry - np.array([1.0, 2.0, 3.0])[:, None] * direction
        assert np.all(path_map.in_body(beyond) == 0), "air (inside the image) outside the skin"
    return path_map, directions, centre


def codes_of(planning, margin_mm=5.0):
    return {w.code for w in field_of_view_warnings(planning.body_model, margin_mm)}


def test_set02_cut_on_the_right_warns_and_plans_only_through_seen_skin(shared_data, tmp_path):
    ct, labels = set02_cases.images(shared_data)
    centre = set02_cases.site_centre(labels, "ivc", 11.0)
    tumour = set02_cases.paint(labels, [centre], 11.0)
    # The image's first axis runs to the patient's right (affine −x): drop its last 35 voxels (105 mm).
    keep = (slice(0, ct.shape[0] - 35), slice(None), slice(None))
    cropped_ct, cropped_labels = (Volume(np.asarray(v.array)[keep], v.affine, v.modality) for v in (ct, labels))
    planning = planning_of(cropped_ct, cropped_labels, tumour[keep], "totalsegmentator", tmp_path)
    assert "body_cut" in codes_of(planning)
    assert "right" in planning.body_model.cut_sides
    assert_nothing_through_the_unseen(planning, QUICK)


def test_set02_on_5mm_slices_warns_and_plans_only_through_seen_skin(shared_data, tmp_path):
    ct, labels = set02_cases.images(shared_data)
    centre = set02_cases.site_centre(labels, "gallbladder", 11.0)
    tumour = set02_cases.paint(labels, [centre], 11.0)
    affine = ct.affine.copy()
    affine[:3, 2] *= 5.0 / 3.0
    shape = (ct.shape[0], ct.shape[1], int(ct.shape[2] * 3.0 / 5.0))
    thick_ct = ct.resampled(shape, affine, order=1)
    thick_labels = labels.resampled(shape, affine, order=0)
    thick_tumour = labels.with_array(tumour.astype(np.uint8)).resampled(shape, affine, order=0).array > 0
    planning = planning_of(thick_ct, thick_labels, thick_tumour, "totalsegmentator", tmp_path)
    assert "thick_slices" in codes_of(planning)
    assert_nothing_through_the_unseen(planning, QUICK)


@pytest.mark.slow
def test_set03_covering_40mm_warns_and_plans_only_through_seen_skin(shared_data, tmp_path):
    folder = shared_data / "03_totalseg_dicom_ct_series"
    with pytest.warns(ImagingWarning, match="repaired"):  # the set's empty UIDs
        ct = read_volume(folder / "dicom")
    labels = read_volume(folder / "example_seg_dicom.nii.gz")
    labels = labels.resampled(ct.shape, ct.affine, order=0)
    liver = np.asarray(labels.array).astype(int) == 5
    depth = ndimage.distance_transform_edt(liver, sampling=ct.spacing_mm)
    centre = np.unravel_index(int(np.argmax(depth)), liver.shape)
    index = np.indices(ct.shape).reshape(3, -1).T
    tumour = (np.linalg.norm((index - centre) * ct.spacing_mm, axis=1) <= 8.0).reshape(ct.shape) & liver
    planning = planning_of(ct, labels, tumour, "totalsegmentator", tmp_path)
    assert "few_slices" in codes_of(planning)
    path_map, directions, centre_lps = assert_nothing_through_the_unseen(planning, QUICK)
    if not directions:
        assert "lesions" not in why_no_path(path_map, centre_lps, QUICK, 0.735, 175.0)


def test_mr_set06_warns_that_gas_and_bone_are_known_only_where_labelled(shared_data, tmp_path):
    folder = shared_data / "06_totalseg_mr_sm"
    mr = read_volume(folder / "example_mr_sm.nii.gz")
    labels = read_volume(folder / "example_seg_mr.nii.gz")
    liver = np.asarray(labels.array).astype(int) == 5
    depth = ndimage.distance_transform_edt(liver, sampling=mr.spacing_mm)
    centre = np.unravel_index(int(np.argmax(depth)), liver.shape)
    index = np.indices(mr.shape).reshape(3, -1).T
    tumour = (np.linalg.norm((index - centre) * mr.spacing_mm, axis=1) <= 9.0).reshape(mr.shape) & liver
    planning = planning_of(Volume(mr.array, mr.affine, "MR"), labels, tumour, "totalsegmentator_mr", tmp_path)
    assert {"mr_gas_bone", "organs_unknown"} <= codes_of(planning)
    assert_nothing_through_the_unseen(planning, QUICK)


# ------------------------------------------------------------------------------------------ bad input


@pytest.fixture
def run_plan(cryoplan_cli):
    """``cryoplan plan CASE -o OUT --grid-mm 3 OPTIONS`` in this process; `tests/cli/test_console_script.py`
    runs the installed script."""
    return lambda case_file, out, *options: cryoplan_cli("plan", case_file, "-o", out, "--grid-mm", "3", *options)


@pytest.fixture(scope="module")
def gallbladder_case(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("set02-gallbladder")
    case_file = set02_cases.write_case(shared_data, folder, ["gallbladder"])
    ct, labels = set02_cases.images(shared_data)
    tumour = read_volume(folder / "tumour.nii.gz")
    centre = ct.index_to_lps(np.argwhere(np.asarray(tumour.array) > 0).mean(axis=0)[None])[0]
    return case_file, ct, centre


def far_air(ct: Volume, centre: np.ndarray) -> np.ndarray:
    """The air voxel of the image farthest from `centre`."""
    air = np.argwhere(np.asarray(ct.array) < -900)
    points = ct.index_to_lps(air)
    return points[int(np.argmax(np.linalg.norm(points - centre, axis=1)))]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("inside", "entries.L1: expected an entry point at the skin, in the air outside the body"),
        ("outside", "entries.L1: expected an entry point inside the image"),
        ("far", "entries.L1: expected an entry within the probes' working length"),
        ("clearance", "clearances_mm.spleeen: expected a structure"),
    ],
)
def test_bad_path_input_is_one_line_exit_2_and_nothing_written(gallbladder_case, tmp_path, option, message, run_plan):
    case_file, ct, centre = gallbladder_case
    point = {"inside": centre, "outside": np.array([900.0, 900.0, 900.0]), "far": far_air(ct, centre)}.get(option)
    options = (
        ["--clearance", "spleeen=5"]
        if option == "clearance"
        else ["--entry", "L1=" + ",".join(f"{v:.1f}" for v in point)]
    )
    out = tmp_path / "out"
    result = run_plan(case_file, out, *options)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
