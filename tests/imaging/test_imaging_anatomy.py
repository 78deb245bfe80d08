"""Measurements on generated geometry: oblique affines, anisotropic spacing, known diameters, distances
and vessel calibres; label dictionaries, presets and their errors."""

from __future__ import annotations

import typing

import numpy as np
import pytest
from support.synthetic import centres_mm, oblique_grid, sphere

from cryoplan.case import LabelPreset
from cryoplan.errors import InputError
from cryoplan.imaging import Volume
from cryoplan.imaging.anatomy import (
    PRESETS,
    Anatomy,
    anatomy_from_labels,
    anatomy_from_masks,
    axial_diameter_mm,
    max_diameter_mm,
    measure_lesions,
    surface_distance_mm,
)

SEEDS = [11, 12, 13, 14, 15, 16]


@pytest.mark.parametrize("seed", SEEDS)
def test_sphere_diameter_within_one_voxel_on_oblique_anisotropic_grids(seed):
    grid = oblique_grid(seed)
    rng = np.random.default_rng(seed)
    diameter = rng.uniform(12.0, 30.0)
    centre = grid.index_to_lps(np.array(grid.shape) / 2) + rng.uniform(-2, 2, 3)
    mask = sphere(grid, centre, diameter)
    voxel = grid.spacing_mm.max()
    assert abs(max_diameter_mm(grid, mask) - diameter) <= voxel
    assert abs(axial_diameter_mm(grid, mask) - diameter) <= voxel
    lesion = measure_lesions(Anatomy(grid, {"tumour": mask}))[0]
    assert np.allclose(lesion.centroid_lps_mm, centre, atol=grid.spacing_mm.max() / 2)
    assert lesion.volume_ml == pytest.approx(np.pi / 6 * diameter**3 / 1000, rel=0.1)


def test_axial_diameter_is_the_longest_in_one_axial_slice():
    """A cigar along z: long 3-D diameter, short axial one."""
    affine = np.diag([0.8, 0.8, 1.25, 1.0])
    grid = Volume(np.zeros((40, 40, 60)), affine)
    points = centres_mm(grid)
    centre = np.array([16.0, 16.0, 37.0])
    semi = np.array([5.0, 5.0, 30.0])
    mask = (((points - centre) / semi) ** 2).sum(axis=-1) <= 1
    assert max_diameter_mm(grid, mask) == pytest.approx(60.0, abs=1.25)
    assert axial_diameter_mm(grid, mask) == pytest.approx(10.0, abs=0.8)


@pytest.mark.parametrize("seed", SEEDS)
def test_surface_distance_within_half_a_voxel_diagonal(seed):
    grid = oblique_grid(seed, extent_mm=80)
    rng = np.random.default_rng(seed + 100)
    points = centres_mm(grid)
    centre = grid.index_to_lps(np.array(grid.shape) / 2)
    diameter, other_diameter, gap = rng.uniform(12, 24), rng.uniform(6, 12), rng.uniform(2, 10)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    other_centre = centre + direction * (diameter / 2 + gap + other_diameter / 2)
    lesion = sphere(grid, centre, diameter, points)
    structure = sphere(grid, other_centre, other_diameter, points)
    half_diagonal = np.linalg.norm(grid.spacing_mm) / 2
    assert abs(surface_distance_mm(grid, lesion, structure) - gap) <= half_diagonal
    assert surface_distance_mm(grid, lesion, np.zeros_like(lesion)) is None
    assert surface_distance_mm(grid, lesion, lesion) == 0.0


def test_distance_to_a_far_box_shaped_structure():
    """A slab 70 mm away: the nearest pair lies on the box's face, found among boundary voxels."""
    grid = Volume(np.zeros((120, 30, 30)), np.diag([1.0, 1.0, 1.0, 1.0]))
    points = centres_mm(grid)
    lesion = sphere(grid, (15, 15, 15), 10, points)
    structure = np.zeros(grid.shape, bool)
    structure[90:95, 10:20, 10:20] = True  # face at x = 90: gap 90 − 20 = 70 mm less half voxels
    assert surface_distance_mm(grid, lesion, structure) == pytest.approx(69.0, abs=0.87)


