"""Generated volumes of known geometry for the imaging tests: oblique affines, anisotropic spacing,
spheres and tubes placed in patient millimetres."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from cryoplan.imaging import Volume


def oblique_grid(seed: int, extent_mm: float = 70.0, spacing_range=(0.7, 2.5)) -> Volume:
    """An empty volume with a random rotation, anisotropic spacing and origin (seeded)."""
    rng = np.random.default_rng(seed)
    spacing = rng.uniform(*spacing_range, 3)
    affine = np.eye(4)
    affine[:3, :3] = Rotation.random(random_state=seed).as_matrix() * spacing
    affine[:3, 3] = rng.uniform(-100, 100, 3)
    shape = tuple(int(n) for n in np.ceil(extent_mm / spacing))
    return Volume(np.zeros(shape, dtype=np.uint8), affine)


def centres_mm(grid: Volume) -> np.ndarray:
    """LPS position of every voxel centre, shape grid.shape + (3,)."""
    index = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), axis=-1)
    return grid.index_to_lps(index)


def sphere(grid: Volume, centre, diameter_mm: float, points: np.ndarray | None = None) -> np.ndarray:
    """Voxels whose centres lie inside the sphere."""
    points = centres_mm(grid) if points is None else points
    return np.linalg.norm(points - np.asarray(centre), axis=-1) <= diameter_mm / 2


def ct_like(grid: Volume, labels: np.ndarray, seed: int = 0) -> Volume:
    """Int16 HU image: -1000 outside, 100 in label 1, 40 in label 2, 170 elsewhere labelled, with noise."""
    rng = np.random.default_rng(seed)
    values = np.select([labels == 0, labels == 1, labels == 2], [-1000.0, 100.0, 40.0], 170.0)
    values = values + rng.normal(0, 5, labels.shape)
    return grid.with_array(np.round(values).astype(np.int16), modality="CT")
