"""A patient whose tumour lies behind a bony cage with one narrow window, for the converging-path tests.

The body is an elliptic cylinder along z (it fills the field of view craniocaudally, so no path may leave
through the top or bottom of the image). A bony cage 6 mm thick lies 6 mm under the skin all round,
pierced by one round window of diameter `WINDOW_DIAMETER_MM` on the anterior axis of the tumour, like a
narrow intercostal space. Two parallel probes at the smallest spacing (10 mm) cannot both pass the window
with a clearance of 2 mm beyond their radius (0.735 mm): that would need 10 + 2 × 2.735 = 15.5 mm. A
single probe can (its axis needs 2 × 2.735 = 5.5 mm), and so can probes converging on the window.
"""

from __future__ import annotations

import numpy as np

from cryoplan.imaging.phantom import Phantom, TumourSpec
from cryoplan.imaging.volume import Volume

SPACING_MM = 1.0
FIELD_MM = (110.0, 100.0, 80.0)
TUMOUR_CENTRE = np.array([0.0, 5.0, 0.0])
# Large enough that one 17G rod does not cover tumour + 5 mm (24 mm) at 99 % (73 % after a 15 min double
# freeze, the longest the planning tests allow), small enough that two converging ones do after 10 min.
TUMOUR_DIAMETER_MM = 14.0
BODY_SEMI_AXES = (50.0, 45.0)
CAGE_OUTER = (44.0, 39.0)
CAGE_INNER = (38.0, 33.0)
WINDOW_DIAMETER_MM = 14.0
WINDOW_AXIS = np.array([0.0, -1.0, 0.0])  # from the tumour towards the anterior skin
LIVER_SEMI_AXES = (32.0, 26.0, 32.0)
LABEL_MAP = {"liver": 1, "tumour": 2, "bone": 9}


def in_bone(points: np.ndarray, window_diameter_mm: float = WINDOW_DIAMETER_MM) -> np.ndarray:
    """Whether LPS points (..., 3) lie in the bony cage (the analytic shape, not its voxels)."""
    x, y = points[..., 0], points[..., 1]
    outer = (x / CAGE_OUTER[0]) ** 2 + (y / CAGE_OUTER[1]) ** 2 <= 1
    inner = (x / CAGE_INNER[0]) ** 2 + (y / CAGE_INNER[1]) ** 2 <= 1
    offset = points - TUMOUR_CENTRE
    along = offset @ WINDOW_AXIS
    radial = np.linalg.norm(offset - along[..., None] * WINDOW_AXIS, axis=-1)
    window = (radial <= window_diameter_mm / 2) & (along > 0)
    return outer & ~inner & ~window


def window_phantom(window_diameter_mm: float = WINDOW_DIAMETER_MM, seed: int = 0, noise_hu: float = 10.0) -> Phantom:
    """The phantom on a 1 mm grid centred on the origin, CT in HU with seeded noise."""
    shape = tuple(int(round(f / SPACING_MM)) for f in FIELD_MM)
    origin = -(np.array(shape) - 1) * SPACING_MM / 2
    affine = np.diag([SPACING_MM] * 3 + [1.0])
    affine[:3, 3] = origin
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    points = index * SPACING_MM + origin
    body = (points[..., 0] / BODY_SEMI_AXES[0]) ** 2 + (points[..., 1] / BODY_SEMI_AXES[1]) ** 2 <= 1
    liver = np.linalg.norm((points - TUMOUR_CENTRE) / LIVER_SEMI_AXES, axis=-1) <= 1
    tumour = np.linalg.norm(points - TUMOUR_CENTRE, axis=-1) <= TUMOUR_DIAMETER_MM / 2
    labels = np.zeros(shape, np.uint8)
    labels[liver] = LABEL_MAP["liver"]
    labels[in_bone(points, window_diameter_mm)] = LABEL_MAP["bone"]
    labels[tumour] = LABEL_MAP["tumour"]
    ct = np.where(body, 40.0, -1000.0).astype(np.float32)
    for name, hu in (("liver", 100.0), ("tumour", 45.0), ("bone", 500.0)):
        ct[labels == LABEL_MAP[name]] = hu
    ct += np.random.default_rng(seed).normal(0.0, noise_hu, shape).astype(np.float32)
    return Phantom(
        Volume(ct, affine, "CT"),
        Volume(labels, affine, "SEG"),
        dict(LABEL_MAP),
        Volume(np.zeros(shape, np.uint8), affine, "SEG"),
        [TumourSpec(tuple(TUMOUR_CENTRE), TUMOUR_DIAMETER_MM)],
    )
