"""`Volume`: an image array plus the 4×4 affine that maps voxel indices to patient millimetres (LPS).

Axis order, stated once for the whole package: ``array[i, j, k]`` is the voxel whose centre lies at
``affine @ [i, j, k, 1]`` in the DICOM patient frame (x towards the patient's Left, y Posterior,
z Superior), in millimetres. Readers convert every format to this at the I/O boundary (NIfTI's RAS
world is flipped in x and y), so no other module assumes an orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoplan.errors import InputError


@dataclass(frozen=True)
class Volume:
    """Array plus voxel-to-LPS affine.

    Parameters
    ----------
    array : numpy.ndarray
        3-D image data indexed ``[i, j, k]``.
    affine : numpy.ndarray
        4×4 matrix from voxel index (i, j, k, 1) to LPS millimetres.
    modality : str, optional
        DICOM modality ("CT", "MR", "SEG", ...) or "" when unknown.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise InputError("volume", "a 3-D array", f"{self.array.ndim}-D")
        if affine.shape != (4, 4) or not np.allclose(affine[3], [0, 0, 0, 1]):
            raise InputError("volume.affine", "a 4×4 affine with last row [0, 0, 0, 1]")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12 or not np.all(np.isfinite(affine)):
            raise InputError("volume.affine", "a finite, invertible affine")
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size along i, j and k in millimetres (lengths of the affine's columns)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (|det| of the 3×3 part, mm³ → ml)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    @property
    def direction(self) -> np.ndarray:
        """Unit direction cosines of the i, j, k axes in LPS (columns)."""
        return self.affine[:3, :3] / self.spacing_mm

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map voxel indices (..., 3) to LPS millimetres (..., 3)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map LPS millimetres (..., 3) to continuous voxel indices (..., 3)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inverse = np.linalg.inv(self.affine)
        return xyz @ inverse[:3, :3].T + inverse[:3, 3]

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        """True when `other` has the same shape and affine (within `atol_mm`)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol_mm)

    def with_array(self, array: np.ndarray, modality: str | None = None) -> Volume:
        """A volume on the same grid with other data."""
        if array.shape != self.array.shape:
            raise InputError("volume", f"an array of shape {self.shape}", array.shape)
        return Volume(array, self.affine, self.modality if modality is None else modality)
