"""Synthetic images with exactly known geometry for the planning tests: a body with a liver, a spine, a
vessel and a spherical tumour, rendered as CT (HU) with noise, optionally with an ice ball, seen through a
known rigid transform."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from cryoplan.imaging.volume import Volume

TUMOUR_CENTRE = np.array([-20.0, 0.0, 5.0])
TUMOUR_RADIUS_MM = 10.0


def grid_affine(shape, spacing, centre=(0.0, 0.0, 0.0), rotation_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine of a grid of `shape` and `spacing` centred on `centre`, rotated (xyz Euler, degrees)."""
    direction = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing, dtype=float)
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return affine


def render_ct(
    points_lps: np.ndarray, *, ice_centre=None, ice_radius_mm=0.0, probe_line=None, tumour_radius_mm=TUMOUR_RADIUS_MM
) -> np.ndarray:
    """HU of the synthetic patient at LPS points (..., 3) of the pre-procedural frame, its tumour of
    `tumour_radius_mm` centred on `TUMOUR_CENTRE`."""
    x, y, z = points_lps[..., 0], points_lps[..., 1], points_lps[..., 2]
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    body = (x / 80) ** 2 + (y / 60) ** 2 + (z / 90) ** 2 <= 1
    hu[body] = 20.0
    hu[liver_of(points_lps)] = 60.0
    hu[(x**2 + (y - 40) ** 2 <= 12**2) & body] = 400.0  # spine
    hu[((x + 5) ** 2 + (y + 20) ** 2 <= 5**2) & body] = 150.0  # vessel along z
    tumour = np.sum((points_lps - TUMOUR_CENTRE) ** 2, axis=-1) <= tumour_radius_mm**2
    hu[tumour] = 35.0
    if ice_centre is not None:
        hu[np.sum((points_lps - np.asarray(ice_centre)) ** 2, axis=-1) <= ice_radius_mm**2] = -5.0
    if probe_line is not None:  # a metal probe along +y ending at the tip
        tip = np.asarray(probe_line)
        radial = np.hypot(x - tip[0], z - tip[2])
        hu[(radial <= 0.8) & (y <= tip[1]) & body] = 2000.0
    return hu


def liver_of(points_lps: np.ndarray) -> np.ndarray:
    """The synthetic patient's liver (an ellipsoid) at LPS points (..., 3) of the pre-procedural frame."""
    x, y, z = points_lps[..., 0], points_lps[..., 1], points_lps[..., 2]
    return ((x + 20) / 45) ** 2 + ((y + 5) / 35) ** 2 + ((z - 5) / 40) ** 2 <= 1


def volume_points(shape, affine) -> np.ndarray:
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    return index @ affine[:3, :3].T + affine[:3, 3]


def pre_and_intra(
    *,
    ice_offset_mm=(2.0, 0.0, 0.0),
    ice_radius_mm=17.0,
    rotation_deg=(3.0, -2.0, 5.0),
    translation_mm=(4.0, -3.0, 2.0),
    noise_hu=10.0,
    seed=0,
    shape=(110, 90, 64),
    spacing=(1.0, 1.0, 1.5),
):
    """Pre-procedural CT and tumour mask, and the intraprocedural CT with an ice ball, moved rigidly.

    The intraprocedural patient is the pre-procedural one seen through x_pre = R x_intra + t. Returns
    (pre_ct, tumour, intra_ct, ice_centre_pre, known_ice_margin_mm).
    """
    rng = np.random.default_rng(seed)
    affine = grid_affine(shape, spacing, centre=(-15.0, 0.0, 5.0), rotation_deg=(0.0, 0.0, 0.0))
    points = volume_points(shape, affine)
    pre = render_ct(points) + rng.normal(0, noise_hu, shape).astype(np.float32)
    tumour = np.sum((points - TUMOUR_CENTRE) ** 2, axis=-1) <= TUMOUR_RADIUS_MM**2
    rotation = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    intra_points = volume_points(shape, affine) @ rotation.T + np.asarray(translation_mm)
    ice_centre = TUMOUR_CENTRE + np.asarray(ice_offset_mm)
    intra = render_ct(intra_points, ice_centre=ice_centre, ice_radius_mm=ice_radius_mm, probe_line=ice_centre)
    intra += rng.normal(0, noise_hu, shape).astype(np.float32)
    known = ice_radius_mm - np.linalg.norm(ice_offset_mm) - TUMOUR_RADIUS_MM
    return (
        Volume(pre, affine, "CT"),
        Volume(tumour.astype(np.uint8), affine, "SEG"),
        Volume(intra, affine, "CT"),
        ice_centre,
        known,
        (rotation, np.asarray(translation_mm)),
    )
