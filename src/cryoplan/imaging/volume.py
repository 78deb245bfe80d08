"""`Volume`: an image array plus the 4×4 affine that maps voxel indices to patient millimetres (LPS).

Axis order, stated once for the whole package: ``array[i, j, k]`` is the voxel whose centre lies at
``affine @ [i, j, k, 1]`` in the DICOM patient frame (x towards the patient's Left, y Posterior,
z Superior), in millimetres. Readers convert every format to this at the I/O boundary (NIfTI's RAS
world is flipped in x and y), so no other module assumes an orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

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
    series_uid : str, optional
        SeriesInstanceUID of the DICOM series the volume was read from ("" otherwise); kept on the same grid,
        dropped by resampling, so a segmentation can be checked against the series it references.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""
    series_uid: str = ""

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
        spacing: np.ndarray = np.linalg.norm(self.affine[:3, :3], axis=0)
        return spacing

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (|det| of the 3×3 part, mm³ → ml)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    @property
    def direction(self) -> np.ndarray:
        """Unit direction cosines of the i, j, k axes in LPS (columns)."""
        direction: np.ndarray = self.affine[:3, :3] / self.spacing_mm
        return direction

    def index_to_lps(self, ijk: ArrayLike) -> np.ndarray:
        """Map voxel indices (..., 3) to LPS millimetres (..., 3)."""
        lps: np.ndarray = np.asarray(ijk, dtype=np.float64) @ self.affine[:3, :3].T + self.affine[:3, 3]
        return lps

    def lps_to_index(self, xyz: ArrayLike) -> np.ndarray:
        """Map LPS millimetres (..., 3) to continuous voxel indices (..., 3)."""
        inverse = np.linalg.inv(self.affine)
        index: np.ndarray = np.asarray(xyz, dtype=np.float64) @ inverse[:3, :3].T + inverse[:3, 3]
        return index

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        """True when `other` has the same shape and affine (within `atol_mm`)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol_mm)

    def with_array(self, array: np.ndarray, modality: str | None = None) -> Volume:
        """A volume on the same grid with other data."""
        if array.shape != self.array.shape:
            raise InputError("volume", f"an array of shape {self.shape}", array.shape)
        return Volume(array, self.affine, self.modality if modality is None else modality, self.series_uid)

    def resampled(self, shape: Sequence[int], affine: np.ndarray, order: int = 0, cval: float = 0) -> Volume:
        """This volume sampled at the voxel centres of another grid (`shape` and voxel-to-LPS `affine`).

        Parameters
        ----------
        shape : tuple of 3 ints
            Voxel counts of the target grid, for example ``grid.shape`` of a simulation grid or
            ``other.shape`` of another `Volume`.
        affine : numpy.ndarray
            4×4 voxel-to-LPS affine of the target grid.
        order : {0, 1}
            0: nearest voxel, rounding half up, keeping the dtype (labels, masks); 1: trilinear, as
            floating point (images, temperature maps).
        cval : float
            Value where a target centre lies more than half a voxel outside this volume.

        Returns
        -------
        Volume
            The samples on the target grid, with this volume's modality.

        Examples
        --------
        >>> labels = Volume(np.array([10, 20], dtype=np.uint8).reshape(2, 1, 1), np.eye(4))
        >>> labels.resampled((4, 1, 1), np.diag([0.5, 1.0, 1.0, 1.0])).array.ravel()
        array([10, 20, 20,  0], dtype=uint8)
        """
        if order not in (0, 1):
            raise InputError("order", "0 (nearest) or 1 (linear)", order)
        shape = tuple(int(n) for n in shape)
        target = np.asarray(affine, dtype=np.float64)
        to_index = np.linalg.inv(self.affine) @ target
        source = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        dtype = source.dtype if order == 0 else np.result_type(source.dtype, np.float32)
        output = np.empty(shape, dtype=dtype)
        grid_i, grid_j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        for k in range(shape[2]):  # slice by slice: the coordinates of a whole grid would take 24 bytes a voxel
            index = np.einsum("ab,bij->aij", to_index[:3, :3], np.stack([grid_i, grid_j, np.full_like(grid_i, k)]))
            index += to_index[:3, 3][:, None, None]
            # grid-constant: a centre within half a voxel of the edge still samples the edge voxel
            output[:, :, k] = ndimage.map_coordinates(
                source, index, output=dtype, order=order, mode="grid-constant", cval=cval
            )
        if self.array.dtype == bool:
            output = output.astype(bool)
        return Volume(output, target, self.modality)
