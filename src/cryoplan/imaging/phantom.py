"""A digital liver phantom whose geometry is known exactly: the built-in demo case and the ground truth of
tests.

The phantom lives in the LPS patient frame (x to the patient's left, y posterior, z superior), centred on
the origin. It holds a torso (skin, a fat rim, soft tissue), a liver on the patient's right with a right
and a left lobe, the intrahepatic inferior vena cava, the aorta, portal and hepatic venous trees and a
biliary tree made of straight tubes of known calibre, a gallbladder, the spine and right-sided ribs, and
spherical tumours. Couinaud segments are assigned by the classical planes (Couinaud 1957; Bismuth, World J
Surg 1982): the middle hepatic vein plane (Cantlie's line) divides right from left liver, the right
hepatic vein plane anterior (5, 8) from posterior (6, 7) sectors, the falciform plane segment 4 from 2/3,
the portal bifurcation plane superior (2, 7, 8) from inferior (3, 5, 6) segments; the caudate lobe (1)
surrounds the IVC.

CT values are typical portal-venous-phase Hounsfield units with Gaussian noise from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume

#: Label values of the phantom's label map.
LABELS = {
    "liver": 1,
    "tumour": 2,
    "hepatic_vein": 3,
    "portal_vein": 4,
    "ivc": 5,
    "aorta": 6,
    "bile_duct": 7,
    "gallbladder": 8,
    "bone": 9,
}

#: Portal-venous-phase CT numbers (HU) of each label, and of the body outside the organs.
HU = {
    "air": -1000.0,
    "fat": -100.0,
    "soft_tissue": 40.0,
    "liver": 100.0,
    "tumour": 45.0,
    "hepatic_vein": 150.0,
    "portal_vein": 170.0,
    "ivc": 140.0,
    "aorta": 160.0,
    "bile_duct": 15.0,
    "gallbladder": 10.0,
    "bone": 500.0,
}


@dataclass(frozen=True)
class TumourSpec:
    """A spherical tumour: centre in LPS mm and diameter in mm."""

    centre_mm: tuple[float, float, float]
    diameter_mm: float


@dataclass(frozen=True)
class Tube:
    """A straight vessel or duct: a cylinder with hemispherical ends (capsule) of known calibre."""

    structure: str
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    diameter_mm: float


@dataclass
class Phantom:
    """The rendered phantom.

    Attributes
    ----------
    ct : Volume
        CT in Hounsfield units (float32) with seeded noise.
    labels : Volume
        Exact label map (values in `label_map`).
    label_map : dict of str to int
        Structure name → label value.
    couinaud : Volume
        Couinaud segment (1–8) of each liver voxel, 0 elsewhere.
    tumours : list of TumourSpec
    tubes : list of Tube
        Every vessel and duct segment with its calibre.
    """

    ct: Volume
    labels: Volume
    label_map: dict[str, int]
    couinaud: Volume
    tumours: list[TumourSpec]
    tubes: list[Tube] = field(default_factory=list)


# Torso and organs (LPS mm): ellipsoid centres and semi-axes.
_BODY_SEMI_AXES = (92.0, 78.0)
_FAT_RIM_MM = 8.0
_RIGHT_LOBE = ((-30.0, -5.0, 2.0), (52.0, 52.0, 60.0))
_LEFT_LOBE = ((22.0, -22.0, 18.0), (38.0, 26.0, 26.0))
_GALLBLADDER = ((-22.0, -42.0, -38.0), (13.0, 11.0, 22.0))
_IVC_AXIS, _IVC_DIAMETER = (-8.0, 35.0), 20.0
_AORTA_AXIS, _AORTA_DIAMETER = (22.0, 48.0), 22.0
_SPINE_AXIS, _SPINE_RADIUS = (0.0, 63.0), 13.0
_RIB_LEVELS_Z = (-45.0, -20.0, 5.0, 30.0, 55.0)
_RIB_DIAMETER = 9.0
_HILUM = (-10.0, 5.0, -5.0)
_PORTAL_PLANE_Z = -5.0
_CANTLIE_X = -12.0
_FALCIFORM_X = 14.0

_TUBES = (
    # portal venous tree: trunk, right and left branches, sectoral and segmental branches
    Tube("portal_vein", (8.0, 12.0, -65.0), _HILUM, 13.0),
    Tube("portal_vein", _HILUM, (-42.0, 6.0, -4.0), 9.0),
    Tube("portal_vein", (-42.0, 6.0, -4.0), (-52.0, -24.0, 18.0), 6.0),
    Tube("portal_vein", (-42.0, 6.0, -4.0), (-62.0, 22.0, 4.0), 6.0),
    Tube("portal_vein", (-52.0, -24.0, 18.0), (-52.0, -30.0, 38.0), 4.0),
    Tube("portal_vein", (-52.0, -24.0, 18.0), (-58.0, -30.0, -24.0), 4.0),
    Tube("portal_vein", (-62.0, 22.0, 4.0), (-66.0, 22.0, 32.0), 4.0),
    Tube("portal_vein", (-62.0, 22.0, 4.0), (-70.0, 18.0, -26.0), 4.0),
    Tube("portal_vein", _HILUM, (16.0, -16.0, 2.0), 8.0),
    Tube("portal_vein", (16.0, -16.0, 2.0), (38.0, -26.0, 16.0), 5.0),
    # hepatic veins draining into the IVC
    Tube("hepatic_vein", (-14.0, 30.0, 40.0), (-45.0, 14.0, 22.0), 10.0),
    Tube("hepatic_vein", (-45.0, 14.0, 22.0), (-76.0, 0.0, 0.0), 6.0),
    Tube("hepatic_vein", (-6.0, 26.0, 42.0), (-16.0, -34.0, 4.0), 8.0),
    Tube("hepatic_vein", (0.0, 26.0, 42.0), (30.0, -14.0, 26.0), 6.0),
    # bile ducts, anterior to the portal branches
    Tube("bile_duct", (14.0, -2.0, -65.0), (-6.0, -6.0, -10.0), 6.0),
    Tube("bile_duct", (-6.0, -6.0, -10.0), (-40.0, -6.0, -10.0), 4.0),
    Tube("bile_duct", (-6.0, -6.0, -10.0), (14.0, -28.0, -4.0), 4.0),
)


def _axes(field_mm: tuple[float, float, float], spacing: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    shape = np.maximum(np.round(np.asarray(field_mm) / spacing).astype(int), 1)
    origin = -(shape - 1) * spacing / 2.0
    return [origin[a] + spacing[a] * np.arange(shape[a]) for a in range(3)], origin


def _ellipsoid(coords: list[np.ndarray], centre: Sequence[float], semi_axes: Sequence[float]) -> np.ndarray:
    x, y, z = (
        coords[a][:, None, None] if a == 0 else coords[a][None, :, None] if a == 1 else coords[a][None, None, :]
        for a in range(3)
    )
    inside: np.ndarray = ((x - centre[0]) / semi_axes[0]) ** 2 + ((y - centre[1]) / semi_axes[1]) ** 2 + (
        (z - centre[2]) / semi_axes[2]
    ) ** 2 <= 1.0
    return inside


def _paint_capsule(mask: np.ndarray, coords: list[np.ndarray], start: ArrayLike, end: ArrayLike, radius: float) -> None:
    """Set the voxels whose centres lie within `radius` of the segment start–end."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    low, high = np.minimum(start, end) - radius, np.maximum(start, end) + radius
    window = [np.nonzero((c >= low[a]) & (c <= high[a]))[0] for a, c in enumerate(coords)]
    if any(w.size == 0 for w in window):
        return
    box = tuple(slice(w[0], w[-1] + 1) for w in window)
    points = np.stack(np.meshgrid(*(coords[a][box[a]] for a in range(3)), indexing="ij"), axis=-1)
    axis = end - start
    t = np.clip(((points - start) @ axis) / max(float(axis @ axis), 1e-12), 0.0, 1.0)
    distance = np.linalg.norm(points - (start + t[..., None] * axis), axis=-1)
    mask[box] |= distance <= radius


