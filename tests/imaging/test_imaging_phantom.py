"""The digital phantom: exact labels, known geometry, seeded noise, the demo case, and its body model."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support.synthetic import centres_mm

from cryoplan.imaging.anatomy import anatomy_from_labels, measure_lesions
from cryoplan.imaging.body import build_body_model, field_of_view_warnings
from cryoplan.imaging.phantom import (
    DEMO_BILE_DUCT_GAP_MM,
    DEMO_HEPATIC_VEIN_GAP_MM,
    DEMO_TUMOUR_DIAMETER_MM,
    HU,
    LABELS,
    TumourSpec,
    demo_phantom,
    make_phantom,
)


@pytest.fixture(scope="module")
def demo():
    return demo_phantom(seed=0, spacing_mm=1.0)


def test_demo_lesion_matches_its_specification(demo):
    anatomy = anatomy_from_labels(demo.labels, mapping=demo.label_map, couinaud=demo.couinaud)
    (lesion,) = measure_lesions(anatomy)
    half_diagonal = np.sqrt(3) / 2
    assert lesion.max_diameter_mm == pytest.approx(DEMO_TUMOUR_DIAMETER_MM, abs=1.0)
    assert np.allclose(lesion.centroid_lps_mm, demo.tumours[0].centre_mm, atol=0.5)
    assert lesion.couinaud_segment in (7, 8)
    assert lesion.distance_to_bile_duct_mm == pytest.approx(DEMO_BILE_DUCT_GAP_MM, abs=half_diagonal)
    assert lesion.nearest_vessel == "hepatic_vein"
    assert lesion.distance_to_major_vessel_mm == pytest.approx(DEMO_HEPATIC_VEIN_GAP_MM, abs=half_diagonal)
    assert lesion.heat_sink and lesion.heat_sink_vessel == "hepatic_vein"
    assert lesion.heat_sink_vessel_calibre_mm == pytest.approx(10.0, abs=1.0)  # the right hepatic vein
    assert lesion.centroid_lps_mm[0] < 0  # patient's right


def test_demo_tumour_lies_inside_the_liver_away_from_bone(demo):
    labels = demo.labels.array
    tumour = labels == LABELS["tumour"]
    from scipy import ndimage

    grown = ndimage.binary_dilation(tumour, iterations=2)
    neighbours = set(np.unique(labels[grown & ~tumour]))
    assert LABELS["bone"] not in neighbours and 0 not in neighbours  # wrapped in liver and its vessels
    assert neighbours >= {LABELS["liver"]}
    assert all(np.any(labels == value) for value in LABELS.values())  # every structure present


def test_labels_are_exact_spheres_and_tubes():
    spacing = (1.5, 1.2, 2.0)
    tumour = TumourSpec((-40.0, -10.0, 0.0), 20.0)
    phantom = make_phantom([tumour], spacing_mm=spacing, seed=3)
    points = centres_mm(phantom.labels)
    inside = np.linalg.norm(points - np.asarray(tumour.centre_mm), axis=-1) <= 10.0
    assert np.array_equal(phantom.labels.array == LABELS["tumour"], inside)
    assert np.allclose(phantom.labels.spacing_mm, spacing)
    trunk = next(t for t in phantom.tubes if t.structure == "portal_vein")
    start, end = np.asarray(trunk.start_mm), np.asarray(trunk.end_mm)
    middle = phantom.labels.lps_to_index((start + end) / 2).round().astype(int)
    assert phantom.labels.array[tuple(middle)] == LABELS["portal_vein"]


def test_ct_values_and_seeded_noise():
    tumours = [TumourSpec((-40.0, -10.0, 0.0), 20.0)]
    a = make_phantom(tumours, spacing_mm=3.0, seed=1)
    b = make_phantom(tumours, spacing_mm=3.0, seed=1)
    c = make_phantom(tumours, spacing_mm=3.0, seed=2)
    assert np.array_equal(a.ct.array, b.ct.array)
    assert not np.array_equal(a.ct.array, c.ct.array)
    assert np.array_equal(a.labels.array, c.labels.array)
    for name in ("liver", "tumour", "portal_vein", "bone"):
        values = a.ct.array[a.labels.array == LABELS[name]]
        assert values.mean() == pytest.approx(HU[name], abs=3 * 12.0 / np.sqrt(values.size) + 0.5)
        assert values.std() == pytest.approx(12.0, rel=0.2)
    assert a.ct.modality == "CT"
    assert a.ct.array.min() < -900  # air outside the body


def test_couinaud_segments_follow_the_planes():
    phantom = make_phantom([], spacing_mm=3.0)
    segments = phantom.couinaud.array
    assert set(np.unique(segments[segments > 0])) == set(range(1, 9))
    liver = np.isin(phantom.labels.array, [LABELS["liver"]])
    assert np.all(segments[~np.isin(phantom.labels.array, [LABELS["liver"], LABELS["tumour"]])] == 0)
    points = centres_mm(phantom.couinaud)
    right = liver & (points[..., 0] < -40)
    assert set(np.unique(segments[right])) <= {5, 6, 7, 8}
    superior_left = liver & (points[..., 0] > 30) & (points[..., 2] > 10)
    assert set(np.unique(segments[superior_left])) == {2}


def test_body_model_of_the_demo_is_its_torso(demo):
    anatomy = anatomy_from_labels(demo.labels, mapping=demo.label_map)
    model = build_body_model(demo.ct, anatomy)
    points = centres_mm(demo.ct)
    torso = (points[..., 0] / 92.0) ** 2 + (points[..., 1] / 78.0) ** 2 <= 1.0  # the phantom's semi-axes
    assert np.array_equal(model.body, torso)  # the phantom's voxels are all-or-nothing: the outline is exact
    assert model.cut_sides == ("inferior", "superior")  # the torso is a cylinder through the field
    assert not model.internal_gas.any()
    assert model.bone[demo.labels.array == LABELS["bone"]].all()
    assert {"lung", "rib", "colon"} <= set(model.unknown) and "bile_duct" not in model.unknown
    codes = {w.code: w.message for w in field_of_view_warnings(model)}
    # the demo tumour's top lies about 9 mm below the field's top: its margin is not all in the image
    (tumour,) = demo.tumours
    top_face = demo.ct.index_to_lps(np.array([0, 0, demo.ct.shape[2] - 1]))[2] + demo.ct.spacing_mm[2] / 2
    gap = top_face - (tumour.centre_mm[2] + tumour.diameter_mm / 2)
    message = codes["lesion_near_edge"]
    assert "superior edge" in message
    measured = float(re.search(r"lies ([0-9.]+) mm", message)[1])
    assert abs(measured - gap) <= demo.ct.spacing_mm[2]  # voxel faces against the exact sphere
