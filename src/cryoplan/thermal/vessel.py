"""Large vessels as heat sinks: a lumen mask with a convective wall (BioMed Eng OnLine 2008;7:21)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cryoplan.errors import InputError
from cryoplan.thermal.grid import Grid

NUSSELT_LAMINAR = 4.36
"""Nusselt number of fully developed laminar pipe flow at constant wall heat flux (Incropera, §8.4)."""

BLOOD_CONDUCTIVITY_W_MK = 0.52
BLOOD_TEMPERATURE_C = 37.0


@dataclass(frozen=True)
class Vessel:
    """A vessel whose lumen (boolean mask on the simulation grid) holds flowing blood at 37 °C.

    Heat crosses the wall as −k ∂T/∂n = h (T − T_blood) with h = Nu · k_blood / D; the lumen never freezes.

    Parameters
    ----------
    mask : bool array
        Lumen voxels, on the simulation grid.
    diameter_mm : float
        Lumen diameter, which sets the film coefficient h.
    """

    mask: np.ndarray
    diameter_mm: float

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 3:
            raise InputError("vessel.mask", "a 3-D boolean mask on the grid", f"{mask.ndim}-D")
        if not (np.isfinite(self.diameter_mm) and self.diameter_mm > 0):
            raise InputError("vessel.diameter_mm", "a positive diameter in mm", self.diameter_mm)
        object.__setattr__(self, "mask", mask.astype(bool))

    @property
    def wall_heat_transfer_w_m2k(self) -> float:
        """h = Nu · k_blood / D (≈ 450 W/m²·K at 5 mm)."""
        return NUSSELT_LAMINAR * BLOOD_CONDUCTIVITY_W_MK / (self.diameter_mm * 1e-3)

    @classmethod
    def cylinder(cls, grid: Grid, point_mm: ArrayLike, direction: ArrayLike, diameter_mm: float) -> Vessel:
        """A straight vessel through `point_mm` along `direction` (LPS), spanning the grid."""
        axis = np.asarray(direction, dtype=np.float64)
        axis = axis / np.linalg.norm(axis)
        offset = grid.centres_mm() - np.asarray(point_mm, dtype=np.float64)
        radial = offset - (offset @ axis)[..., None] * axis
        return cls(mask=np.linalg.norm(radial, axis=-1) <= 0.5 * diameter_mm, diameter_mm=diameter_mm)