def _vertical_cylinder(coords: list[np.ndarray], axis_xy: Sequence[float], radius: float) -> np.ndarray:
    x, y = coords[0][:, None, None], coords[1][None, :, None]
    inside = (x - axis_xy[0]) ** 2 + (y - axis_xy[1]) ** 2 <= radius**2
    return np.broadcast_to(inside, (len(coords[0]), len(coords[1]), len(coords[2])))


def make_phantom(
    tumours: list[TumourSpec],
    spacing_mm: float | tuple[float, float, float] = 1.0,
    seed: int = 0,
    field_mm: tuple[float, float, float] = (200.0, 170.0, 130.0),
    noise_hu: float = 12.0,
    extra_tubes: tuple[Tube, ...] = (),
) -> Phantom:
    """Render the liver phantom with the given tumours.

    Parameters
    ----------
    tumours : list of TumourSpec
        Spherical tumours (centre LPS mm, diameter mm); voxels whose centres lie inside are tumour.
    spacing_mm : float or tuple of 3 floats
        Voxel size along x, y, z (LPS axes), mm.
    seed : int
        Seed of the CT noise.
    field_mm : tuple of 3 floats
        Extent of the field along x, y, z, mm, centred on the origin.
    noise_hu : float
        Standard deviation of the Gaussian CT noise, HU.
    extra_tubes : tuple of Tube
        Further vessels or ducts (the demo adds a segmental bile duct).

    Returns
    -------
    Phantom
    """
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if np.any(spacing <= 0) or np.any(np.asarray(field_mm) <= 0):
        raise InputError("phantom.spacing_mm", "positive spacing and field sizes", spacing_mm)
    for number, tumour in enumerate(tumours):
        if tumour.diameter_mm <= 0:
            raise InputError(f"phantom.tumours[{number}].diameter_mm", "a positive diameter", tumour.diameter_mm)
    coords, origin = _axes(field_mm, spacing)
    shape = tuple(len(c) for c in coords)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin

    x, y = coords[0][:, None, None], coords[1][None, :, None]
    body_2d = (x / _BODY_SEMI_AXES[0]) ** 2 + (y / _BODY_SEMI_AXES[1]) ** 2 <= 1.0
    inner_2d = (x / (_BODY_SEMI_AXES[0] - _FAT_RIM_MM)) ** 2 + (y / (_BODY_SEMI_AXES[1] - _FAT_RIM_MM)) ** 2 <= 1.0
    body = np.broadcast_to(body_2d, shape)
    inner = np.broadcast_to(inner_2d, shape)

    liver = (_ellipsoid(coords, *_RIGHT_LOBE) | _ellipsoid(coords, *_LEFT_LOBE)) & inner
    tubes = list(_TUBES) + list(extra_tubes)
    masks = {name: np.zeros(shape, dtype=bool) for name in LABELS}
    masks["liver"] = liver
    masks["gallbladder"] = _ellipsoid(coords, *_GALLBLADDER) & inner
    masks["ivc"] = _vertical_cylinder(coords, _IVC_AXIS, _IVC_DIAMETER / 2).copy()
    masks["aorta"] = _vertical_cylinder(coords, _AORTA_AXIS, _AORTA_DIAMETER / 2).copy()
    for tube in tubes:
        _paint_capsule(masks[tube.structure], coords, tube.start_mm, tube.end_mm, tube.diameter_mm / 2)
    masks["bone"] = _vertical_cylinder(coords, _SPINE_AXIS, _SPINE_RADIUS).copy()
    _paint_ribs(masks["bone"], coords)
    for tumour in tumours:
        masks["tumour"] |= _ellipsoid(coords, tumour.centre_mm, (tumour.diameter_mm / 2,) * 3)

    # Paint order: later structures win where they overlap; tumours last so their spheres stay whole.
    labels = np.zeros(shape, dtype=np.uint8)
    for name in ("liver", "gallbladder", "portal_vein", "hepatic_vein", "ivc", "aorta", "bile_duct", "bone", "tumour"):
        labels[masks[name] & body] = LABELS[name]

    ct = np.where(body, np.where(inner, HU["soft_tissue"], HU["fat"]), HU["air"]).astype(np.float32)
    for name, value in LABELS.items():
        ct[labels == value] = HU[name]
    ct += np.random.default_rng(seed).normal(0.0, noise_hu, size=shape).astype(np.float32)

    couinaud = _couinaud_segments(coords, labels != 0) * np.isin(labels, [LABELS["liver"], LABELS["tumour"]])
    return Phantom(
        ct=Volume(ct, affine, "CT"),
        labels=Volume(labels, affine, "SEG"),
        label_map=dict(LABELS),
        couinaud=Volume(couinaud.astype(np.uint8), affine, "SEG"),
        tumours=list(tumours),
        tubes=tubes,
    )


