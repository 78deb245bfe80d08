"""A real-valued map on a DICOM series' grid (the simulated minimum temperature) as a DICOM Parametric Map.

References
----------
DICOM PS3.3 A.75 (Parametric Map IOD) and C.7.6.16.2.11 (Real World Value Mapping); built with highdicom
(Herrmann et al., J Digit Imaging 2022;35:1719).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr.coding import CodedConcept

from cryoplan import __version__
from cryoplan.errors import InputError
from cryoplan.imaging.io.common import derived_uid
from cryoplan.imaging.io.dicom_seg import copied_names_allowed, export_source, source_grid_shape
from cryoplan.output import atomic_path

#: UCUM degree Celsius (PS3.16 CID 82 draws units from UCUM).
CELSIUS = CodedConcept("Cel", "UCUM", "degree Celsius")


def write_temperature_map(
    temperature_c: np.ndarray,
    source: str | Path,
    path: str | Path,
    description: str = "cryoplan minimum temperature",
    series_uid: str | None = None,
    series_number: int = 901,
) -> None:
    """Write a temperature map (°C) on the source series' grid as a floating-point Parametric Map.

    Parameters
    ----------
    temperature_c : numpy.ndarray
        Temperatures on the grid of the source series as `read_volume` returns it (``[i, j, k]``).
    source : str or Path
        Folder of the DICOM series.
    path : str or Path
        Output ``.dcm`` file (written atomically).
    description : str
        SeriesDescription of the map.
    series_uid : str, optional
        SeriesInstanceUID of the source when its folder holds several series.
    series_number : int
        SeriesNumber of the map.
    """
    series, images = export_source(source, series_uid)
    shape = source_grid_shape(series)
    values = np.asarray(temperature_c, dtype=np.float32)
    if values.shape != shape:
        raise InputError("temperature_c", f"a map of shape {list(shape)} (the source series grid)", list(values.shape))
    if not np.all(np.isfinite(values)):
        raise InputError("temperature_c", "finite temperatures", "NaN or infinity")
    frames = np.ascontiguousarray(np.transpose(values, (2, 1, 0)))  # one frame per slice, rows along j
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="temperature",
        lut_explanation="minimum temperature, simulated",
        unit=CELSIUS,
        value_range=(float(values.min()), float(values.max())),
        slope=1.0,
        intercept=0.0,
    )
    source_uid = str(images[0].SeriesInstanceUID)
    content = hashlib.sha256(frames.tobytes()).hexdigest()
    with copied_names_allowed():
        parametric_map = hd.pm.ParametricMap(
            source_images=images,
            pixel_array=frames,
            series_instance_uid=derived_uid("pm-series", source_uid, description, content),
            series_number=series_number,
            sop_instance_uid=derived_uid("pm-instance", source_uid, description, content),
            instance_number=1,
            manufacturer="cryoplan",
            manufacturer_model_name="cryoplan",
            software_versions=__version__,
            device_serial_number="0",
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=-20.0, window_width=100.0)],
            series_description=description[:64],
            content_label="TEMPERATURE",
            content_description=description[:64],
        )
    _frame_anatomy(parametric_map)
    with atomic_path(path) as tmp:
        parametric_map.save_as(tmp)


def _frame_anatomy(dataset: pydicom.Dataset) -> None:
    """The Frame Anatomy functional group (PS3.3 C.7.6.16.2.8): the abdomen, an unpaired region, so the
    series-level Laterality is not needed."""
    region = pydicom.Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "818981001", "SCT", "Abdomen"
    anatomy = pydicom.Dataset()
    anatomy.AnatomicRegionSequence = [region]
    anatomy.FrameLaterality = "U"
    dataset.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [anatomy]
