"""The simulation grid: uniform, isotropic, axis-aligned with the patient frame (LPS millimetres)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cryoplan.errors import InputError


@dataclass(frozen=True)
class Grid:
    """A uniform grid whose voxel ``[i, j, k]`` has its centre at ``origin_mm + spacing_mm * (i, j, k)``.

    Axes i, j, k run along the patient's L, P and S directions (LPS), so the affine is diagonal.

    Parameters
    ----------
    origin_mm : array of 3 floats
        LPS position of the centre of voxel (0, 0, 0).
    spacing_mm : float
        Voxel edge length in millimetres.
    shape : tuple of 3 ints
        Number of voxels along i, j, k.
    """

    origin_mm: np.ndarray
    spacing_mm: float
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        origin = np.asarray(self.origin_mm, dtype=np.float64).reshape(-1)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise InputError("grid.origin_mm", "three finite numbers", self.origin_mm)
        if not (np.isfinite(self.spacing_mm) and self.spacing_mm > 0):
            raise InputError("grid.spacing_mm", "a positive number of millimetres", self.spacing_mm)
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError("grid.shape", "three positive voxel counts", self.shape)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "spacing_mm", float(self.spacing_mm))
        object.__setattr__(self, "shape", shape)

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix from voxel index (i, j, k, 1) to LPS millimetres."""
        affine = np.eye(4)
        affine[:3, :3] *= self.spacing_mm
        affine[:3, 3] = self.origin_mm
        return affine

    @property
    def voxel_volume_ml(self) -> float:
        return self.spacing_mm**3 / 1000.0

    @property
    def extent_mm(self) -> np.ndarray:
        """LPS position of the centre of the last voxel."""
        return self.origin_mm + self.spacing_mm * (np.asarray(self.shape) - 1)

    def axis_mm(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates along one axis (0 = L, 1 = P, 2 = S)."""
        coords: np.ndarray = self.origin_mm[axis] + self.spacing_mm * np.arange(self.shape[axis])
        return coords

    def centres_mm(self) -> np.ndarray:
        """LPS coordinates of every voxel centre, shape ``(*shape, 3)``."""
        return np.stack(np.meshgrid(*(self.axis_mm(a) for a in range(3)), indexing="ij"), axis=-1)

    def index_of(self, points_mm: ArrayLike) -> np.ndarray:
        """Continuous voxel indices of LPS points (shape ``(..., 3)``)."""
        index: np.ndarray = (np.asarray(points_mm, dtype=np.float64) - self.origin_mm) / self.spacing_mm
        return index

    def contains(self, points_mm: ArrayLike) -> np.ndarray:
        """Whether each point lies within the span of voxel centres."""
        index = self.index_of(points_mm)
        inside: np.ndarray = np.all((index >= 0) & (index <= np.asarray(self.shape) - 1), axis=-1)
        return inside

    @classmethod
    def around(cls, points_mm: ArrayLike, margin_mm: float, spacing_mm: float) -> Grid:
        """The smallest grid of `spacing_mm` covering every point plus `margin_mm` on each side."""
        points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        if not np.all(np.isfinite(points)):
            raise InputError("grid.points_mm", "finite LPS coordinates", points.tolist())
        if not (np.isfinite(spacing_mm) and spacing_mm > 0):
            raise InputError("grid.spacing_mm", "a positive number of millimetres", spacing_mm)
        low = points.min(axis=0) - margin_mm
        high = points.max(axis=0) + margin_mm
        counts = np.ceil((high - low) / spacing_mm).astype(int) + 1
        shape = (int(counts[0]), int(counts[1]), int(counts[2]))
        centre = 0.5 * (low + high)
        origin = centre - 0.5 * spacing_mm * (np.asarray(shape) - 1)
        return cls(origin_mm=origin, spacing_mm=spacing_mm, shape=shape)