def _tube(points: np.ndarray, start, end, diameter: float) -> np.ndarray:
    start, end = np.asarray(start, float), np.asarray(end, float)
    axis = end - start
    t = np.clip(((points - start) @ axis) / (axis @ axis), 0, 1)
    return np.linalg.norm(points - (start + t[..., None] * axis), axis=-1) <= diameter / 2


@pytest.mark.parametrize("calibre, gap, heat_sink", [(8.0, 4.0, True), (8.0, 14.0, False), (2.0, 3.0, False)])
def test_heat_sink_needs_a_vessel_of_3_mm_within_10_mm(calibre, gap, heat_sink):
    spacing = np.array([0.7, 0.7, 1.0])
    grid = Volume(np.zeros((100, 100, 60)), np.diag([*spacing, 1.0]))
    points = centres_mm(grid)
    centre = np.array([35.0, 35.0, 30.0])
    lesion = sphere(grid, centre, 20.0, points)
    axis_x = centre[0] + 10.0 + gap + calibre / 2
    vessel = _tube(points, (axis_x, 5, 30), (axis_x, 65, 30), calibre)
    measured = measure_lesions(Anatomy(grid, {"tumour": lesion, "portal_vein": vessel, "liver": ~vessel}))[0]
    assert measured.heat_sink is heat_sink
    assert measured.nearest_vessel == "portal_vein"
    assert measured.distance_to_major_vessel_mm == pytest.approx(gap, abs=np.linalg.norm(spacing) / 2)
    if heat_sink:
        assert measured.heat_sink_vessel == "portal_vein"
        assert measured.heat_sink_vessel_calibre_mm == pytest.approx(calibre, abs=spacing.max())
    else:
        assert measured.heat_sink_vessel is None and measured.heat_sink_vessel_calibre_mm is None


def test_label_dictionary_preset_and_errors():
    grid = Volume(np.zeros((10, 10, 10), np.uint8), np.eye(4))
    labels = np.zeros(grid.shape, np.uint8)
    labels[2:8, 2:8, 2:8] = 1
    labels[4:6, 4:6, 4:6] = 2
    labels[0, 0, :] = 7
    volume = grid.with_array(labels)
    anatomy = anatomy_from_labels(volume, mapping={"liver": [1, 2], "tumour": 2, "bone": 7})
    assert anatomy.volume_ml("liver") == pytest.approx(216 / 1000)
    assert anatomy.volume_ml("bone") == pytest.approx(10 / 1000)
    assert set(anatomy_from_labels(volume, preset="liver_tumour").masks) == {"liver", "tumour"}
    with pytest.raises(InputError, match="labels.kidney"):
        anatomy_from_labels(volume, mapping={"kidney": 3})
    with pytest.raises(InputError, match="labels.tumour"):
        anatomy_from_labels(volume, mapping={"liver": 1, "tumour": 5})  # empty tumour label
    with pytest.raises(InputError, match="label_preset"):
        anatomy_from_labels(volume, preset="nnunet")
    with pytest.raises(InputError, match="exactly one"):
        anatomy_from_labels(volume, preset="liver_tumour", mapping={"liver": 1})
    labels_without_tumour = grid.with_array(np.where(labels == 2, 1, labels).astype(np.uint8))
    with pytest.raises(InputError, match="labels.tumour"):
        anatomy_from_labels(labels_without_tumour, preset="liver_tumour")
    # a TotalSegmentator map simply lacks what the field of view lacks
    assert anatomy_from_labels(
        grid.with_array(np.where(labels == 1, 5, 0).astype(np.uint8)), preset="totalsegmentator"
    ).masks.keys() == {"liver"}


def test_masks_per_structure_and_their_errors():
    grid = Volume(np.zeros((6, 6, 6)), np.eye(4))
    tumour = grid.with_array(np.zeros(grid.shape, np.uint8))
    tumour.array[2:4, 2:4, 2:4] = 1
    anatomy = anatomy_from_masks({"tumour": tumour}, grid)
    assert measure_lesions(anatomy)[0].voxel_count == 8
    with pytest.raises(InputError, match="masks.vessel"):
        anatomy_from_masks({"vessel": tumour}, grid)
    with pytest.raises(InputError, match="masks.tumour"):
        anatomy_from_masks({"tumour": grid.with_array(np.zeros(grid.shape, np.uint8))}, grid)


