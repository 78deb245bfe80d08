"""Planes through a volume in the patient frame: the axial, coronal and sagittal slices of the figures,
and oblique slices that contain a straight probe path from the skin to its tip.

A `Plane` is a rectangle in LPS millimetres, spanned by two unit vectors: `right` (the viewer's
horizontal axis, left to right) and `down` (the viewer's vertical axis, top to bottom). Orthogonal planes
follow the radiological convention: the patient's right on the viewer's left in axial and coronal views,
anterior at the top of axial views, anterior on the left of sagittal views, superior at the top of
coronal and sagittal views. Their display coordinates are the LPS coordinates along the plane's axes; an
oblique plane along a probe shows the distance from the skin entry along the probe and the distance
from the probe's axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume

# plane: (horizontal LPS axis, vertical LPS axis, fixed axis) and the letters at left, right, top, bottom.
PLANES = {
    "axial": ((0, 1, 2), ("R", "L", "A", "P")),
    "coronal": ((0, 2, 1), ("R", "L", "S", "I")),
    "sagittal": ((1, 2, 0), ("A", "P", "S", "I")),
}
AXIS_NAMES = ("x (mm, → patient left)", "y (mm, → posterior)", "z (mm, → superior)")
_LETTERS = ("L", "P", "S")
_OPPOSITE = {"L": "R", "P": "A", "S": "I"}


@dataclass(frozen=True)
class Plane:
    """A rectangle of the patient frame sampled every `step_mm`.

    Attributes
    ----------
    name : str
        ``axial``, ``coronal``, ``sagittal`` or ``oblique``.
    centre_lps : numpy.ndarray
        Centre of the rectangle (LPS mm).
    right, down : numpy.ndarray
        Unit vectors of the viewer's horizontal (left → right) and vertical (top → bottom) axes, orthogonal.
    half_width_mm, half_height_mm : float
        Half extents along `right` and `down`.
    step_mm : float
        Sample spacing.
    origin : tuple of float
        Display coordinates (horizontal, vertical) of the centre.
    vertical_sign : float
        +1 when the vertical display coordinate grows downwards, −1 when it grows upwards.
    letters : tuple of str
        Orientation letters at the left, right, top and bottom edges.
    axis_names : tuple of str
        Labels of the horizontal and vertical display axes.
    fixed_axis : int or None
        The LPS axis an orthogonal plane holds fixed (None for an oblique plane).
    """

    name: str
    centre_lps: np.ndarray
    right: np.ndarray
    down: np.ndarray
    half_width_mm: float
    half_height_mm: float
    step_mm: float = 0.5
    origin: tuple[float, float] = (0.0, 0.0)
    vertical_sign: float = 1.0
    letters: tuple[str, str, str, str] = ("", "", "", "")
    axis_names: tuple[str, str] = ("", "")
    fixed_axis: int | None = None

    @classmethod
    def orthogonal(cls, name: str, centre_lps: ArrayLike, half_width_mm: float, step_mm: float = 0.5) -> Plane:
        """The axial, coronal or sagittal square of half width `half_width_mm` through `centre_lps`."""
        if name not in PLANES:
            raise InputError("plane", " or ".join(PLANES), name)
        (h_axis, v_axis, fixed), letters = PLANES[name]
        centre = np.asarray(centre_lps, dtype=np.float64)
        right = np.eye(3)[h_axis]
        # The top of the view is anterior (y small) in axial views and superior (z large) otherwise.
        sign = 1.0 if v_axis == 1 else -1.0
        return cls(
            name,
            centre,
            right,
            sign * np.eye(3)[v_axis],
            half_width_mm,
            half_width_mm,
            step_mm,
            (float(centre[h_axis]), float(centre[v_axis])),
            sign,
            letters,
            (AXIS_NAMES[h_axis], AXIS_NAMES[v_axis]),
            fixed,
        )

    @classmethod
    def along_path(
        cls,
        entry_lps: ArrayLike,
        tip_lps: ArrayLike,
        beyond_mm: float = 20.0,
        half_height_mm: float = 40.0,
        step_mm: float = 0.5,
    ) -> Plane:
        """The oblique plane containing the straight path from `entry_lps` (skin) to `tip_lps`.

        The horizontal axis runs along the path from the skin (left) to the tip (right), from `beyond_mm`
        outside the skin to `beyond_mm` past the tip; the vertical axis is the direction perpendicular to
        the path closest to the patient's inferior (−S) direction, so the view is the one a radiologist
        gets by tilting a coronal or axial slice onto the probe (for a purely craniocaudal path, −A).
        Horizontal display coordinates are the distance from the skin entry along the path.
        """
        entry = np.asarray(entry_lps, dtype=np.float64)
        tip = np.asarray(tip_lps, dtype=np.float64)
        length = float(np.linalg.norm(tip - entry))
        if length == 0:
            raise InputError("path", "an entry point distinct from the tip", list(entry))
        right = (tip - entry) / length
        down = None
        for reference in (np.array([0.0, 0.0, -1.0]), np.array([0.0, -1.0, 0.0])):
            candidate = reference - (reference @ right) * right
            if np.linalg.norm(candidate) > 0.2:
                down = candidate / np.linalg.norm(candidate)
                break
        # Both references perpendicular to the path within 0.2 would need |right_z|, |right_y| > 0.98.
        assert down is not None, "a unit path direction is far from at least one of −S and −A"
        half_width = length / 2 + beyond_mm
        letters = (_letter(-right), _letter(right), _letter(-down), _letter(down))
        return cls(
            "oblique",
            (entry + tip) / 2,
            right,
            down,
            half_width,
            half_height_mm,
            step_mm,
            (length / 2, 0.0),
            1.0,
            letters,
            ("distance from the skin entry along the probe (mm)", "distance from the probe axis (mm)"),
            None,
        )

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample offsets (mm) from the centre along `right` and along `down`."""
        horizontal = np.arange(-self.half_width_mm, self.half_width_mm + 1e-9, self.step_mm)
        vertical = np.arange(-self.half_height_mm, self.half_height_mm + 1e-9, self.step_mm)
        return horizontal, vertical

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(horizontal, vertical) display coordinates of the samples; vertical runs from the top row down."""
        horizontal, vertical = self.offsets()
        return self.origin[0] + horizontal, self.origin[1] + self.vertical_sign * vertical

    def points(self) -> np.ndarray:
        """LPS points of the samples, shape (rows, columns, 3), the first row at the top."""
        horizontal, vertical = self.offsets()
        points: np.ndarray = (
            self.centre_lps + horizontal[None, :, None] * self.right + vertical[:, None, None] * self.down
        )
        return points

    def sample(self, volume: Volume, order: int = 1, outside: float = 0.0) -> np.ndarray:
        """Values of `volume` on the plane (linear, or nearest for order 0); `outside` beyond its grid."""
        index = volume.lps_to_index(self.points())
        values: np.ndarray = ndimage.map_coordinates(
            np.asarray(volume.array, dtype=np.float32),
            np.moveaxis(index, -1, 0),
            order=order,
            mode="constant",
            cval=outside,
        )
        return values

    def project(self, points_lps: ArrayLike) -> np.ndarray:
        """(horizontal, vertical) display coordinates of LPS points projected on the plane, shape (n, 2)."""
        offset = np.atleast_2d(points_lps) - self.centre_lps
        return np.stack(
            [self.origin[0] + offset @ self.right, self.origin[1] + self.vertical_sign * (offset @ self.down)], axis=1
        )

    def distance_mm(self, points_lps: ArrayLike) -> np.ndarray:
        """Distance of LPS points from the plane (along its normal)."""
        normal = np.cross(self.right, self.down)
        distance: np.ndarray = np.abs((np.atleast_2d(points_lps) - self.centre_lps) @ normal)
        return distance

    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) display coordinates for ``imshow`` with its default upper origin."""
        horizontal, vertical = self.coordinates()
        return (horizontal[0], horizontal[-1], vertical[-1], vertical[0])

    def title(self) -> str:
        """Where the plane lies: the fixed coordinate of an orthogonal plane, or 'along the probe'."""
        if self.fixed_axis is None:
            return "oblique along the probe, skin to tip"
        return f"{self.name} at {'xyz'[self.fixed_axis]} = {self.centre_lps[self.fixed_axis]:.1f} mm"


def _letter(direction: np.ndarray) -> str:
    """Orientation letter of the LPS axis a direction points most along (L/R, P/A, S/I)."""
    axis = int(np.argmax(np.abs(direction)))
    letter = _LETTERS[axis]
    return letter if direction[axis] > 0 else _OPPOSITE[letter]
