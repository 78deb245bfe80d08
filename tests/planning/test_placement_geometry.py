"""Placement geometry that needs no simulation: layouts, large vessels, skin entries and safe paths."""

import math

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import Anatomy
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy, large_vessel_mask, planning_anatomy, vessel_components
from cryoplan.planning.charts import IsothermChart
from cryoplan.planning.paths import PathMap, probe_paths, ranked_directions
from cryoplan.planning.pipeline import plan_unit
from cryoplan.planning.search import layout_offsets, min_neighbour_distance
from cryoplan.planning.settings import PlanSettings

SPACING = np.array([1.0, 1.0, 1.5])
SHAPE = (120, 110, 80)
AFFINE = np.diag([*SPACING, 1.0])
AFFINE[:3, 3] = -(np.array(SHAPE) - 1) / 2 * SPACING  # centred on the origin


def points():
    index = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    return index @ AFFINE[:3, :3].T + AFFINE[:3, 3]


def tube(p, start, direction, diameter):
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    offset = p - np.asarray(start, float)
    radial = offset - (offset @ direction)[..., None] * direction
    return np.linalg.norm(radial, axis=-1) <= diameter / 2


@pytest.mark.parametrize("count", [2, 3, 4, 5])
@pytest.mark.parametrize("spacing", [10.0, 15.0, 20.0])
def test_polygon_layouts_keep_the_spacing(count, spacing):
    offsets = layout_offsets(count, spacing)
    assert len(offsets) == count
    assert min_neighbour_distance(offsets) == pytest.approx(spacing)
    np.testing.assert_allclose(offsets.mean(axis=0), 0, atol=1e-9)


def test_pentagon_with_centre():
    offsets = layout_offsets(6, 15.0)
    assert len(offsets) == 6
    assert min_neighbour_distance(offsets) == pytest.approx(15.0 / (2 * math.sin(math.pi / 5)))


def test_only_vessels_of_three_millimetres_or_more_are_large():
    p = points()
    thin = tube(p, (-20, 0, 0), (0, 0, 1), 1.5)
    thick = tube(p, (20, 0, 0), (0, 0, 1), 6.0)
    large = large_vessel_mask(thin | thick, SPACING, 3.0)
    assert not large[thin].any()
    assert large[thick].mean() > 0.9
    calibres = sorted(c for _, c in vessel_components(thin | thick, SPACING))
    # voxelised calibres are good to about one voxel
    assert calibres[0] == pytest.approx(1.5, abs=1.0)
    assert calibres[1] == pytest.approx(6.0, abs=1.0)


def anatomy_with(forbidden_tube=True, enclosed=False):
    p = points()
    body = np.linalg.norm(p / [55, 50, 70], axis=-1) <= 1
    liver = np.linalg.norm((p - [-10, 0, 0]) / [35, 30, 40], axis=-1) <= 1
    tumour = np.linalg.norm(p - [-10, 0, 0], axis=-1) <= 6
    vessels = tube(p, (-10, -20, 0), (0, 0, 1), 6.0) if forbidden_tube else np.zeros(SHAPE, bool)
    bone = None
    if enclosed:  # a bony shell around the tumour leaves no path
        r = np.linalg.norm(p - [-10, 0, 0], axis=-1)
        bone = (r >= 15) & (r <= 19)
    return PlanningAnatomy(
        grid=Volume(np.zeros(SHAPE, np.float32), AFFINE),
        liver=liver | tumour,
        body=body,
        lesions={"L1": tumour},
        vessels=vessels,
        bone=bone,
    )


def test_paths_avoid_a_large_vessel_in_front_of_the_tumour():
    anatomy = anatomy_with()
    settings = PlanSettings()
    path_map = PathMap.build(anatomy, settings)
    centre = np.array([-10.0, 0.0, 0.0])
    directions = ranked_directions(path_map, centre, settings, probe_radius_mm=0.735)
    assert directions
    straight_anterior = np.array([0.0, 1.0, 0.0])  # from an anterior entry straight back through the vessel
    for direction in directions:
        entries = probe_paths(path_map, centre[None], direction, 0.735, settings.max_path_mm)
        assert entries is not None
        samples = centre + np.linspace(0, 1, 200)[:, None] * (entries[0] - centre)
        index = np.rint(anatomy.grid.lps_to_index(samples)).astype(int)
        assert not anatomy.vessels[tuple(index.T)].any()
        assert np.dot(direction, straight_anterior) < 0.99
        # entry window: never from the back, craniocaudal tilt bounded
        assert -direction[1] <= settings.entry_max_posterior + 1e-9
    # the straight anterior path crosses the vessel and is refused
    assert probe_paths(path_map, centre[None], straight_anterior, 0.735, settings.max_path_mm) is None


def test_no_path_through_bone():
    anatomy = anatomy_with(forbidden_tube=False, enclosed=True)
    settings = PlanSettings()
    path_map = PathMap.build(anatomy, settings)
    assert ranked_directions(path_map, np.array([-10.0, 0.0, 0.0]), settings, 0.735) == []
    with pytest.raises(
        InputError, match="lesions.L1: no path avoids the bone within 3 mm with the patient supine; no other position"
    ):
        plan_unit(anatomy, path_map, ["L1"], settings, "U1")


def test_a_path_leaving_the_field_of_view_inside_the_body_has_no_entry():
    anatomy = anatomy_with(forbidden_tube=False)
    anatomy.body[:] = True  # the body fills the image: no skin in view
    path_map = PathMap.build(anatomy, PlanSettings())
    assert path_map.skin_entry(np.array([-10.0, 0, 0]), np.array([0, -1.0, 0]), 200.0) is None


def test_a_tumour_outside_the_liver_is_refused():
    p = points()
    liver = np.linalg.norm((p - [-20, 0, 0]) / [25, 25, 30], axis=-1) <= 1
    tumour = np.linalg.norm(p - [30, 0, 0], axis=-1) <= 6
    ct = np.where(np.linalg.norm(p / [55, 50, 70], axis=-1) <= 1, 40.0, -1000.0).astype(np.float32)
    volume = Volume(ct, AFFINE, "CT")
    with pytest.raises(InputError, match="lesions.L1: expected a tumour inside the liver"):
        planning_anatomy(volume, Anatomy(volume, {"liver": liver, "tumour": tumour}))


def test_settings_are_checked():
    with pytest.raises(InputError, match="freeze_minutes"):
        PlanSettings(freeze_minutes=(0.0,)).check()
    with pytest.raises(InputError, match="freeze_minutes"):
        PlanSettings(freeze_minutes=(45.0,)).check()
    with pytest.raises(InputError, match="probe_types"):
        PlanSettings(probe_types=("no-such-probe",)).check()
    with pytest.raises(InputError, match="margin_mm"):
        PlanSettings(margin_mm=12.0).check()


def test_probe_coolings_combine_by_their_p_norm_even_a_rounding_error_below_zero():
    chart = IsothermChart("17g-rod", 10.0, np.arange(3.0), np.arange(3.0), np.full((3, 3), 37.0), 1.5)
    combined = chart.combine([np.array([-1e-12, 2.0]), np.array([1.0, 2.0])])
    np.testing.assert_allclose(combined, [37.0 - 1.0, 37.0 - (2 * 2.0**1.5) ** (1 / 1.5)])
