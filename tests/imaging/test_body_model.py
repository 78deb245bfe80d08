"""The body model on synthetic torsos of known geometry: outline, cavities, couch, cut sides, tissue names."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging import Volume
from cryoplan.imaging.anatomy import STRUCTURES, Anatomy, anatomy_from_labels
from cryoplan.imaging.body import (
    AIR_HU,
    FAT_HU,
    SOFT_TISSUE_HU,
    build_body_model,
    check_entry_point,
    field_of_view_warnings,
    image_sides,
)
from cryoplan.imaging.body_figures import body_figure, write_body_figure
from cryoplan.imaging.totalsegmentator import TOTAL_CLASSES, TOTAL_MR_CLASSES, rib_number, structure_of


def _torso(shift_x_mm: float = 0.0, seed: int = 0) -> tuple[Volume, dict[str, np.ndarray]]:
    """A 2 mm CT: an elliptic torso (fat rim, soft tissue), a lung cavity open through the top slice, colon
    gas against the torso's right wall, a rib, and a couch plate 12 mm below the back.

    The LPS frame: i runs to the patient's right (x decreasing), j anterior (y decreasing), k superior.
    """
    rng = np.random.default_rng(seed)
    shape = (120, 100, 40)
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = (119.0, 99.0, -40.0)
    grid = Volume(np.zeros(shape, dtype=np.int16), affine, "CT")
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    x, y, z = np.moveaxis(grid.index_to_lps(np.stack([i, j, k], axis=-1)), -1, 0)
    x = x + shift_x_mm
    radial = (x / 100.0) ** 2 + (y / 70.0) ** 2
    hu = np.full(shape, -1000.0)
    torso = radial <= 1.0
    hu[torso] = -100.0  # fat rim
    hu[radial <= 0.85] = 40.0
    lung = ((x + 40) / 30.0) ** 2 + (y / 30.0) ** 2 + ((z - 50) / 40.0) ** 2 <= 1.0
    colon = ((x + 70) / 12.0) ** 2 + ((y + 20) / 12.0) ** 2 + (z / 12.0) ** 2 <= 1.0
    rib = (((x + 60) / 4.0) ** 2 + ((y + 45) / 4.0) ** 2 <= 1.0) & (np.abs(z) < 30)
    hu[lung] = -850.0
    hu[colon & torso] = -1000.0
    hu[rib] = 700.0
    couch = (np.abs(y - 81) <= 1.5) & (np.abs(x) < 110)
    hu[couch] = 300.0
    hu = hu + rng.normal(0, 5, shape)
    ct = grid.with_array(np.round(hu).astype(np.int16))
    return ct, {"lung": lung, "colon": colon & torso, "rib": rib, "couch": couch, "torso": torso}


def test_lung_and_colon_gas_are_inside_the_outline_and_the_couch_is_not():
    ct, truth = _torso()
    body = build_body_model(ct, None)
    assert body.modality == "CT"
    assert body.body[truth["lung"]].all()  # a cavity opened by the top slice
    assert body.body[truth["colon"]].all()
    assert not body.body[truth["couch"]].any()
    outside = ~truth["torso"] & ~truth["couch"]
    assert not body.body[outside].any()
    # the outline is the torso to within one voxel of its surface
    assert np.count_nonzero(body.body ^ truth["torso"]) < 0.05 * np.count_nonzero(truth["torso"])
    assert body.internal_gas[truth["lung"]].all() and body.internal_gas[truth["colon"]].all()
    assert body.bone[truth["rib"]].all()
    assert body.cut_sides == ("inferior", "superior")
    # nothing is labelled: every path-relevant organ is unknown
    assert "lung" in body.unknown and "rib" in body.unknown


def test_a_torso_wider_than_the_field_of_view_is_cut_on_that_side():
    ct, truth = _torso(shift_x_mm=40.0)  # 40 mm to the patient's right: the right wall and colon leave the image
    assert truth["colon"][-1].any()  # the colon gas reaches the cut
    body = build_body_model(ct, None)
    assert "right" in body.cut_sides and "left" not in body.cut_sides
    assert body.body[truth["lung"]].all() and body.body[truth["colon"]].all()


def test_tissue_names_by_label_then_by_hu():
    ct, truth = _torso()
    labels = np.zeros(ct.shape, dtype=np.uint8)
    labels[truth["lung"]] = 14  # TotalSegmentator `total`: lung_lower_lobe_right
    labels[truth["rib"]] = 113  # rib_right_10
    anatomy = anatomy_from_labels(ct.with_array(labels), "totalsegmentator")
    body = build_body_model(ct, anatomy)
    assert set(body.structures) == {"lung", "rib"}  # "bone" holds only the ribs: no rest of the skeleton
    assert body.rib_numbers[truth["rib"]].tolist() == [10] * int(truth["rib"].sum())
    points = ct.index_to_lps(
        np.array(
            [
                np.argwhere(truth["lung"])[0],
                np.argwhere(truth["rib"])[0],
                np.argwhere(truth["colon"])[0],
                (60, 50, 20),  # soft tissue at the centre
                (60, 99, 20),  # anterior air
                (60, 16, 20),  # the posterior fat rim (y = 67 mm)
            ]
        )
    )
    names = body.tissue_names(points)
    assert names == ["lung", "rib", "gas", "soft_tissue", "air", "fat"]
    assert body.tissue_names(np.array([[1000.0, 0.0, 0.0]])) == ["outside_image"]
    # a TotalSegmentator map labels every organ it knows wherever it is; it has no hepatic veins or ducts
    assert body.unknown == ("hepatic_vein", "bile_duct")


def test_hu_ranges_are_ordered():
    assert AIR_HU < FAT_HU[0] < FAT_HU[1] < SOFT_TISSUE_HU[0] < SOFT_TISSUE_HU[1]


def test_mr_outline_from_signal_and_labels():
    ct, truth = _torso()
    signal = np.where(truth["torso"], 300.0, 5.0)
    signal[truth["lung"] | truth["colon"] | truth["rib"]] = 5.0  # dark on MR
    signal += np.random.default_rng(1).normal(0, 3, ct.shape)
    mr = Volume(signal.astype(np.float32), ct.affine, "MR")
    labels = np.zeros(ct.shape, dtype=np.uint8)
    labels[truth["lung"]] = 11  # total_mr lung_right
    anatomy = anatomy_from_labels(mr.with_array(labels), "totalsegmentator_mr")
    body = build_body_model(mr, anatomy)
    assert body.modality == "MR"
    assert body.body[truth["lung"]].all() and body.body[truth["colon"]].all()
    assert not body.body[~truth["torso"]].any()
    assert body.internal_gas[truth["lung"]].all() and not body.internal_gas[truth["colon"]].any()
    assert {"rib", "sternum", "costal_cartilage"} <= set(body.unknown)  # total_mr has no ribs


def test_image_sides_follow_the_affine():
    ct, _ = _torso()
    sides = image_sides(ct)
    assert sides[(0, -1)] == "left" and sides[(0, 1)] == "right"
    assert sides[(1, -1)] == "posterior" and sides[(1, 1)] == "anterior"
    assert sides[(2, -1)] == "inferior" and sides[(2, 1)] == "superior"


def test_bad_inputs_name_the_field():
    ct, _ = _torso()
    other = Volume(np.zeros((4, 4, 4), dtype=bool), np.eye(4))
    with pytest.raises(InputError, match="anatomy"):
        build_body_model(ct, Anatomy(other, {}))
    with pytest.raises(InputError, match="image"):
        build_body_model(ct.with_array(np.full(ct.shape, -1000, dtype=np.int16)), None)
    with pytest.raises(InputError, match="modality"):
        build_body_model(ct, None, modality="PET")


def test_entry_points_on_the_skin_or_outside_it_are_accepted_and_others_refused():
    ct, truth = _torso()
    body = build_body_model(ct, None)
    skin = body.body & ~ndimage.binary_erosion(body.body, border_value=1)
    on_skin = ct.index_to_lps(np.argwhere(skin)[0])
    assert np.array_equal(check_entry_point(body, on_skin, "imaging.entries.L1"), on_skin)
    assert check_entry_point(body, [0.0, -90.0, 0.0], "imaging.entries.L1")[1] == -90.0  # air, anterior
    with pytest.raises(InputError) as raised:
        check_entry_point(body, [0.0, 0.0, 0.0], "imaging.entries.L1")  # the torso's centre
    assert raised.value.field == "imaging.entries.L1" and "on the skin" in raised.value.expected
    with pytest.raises(InputError, match="field of view"):
        check_entry_point(body, [0.0, 0.0, 500.0], "--entry L1")
    for bad in ([0.0, np.nan, 0.0], ["a", "b", "c"], [1.0, 2.0]):
        with pytest.raises(InputError, match=r"\[x, y, z\]"):
            check_entry_point(body, bad, "--entry L1")


def test_tissue_index_is_tissue_names_as_codes():
    ct, truth = _torso()
    body = build_body_model(
        ct, anatomy_from_labels(ct.with_array(truth["lung"].astype(np.uint8) * 14), "totalsegmentator")
    )
    points = ct.index_to_lps(np.random.default_rng(3).uniform(-5, 125, (4, 50, 3)))  # some beyond the image
    codes, names = body.tissue_index(points)
    assert codes.shape == (4, 50) and names[-1] == "outside_image"
    assert [names[c] for c in codes.ravel()] == body.tissue_names(points.reshape(-1, 3))
    assert {"lung", "air", "outside_image"} <= {names[c] for c in codes.ravel()}


def test_body_figure_renders_the_three_views(tmp_path):
    ct, _ = _torso(shift_x_mm=40.0)
    body = build_body_model(ct, None)
    warnings = field_of_view_warnings(body)
    figure = body_figure(body, warnings)
    assert len(figure.axes) == 3 and [ax.get_title().split()[0] for ax in figure.axes] == [
        "axial",
        "coronal",
        "sagittal",
    ]
    assert "cut by the field of view on right, inferior, superior" in figure.get_suptitle()
    assert "body_cut" in figure.get_suptitle()
    path = write_body_figure(body, tmp_path / "body.png", warnings)
    assert path.stat().st_size > 10_000


def test_every_totalsegmentator_class_is_a_structure_and_ribs_keep_their_number():
    for classes in (TOTAL_CLASSES, TOTAL_MR_CLASSES):
        assert all(structure_of(name) in STRUCTURES for name in classes.values())
    ribs = {name: rib_number(name) for name in TOTAL_CLASSES.values() if name.startswith("rib_")}
    assert sorted(ribs.values()) == [*range(-12, 0), *range(1, 13)]
    assert structure_of("kidney_cyst_left") == "kidney" and structure_of("atrial_appendage_left") == "heart"
    assert structure_of("costal_cartilages") == "costal_cartilage" and structure_of("iliac_vena_left") == "other_vessel"
