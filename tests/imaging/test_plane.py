"""`Plane`: orthogonal slices in the radiological convention and oblique slices along a probe path."""

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.imaging.plane import Plane
from cryoplan.imaging.volume import Volume


def linear_volume(coefficients, spacing=(1.0, 2.0, 3.0), shape=(40, 30, 20)):
    """A volume whose value is a linear function of LPS position, on an oblique-origin grid."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-20.0, -25.0, -30.0)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    lps = index * np.asarray(spacing) + affine[:3, 3]
    return Volume((lps @ np.asarray(coefficients)).astype(np.float32), affine)


@pytest.mark.parametrize(
    ("name", "right", "down"),
    [("axial", (1, 0, 0), (0, 1, 0)), ("coronal", (1, 0, 0), (0, 0, -1)), ("sagittal", (0, 1, 0), (0, 0, -1))],
)
def test_orthogonal_planes_follow_the_radiological_convention(name, right, down):
    plane = Plane.orthogonal(name, np.array([1.0, 2.0, 3.0]), 10.0, step_mm=1.0)
    np.testing.assert_array_equal(plane.right, right)
    np.testing.assert_array_equal(plane.down, down)
    points = plane.points()
    # The top-left sample is at the plane's left and top edges, in LPS.
    np.testing.assert_allclose(points[0, 0], plane.centre_lps - 10 * plane.right - 10 * plane.down)
    # Display coordinates are the LPS coordinates of the plane's axes.
    horizontal, vertical = plane.coordinates()
    h_axis, v_axis = int(np.argmax(np.abs(right))), int(np.argmax(np.abs(down)))
    np.testing.assert_allclose(horizontal, points[0, :, h_axis])
    np.testing.assert_allclose(vertical, points[:, 0, v_axis])
    np.testing.assert_allclose(
        plane.project(points.reshape(-1, 3)),
        np.stack(np.broadcast_arrays(horizontal[None, :], vertical[:, None]), axis=-1).reshape(-1, 2),
    )


def test_sampling_reproduces_a_linear_field_on_an_oblique_plane():
    volume = linear_volume((0.5, -1.0, 2.0))
    entry, tip = np.array([-10.0, -15.0, -20.0]), np.array([12.0, 10.0, 15.0])
    plane = Plane.along_path(entry, tip, beyond_mm=2.0, half_height_mm=5.0, step_mm=0.5)
    values = plane.sample(volume, order=1, outside=np.nan)
    expected = plane.points() @ np.array([0.5, -1.0, 2.0])
    inside = np.isfinite(values)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(values[inside], expected[inside], atol=1e-3)


def test_a_path_plane_contains_the_probe_from_skin_to_tip():
    entry, tip = np.array([-80.0, -60.0, 10.0]), np.array([-40.0, 0.0, 25.0])
    plane = Plane.along_path(entry, tip, beyond_mm=15.0)
    length = np.linalg.norm(tip - entry)
    np.testing.assert_allclose(plane.distance_mm(np.stack([entry, tip])), 0.0, atol=1e-9)
    (eh, ev), (th, tv) = plane.project(np.stack([entry, tip]))
    assert (eh, ev) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert (th, tv) == pytest.approx((length, 0.0), abs=1e-9)
    horizontal, _ = plane.coordinates()
    # Samples start 15 mm outside the skin and reach 15 mm past the tip (to within one step).
    assert horizontal[0] == pytest.approx(-15.0)
    assert length + 15.0 - plane.step_mm < horizontal[-1] <= length + 15.0
    assert abs(plane.right @ plane.down) < 1e-12
    # The skin end is on the viewer's left: the entry lies right of, anterior to and below the tip.
    assert plane.letters[:2] == ("A", "P")


def test_a_path_of_no_length_is_refused():
    with pytest.raises(InputError, match="path"):
        Plane.along_path([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