def test_min_voxels_and_face_connectivity():
    grid = Volume(np.zeros((12, 12, 12)), np.diag([2.0, 2.0, 2.0, 1.0]))
    tumour = np.zeros(grid.shape, bool)
    tumour[1:4, 1:4, 1:4] = True  # 27 voxels
    tumour[4, 4, 4] = True  # touches the cube at a corner only: a lesion of its own
    tumour[8:10, 8:10, 8:10] = True  # 8 voxels
    lesions = measure_lesions(Anatomy(grid, {"tumour": tumour}))
    assert [lesion.voxel_count for lesion in lesions] == [27, 8, 1]
    assert [lesion.id for lesion in lesions] == ["L1", "L2", "L3"]
    assert [lesion.voxel_count for lesion in measure_lesions(Anatomy(grid, {"tumour": tumour}), min_voxels=8)] == [
        27,
        8,
    ]
    with pytest.raises(InputError, match="min_voxels"):
        measure_lesions(Anatomy(grid, {"tumour": tumour}), min_voxels=0)


def test_couinaud_segment_is_the_majority_of_the_lesion():
    grid = Volume(np.zeros((10, 10, 10)), np.eye(4))
    tumour = np.zeros(grid.shape, bool)
    tumour[2:8, 2:8, 2:8] = True
    segments = np.zeros(grid.shape, np.uint8)
    segments[:, :, :4] = 7
    segments[:, :, 4:] = 8  # 4 of 6 tumour slices
    labels = grid.with_array(tumour.astype(np.uint8) * 2)
    lesion = measure_lesions(anatomy_from_labels(labels, mapping={"tumour": 2}, couinaud=grid.with_array(segments)))[0]
    assert lesion.couinaud_segment == 8


def test_sheared_grid_is_refused_for_distances():
    affine = np.eye(4)
    affine[0, 2] = 0.5
    with pytest.raises(InputError, match="orthogonal"):
        Anatomy(Volume(np.zeros((4, 4, 4)), affine), {})


def test_inspect_with_one_mask_file_per_structure(tmp_path):
    from cryoplan.imaging import write_nifti
    from cryoplan.imaging.inspection import inspect_image

    grid = oblique_grid(21, extent_mm=60, spacing_range=(0.6, 1.2))
    points = centres_mm(grid)
    centre = grid.index_to_lps(np.array(grid.shape) / 2)
    liver = sphere(grid, centre, 50.0, points)
    tumour = sphere(grid, centre, 16.0, points)
    duct = sphere(grid, centre + [0, 0, 8.0 + 5.0 + 3.0], 6.0, points)  # 5 mm gap
    image = grid.with_array(np.where(liver, 100, -1000).astype(np.int16))
    write_nifti(image, tmp_path / "ct.nii.gz")
    for name, mask in {"liver": liver & ~tumour & ~duct, "tumour": tumour, "bile_duct": duct}.items():
        write_nifti(grid.with_array(mask.astype(np.uint8)), tmp_path / f"{name}.nii.gz")
    document = inspect_image(
        tmp_path / "ct.nii.gz", masks={n: tmp_path / f"{n}.nii.gz" for n in ("liver", "tumour", "bile_duct")}
    )
    (lesion,) = document["lesions"]
    assert lesion["distance_to_bile_duct_mm"] == pytest.approx(5.0, abs=np.linalg.norm(grid.spacing_mm) / 2)
    assert lesion["distance_to_major_vessel_mm"] is None and lesion["heat_sink"] is False
    assert document["image"]["modality"] == "CT"
    assert document["total_tumour_volume_ml"] == pytest.approx(tumour.sum() * grid.voxel_volume_ml, abs=1e-3)


def test_writers_leave_nothing_behind_on_bad_paths(tmp_path):
    from cryoplan.imaging import write_nifti

    with pytest.raises(InputError, match="nii"):
        write_nifti(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "out.img")
    assert list(tmp_path.iterdir()) == []


def test_the_case_model_names_every_label_preset():
    assert set(typing.get_args(LabelPreset)) == set(PRESETS)
