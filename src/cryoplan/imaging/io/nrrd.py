"""NRRD in: the header names its anatomical space (LPS, RAS or LAS), converted to LPS here."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np

from cryoplan.errors import InputError
from cryoplan.imaging.volume import Volume

_NRRD_SPACES = {
    "left-posterior-superior": (1, 1, 1),
    "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1),
    "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1),
    "las": (1, -1, 1),
}


def read_nrrd(path: Path) -> Volume:
    """A 3-D scalar NRRD image in LPS, whose data is inside the file itself: a header naming a ``data file``
    (a detached header) is refused, so that an image can never make the reader open another path."""
    try:
        with open(path, "rb") as handle:
            header = nrrd.read_header(handle)
            detached = [key for key in header if key.replace(" ", "").lower() == "datafile"]
            array = None if detached else nrrd.read_data(header, handle)  # no file name: nothing else is opened
    except Exception as error:  # pynrrd raises several types for malformed headers
        raise InputError(str(path), "a readable NRRD file", f"{type(error).__name__}: {error}") from None
    if array is None:
        raise InputError(f"{path}.{detached[0]}", "an NRRD file holding its own data (no 'data file' field)")
    space = str(header.get("space", "")).lower()
    if space not in _NRRD_SPACES or "space directions" not in header:
        raise InputError(
            f"{path}.space", "an anatomical NRRD space (LPS, RAS or LAS) with space directions", space or None
        )
    directions = np.asarray(header["space directions"], dtype=np.float64)
    if array.ndim != 3 or directions.shape != (3, 3) or not np.all(np.isfinite(directions)):
        raise InputError(str(path), "a 3-D scalar NRRD image", f"shape {array.shape}")
    affine = np.eye(4)
    affine[:3, :3] = directions.T  # pynrrd gives one row per axis
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    flip = np.diag([*_NRRD_SPACES[space], 1.0])
    return Volume(np.ascontiguousarray(array), flip @ affine)
