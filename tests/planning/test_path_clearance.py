"""The path check's bounds and its shortcut against the exact clearance, on random obstacles in an image with
anisotropic, rotated voxels: the bounds from the distance transform bracket the exact slack, and the clearance
of a path checked against a need is exact whenever it falls short of that need."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from cryoplan.imaging.volume import Volume
from cryoplan.planning.paths import PathMap
from cryoplan.planning.settings import DEFAULT_CLEARANCES_MM, PlanSettings

SHAPE = (28, 24, 12)


def _rotated_affine(angle_rad: float) -> np.ndarray:
    """1.5 × 1.5 × 3 mm voxels whose i and j axes are turned by `angle_rad` about S."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.5, 1.5, 3.0])
    affine[:3, 3] = [-10.0, 5.0, 2.0]
    return affine


def _path_map(rng: np.random.Generator) -> tuple[PathMap, Volume, np.ndarray]:
    """A path map of a rib and a portal vein (two clearance values) at random voxels."""
    grid = Volume(np.zeros(SHAPE, np.float32), _rotated_affine(0.4), "CT")
    obstacles = {name: np.zeros(SHAPE, dtype=bool) for name in ("rib", "portal_vein")}
    for mask in obstacles.values():
        mask[tuple(rng.integers(0, n, 10) for n in SHAPE)] = True

    class Anatomy:
        def obstacles(self, _):
            return obstacles

    anatomy = Anatomy()
    anatomy.grid = grid
    anatomy.body = np.ones(SHAPE, dtype=bool)
    path_map = PathMap.build(anatomy, PlanSettings())
    return path_map, grid, obstacles


def _true_slack(grid: Volume, obstacles: dict[str, np.ndarray], points: np.ndarray) -> np.ndarray:
    """Smallest distance to an obstacle's voxel centres less its clearance, by brute force."""
    return np.min(
        [
            cKDTree(grid.index_to_lps(np.argwhere(mask))).query(points)[0] - DEFAULT_CLEARANCES_MM[name]
            for name, mask in obstacles.items()
        ],
        axis=0,
    )


def test_the_bounds_bracket_the_exact_slack():
    rng = np.random.default_rng(3)
    path_map, grid, obstacles = _path_map(rng)
    points = grid.index_to_lps(rng.uniform(-0.4, np.array(SHAPE) - 0.6, (4000, 3)))
    true = _true_slack(grid, obstacles, points)
    lower, upper = path_map.slack_bounds(points)
    assert np.all(lower <= true + 1e-5) and np.all(true <= upper + 1e-5)
    assert np.median(upper - lower) < 2 * np.linalg.norm([1.5, 1.5, 3.0])  # bounds, not ±∞
    np.testing.assert_allclose(path_map.exact_slack(points)[0], true, atol=1e-9)


def test_a_path_short_of_its_need_is_measured_exactly():
    rng = np.random.default_rng(5)
    path_map, grid, obstacles = _path_map(rng)
    outcomes = set()
    for _ in range(150):
        tip, entry = (grid.index_to_lps(rng.uniform(0, np.array(SHAPE) - 1, 3)[None])[0] for _ in range(2))
        points = path_map.path_points(tip, entry)
        half = float(np.linalg.norm(entry - tip)) / max(len(points) - 1, 1) / 2
        exact = float(_true_slack(grid, obstacles, points).min()) - half
        assert abs(path_map.path_clearance_mm(tip, entry) - exact) < 1e-9
        need = float(rng.uniform(-3.0, 6.0))
        checked = path_map.path_clearance_mm(tip, entry, need=need)
        if checked < need:
            assert abs(checked - exact) < 1e-9
        else:
            assert exact >= need - 1e-9
        outcomes.add(checked < need)
    assert outcomes == {True, False}  # both kinds of path were checked


def test_a_remembered_path_check_answers_as_the_check_itself():
    rng = np.random.default_rng(7)
    path_map, grid, _ = _path_map(rng)
    path_map.body = np.zeros(SHAPE, dtype=bool)
    path_map.body[1:-1, 1:-1, 1:-1] = True  # a skin inside the image, air beyond it
    outcomes = set()
    for _ in range(60):
        tip = grid.index_to_lps(rng.uniform(2, np.array(SHAPE) - 3, 3)[None])[0]
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        radius = float(rng.choice([0.85, 2.5]))
        entry = path_map.skin_entry(tip, -direction, 200.0)
        if entry is not None and path_map.path_clearance_mm(tip, entry, need=radius) < radius:
            entry = None
        checked = path_map.checked_entry(tip, direction, radius, 200.0)
        assert (checked is None) == (entry is None)
        if entry is not None:
            np.testing.assert_array_equal(checked, entry)
            assert not checked.flags.writeable
        assert path_map.checked_entry(tip.copy(), direction.copy(), radius, 200.0) is checked
        outcomes.add(entry is None)
    assert outcomes == {True, False}  # blocked and clear paths both checked
