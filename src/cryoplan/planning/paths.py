"""Probe paths: insertion directions from the skin, where a path enters the body and how far it stays from
the structures it must avoid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy
from cryoplan.planning.settings import PlanSettings

# Needle paths keep this much tissue between their surface and a forbidden structure.
PATH_CLEARANCE_MM = 2.0


def fibonacci_directions(count: int) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere (Fibonacci lattice; González, Math Geosci 2010)."""
    index = np.arange(count) + 0.5
    polar = np.arccos(1 - 2 * index / count)
    azimuth = np.pi * (1 + 5**0.5) * index
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


@dataclass
class PathMap:
    """What the path check samples: the body and the clearance to forbidden structures, in LPS."""

    grid: Volume
    body: np.ndarray
    clearance_mm: np.ndarray

    @classmethod
    def build(cls, anatomy: PlanningAnatomy, min_calibre_mm: float) -> PathMap:
        forbidden = anatomy.forbidden(min_calibre_mm)
        if forbidden.any():
            clearance = ndimage.distance_transform_edt(~forbidden, sampling=anatomy.grid.spacing_mm)
        else:
            clearance = np.full(forbidden.shape, np.inf)
        return cls(anatomy.grid, anatomy.body, clearance.astype(np.float32))

    def _sample(self, array: np.ndarray, points: np.ndarray, order: int, outside: float) -> np.ndarray:
        index = self.grid.lps_to_index(points)
        return ndimage.map_coordinates(array, index.T, order=order, mode="constant", cval=outside)

    def skin_entry(self, tip: np.ndarray, outward: np.ndarray, max_path_mm: float, step_mm: float = 0.5):
        """Where the line from `tip` along `outward` leaves the body (None when it does not within reach)."""
        distances = np.arange(0.0, max_path_mm + step_mm, step_mm)
        points = tip + distances[:, None] * outward
        # Beyond the image is unknown (-1): a path that leaves the field of view inside the body has no
        # skin entry we can check.
        body = self._sample(self.body.astype(np.float32), points, 0, -1.0)
        outside = np.flatnonzero(body < 0.5)
        if outside.size == 0 or outside[0] == 0 or body[outside[0]] < 0:
            return None
        return points[outside[0]]

    def path_clearance_mm(self, tip: np.ndarray, entry: np.ndarray, step_mm: float = 0.5) -> float:
        """Smallest distance from the straight path (tip to skin entry) to a forbidden structure."""
        length = float(np.linalg.norm(entry - tip))
        samples = np.linspace(0.0, 1.0, max(int(length / step_mm), 2))
        points = tip + samples[:, None] * (entry - tip)
        return float(self._sample(self.clearance_mm, points, 1, np.inf).min())


def probe_paths(
    path_map: PathMap, tips: np.ndarray, directions: np.ndarray, probe_radius_mm: float, max_path_mm: float
):
    """Skin entries of probes ending at `tips` and inserted along `directions` (one direction for
    parallel probes, or one per probe); None if any path leaves no clearance of `PATH_CLEARANCE_MM`
    beyond the probe's radius, or is too long."""
    entries = []
    for tip, direction in zip(tips, np.broadcast_to(directions, np.shape(tips))):
        entry = path_map.skin_entry(tip, -direction, max_path_mm)
        if entry is None:
            return None
        if path_map.path_clearance_mm(tip, entry) < probe_radius_mm + PATH_CLEARANCE_MM:
            return None
        entries.append(entry)
    return np.array(entries)


def entry_directions(settings: PlanSettings, count: int = 800) -> np.ndarray:
    """Insertion directions (skin → tip) allowed by the entry window."""
    outward = fibonacci_directions(count)
    allowed = (outward[:, 1] <= settings.entry_max_posterior) & (
        np.abs(outward[:, 2]) <= settings.entry_max_craniocaudal
    )
    return -outward[allowed]


def ranked_directions(
    path_map: PathMap,
    centre: np.ndarray,
    settings: PlanSettings,
    probe_radius_mm: float,
    depth_mm: float = 0.0,
    keep: int = 8,
) -> list[np.ndarray]:
    """Feasible insertion directions to `centre`, spread at least 12° apart.

    Directions whose path stays clear down to `depth_mm` beyond the centre (where a probe's tip lies
    when its active zone is centred on the target) come first, each group shortest path first; the
    clearance also counts in the score.
    """
    scored = []
    for direction in entry_directions(settings):
        entry = path_map.skin_entry(centre, -direction, settings.max_path_mm)
        if entry is None:
            continue
        clearance = path_map.path_clearance_mm(centre, entry)
        if clearance < probe_radius_mm + PATH_CLEARANCE_MM:
            continue
        deep = path_map.path_clearance_mm(centre + depth_mm * direction, centre) >= probe_radius_mm + PATH_CLEARANCE_MM
        scored.append((not deep, float(np.linalg.norm(entry - centre)) - 0.5 * min(clearance, 20.0), direction))
    scored.sort(key=lambda item: item[:2])
    chosen: list[np.ndarray] = []
    for _, _, direction in scored:
        if all(np.dot(direction, other) < math.cos(math.radians(12)) for other in chosen):
            chosen.append(direction)
        if len(chosen) == keep:
            break
    return chosen
