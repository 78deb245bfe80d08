"""ThermalResult: what a simulation leaves behind, and the isotherms derived from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import map_coordinates
from skimage.measure import marching_cubes

from cryoplan.thermal.grid import Grid


@dataclass(frozen=True)
class ThermalResult:
    """Outcome of `simulate`.

    Attributes
    ----------
    grid : Grid
    min_temperature_c : float32 array
        Lowest temperature each voxel reached, sampled after every super step (at most `SUPER_STEP_S`
        simulated seconds apart, `PREVIEW_SUPER_STEP_S` in a preview; about once a second where steps are
        shorter).
    final_temperature_c : float32 array
        Temperature at the end of the protocol.
    time_below_s : dict[float, float32 array]
        Seconds each voxel spent below each requested isotherm temperature.
    histories : dict[str, (times_s, temperatures_c)]
        Temperature–time curves at the requested points.
    elapsed_s : float
        Wall-clock time of the simulation.
    ice_fraction : float32 array
        Share of each voxel's latent heat released at the end of the protocol (0 unfrozen, 1 frozen).
    energy_j : dict[str, float]
        Energy ledger of the run: ``enthalpy_change``, ``probes``, ``perfusion``, ``metabolic``,
        ``boundary`` and ``vessels`` (J; heat into the tissue is positive).
    time_step_s : float
        Longest super step of the run (s).
    voxel_updates : int
        Voxel updates the run made (stencil passes times the voxels each covered).
    """

    grid: Grid
    min_temperature_c: np.ndarray
    final_temperature_c: np.ndarray
    time_below_s: dict[float, np.ndarray]
    histories: dict[str, tuple[np.ndarray, np.ndarray]]
    elapsed_s: float
    ice_fraction: np.ndarray | None = None
    energy_j: dict[str, float] = field(default_factory=dict)
    time_step_s: float = 0.0
    voxel_updates: int = 0

    def _field(self, which: str) -> np.ndarray:
        if which == "min":
            return self.min_temperature_c
        if which == "final":
            return self.final_temperature_c
        raise ValueError(f"which must be 'min' or 'final', not {which!r}")

    def isotherm_mask(self, temperature_c: float, which: str = "min") -> np.ndarray:
        """Voxels that reached `temperature_c` or colder (``which="min"``), or are at or below it at the end
        (``which="final"``)."""
        return self._field(which) <= temperature_c

    def isotherm_volume_ml(self, temperature_c: float, which: str = "min") -> float:
        """Volume enclosed by the isotherm: voxel count times voxel volume."""
        return float(np.count_nonzero(self.isotherm_mask(temperature_c, which)) * self.grid.voxel_volume_ml)

    def isotherm_surface(self, temperature_c: float, which: str = "min") -> tuple[np.ndarray, np.ndarray]:
        """Triangulated isotherm (marching cubes on the temperature field): vertices in LPS mm, faces.

        Returns empty arrays when no voxel reaches the temperature.

        References
        ----------
        W. E. Lorensen, H. E. Cline, SIGGRAPH 1987 (marching cubes).
        """
        values = self._field(which)
        if not (values.min() < temperature_c < values.max()):
            return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
        # scikit-image leaves marching_cubes unannotated.
        verts, faces, _, _ = marching_cubes(values, level=temperature_c)  # type: ignore[no-untyped-call]
        return self.grid.origin_mm + verts * self.grid.spacing_mm, faces

    def extents_mm(self, temperature_c: float, axis: ArrayLike, which: str = "final") -> tuple[float, float, float]:
        """(length, width, depth) of the isotherm: extent along the unit vector `axis`, the largest extent
        perpendicular to it, and the extent perpendicular to both; from the voxel centres inside plus one
        voxel (each voxel spans ± half a spacing)."""
        mask = self.isotherm_mask(temperature_c, which)
        if not mask.any():
            return 0.0, 0.0, 0.0
        points = self.grid.origin_mm + np.argwhere(mask) * self.grid.spacing_mm
        unit = np.asarray(axis, dtype=np.float64)
        unit = unit / np.linalg.norm(unit)
        along = points @ unit
        perpendicular = points - along[:, None] * unit
        # Width direction: the perpendicular direction of largest spread (principal axis of the section).
        centred = perpendicular - perpendicular.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        width_axis = vt[0] - (vt[0] @ unit) * unit
        width_axis /= np.linalg.norm(width_axis)
        depth_axis = np.cross(unit, width_axis)
        voxel = self.grid.spacing_mm

        def span(values: np.ndarray) -> float:
            return float(values.max() - values.min() + voxel)

        return span(along), span(points @ width_axis), span(points @ depth_axis)

    def temperature_along_c(self, points_mm: ArrayLike, which: str = "final") -> np.ndarray:
        """Temperature at LPS points (shape ``(n, 3)``), trilinear between voxel centres."""
        index = self.grid.index_of(np.asarray(points_mm, dtype=np.float64).reshape(-1, 3))
        values: np.ndarray = map_coordinates(self._field(which), index.T, order=1, mode="nearest")
        return values

    def isotherm_distance_mm(
        self, temperature_c: float, origin_mm: ArrayLike, direction: ArrayLike, which: str = "final"
    ) -> float:
        """Distance from `origin_mm` along `direction` to where the temperature first rises above
        `temperature_c` (linear interpolation on a ray sampled every quarter voxel); 0 when the origin is
        already warmer, NaN when the ray leaves the grid first."""
        unit = np.asarray(direction, dtype=np.float64)
        unit = unit / np.linalg.norm(unit)
        step = 0.25 * self.grid.spacing_mm
        length = float(np.linalg.norm(np.asarray(self.grid.shape) * self.grid.spacing_mm))
        s = np.arange(0.0, length, step)
        points = np.asarray(origin_mm, dtype=np.float64) + s[:, None] * unit
        inside = self.grid.contains(points)
        s, points = s[inside], points[inside]
        values = self.temperature_along_c(points, which)
        warmer = np.flatnonzero(values > temperature_c)
        if warmer.size == 0:
            return float("nan")
        n = int(warmer[0])
        if n == 0:
            return 0.0
        t0, t1 = values[n - 1], values[n]
        return float(s[n - 1] + (temperature_c - t0) / (t1 - t0) * step)