def _paint_ribs(bone: np.ndarray, coords: list[np.ndarray]) -> None:
    """Right-sided ribs: arcs just inside the skin at several levels, from anterior to posterior."""
    radius_x, radius_y = _BODY_SEMI_AXES[0] - 12.0, _BODY_SEMI_AXES[1] - 12.0
    angles = np.radians(np.linspace(100.0, 250.0, 16))  # measured from +x (patient left) towards +y
    for z in _RIB_LEVELS_Z:
        points = [(radius_x * np.cos(a), radius_y * np.sin(a), z) for a in angles]
        for start, end in zip(points[:-1], points[1:]):
            _paint_capsule(bone, coords, start, end, _RIB_DIAMETER / 2)


def _couinaud_segments(coords: list[np.ndarray], organ: np.ndarray) -> np.ndarray:
    """Couinaud segment number by the classical planes (see the module docstring)."""
    x, y, z = (c.reshape([-1 if a == b else 1 for b in range(3)]) for a, c in enumerate(coords))
    shape = organ.shape
    superior = np.broadcast_to(z > _PORTAL_PLANE_Z, shape)
    # right hepatic vein plane: vertical, through the right hepatic vein's course in x–y
    rhv_start, rhv_end = np.array([-14.0, 30.0]), np.array([-76.0, 0.0])
    direction = rhv_end - rhv_start
    posterior = np.broadcast_to(direction[0] * (y - rhv_start[1]) - direction[1] * (x - rhv_start[0]) < 0, shape)
    right = np.broadcast_to(x < _CANTLIE_X, shape)
    lateral_left = np.broadcast_to(x > _FALCIFORM_X, shape)
    segments = np.where(
        right,
        np.where(posterior, np.where(superior, 7, 6), np.where(superior, 8, 5)),
        np.where(lateral_left, np.where(superior, 2, 3), 4),
    )
    caudate = np.broadcast_to(
        ((x - _IVC_AXIS[0]) ** 2 + (y - _IVC_AXIS[1]) ** 2 <= 24.0**2) & (y > 18.0) & (z < 30.0), shape
    )
    return np.where(caudate, 1, segments).astype(np.uint8)


#: The demo tumour: a 28 mm hepatocellular carcinoma in segment 8 beside the right hepatic vein.
DEMO_TUMOUR_DIAMETER_MM = 28.0
#: Gap between the demo tumour's surface and its nearest bile duct, and the right hepatic vein's wall.
DEMO_BILE_DUCT_GAP_MM = 6.0
DEMO_HEPATIC_VEIN_GAP_MM = 5.0


def demo_phantom(seed: int = 0, spacing_mm: float | tuple[float, float, float] = 1.0) -> Phantom:
    """The demo case: a 28 mm HCC in Couinaud segment 8 whose surface lies 5 mm from the 10 mm right
    hepatic vein and 6 mm from a 3 mm segmental bile duct.

    The tumour sits anterior to the proximal right hepatic vein; the segmental duct runs past it parallel
    to the vein on the far side, so both gaps hold by construction (centre-to-axis distance = radius +
    gap + tube radius).
    """
    vein = next(t for t in _TUBES if t.structure == "hepatic_vein")
    start, end = np.asarray(vein.start_mm), np.asarray(vein.end_mm)
    along = (end - start) / np.linalg.norm(end - start)
    anterior = np.array([-0.6, -0.8, 0.0])  # anterior and lateral, away from the middle hepatic vein
    away = anterior - (anterior @ along) * along  # anterior, perpendicular to the vein
    away /= np.linalg.norm(away)
    radius = DEMO_TUMOUR_DIAMETER_MM / 2
    foot = start + 0.7 * (end - start)
    centre = foot + away * (radius + DEMO_HEPATIC_VEIN_GAP_MM + vein.diameter_mm / 2)
    duct_diameter = 3.0
    duct_foot = centre + away * (radius + DEMO_BILE_DUCT_GAP_MM + duct_diameter / 2)
    duct = Tube("bile_duct", tuple(duct_foot - 22.0 * along), tuple(duct_foot + 18.0 * along), duct_diameter)
    tumour = TumourSpec((float(centre[0]), float(centre[1]), float(centre[2])), DEMO_TUMOUR_DIAMETER_MM)
    return make_phantom([tumour], spacing_mm=spacing_mm, seed=seed, extra_tubes=(duct,))
