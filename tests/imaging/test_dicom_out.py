"""DICOM out on the real series: isotherm and tumour/margin SEGs and the temperature Parametric Map are valid
(zero dciodvfy errors) on set 03 (UIDs empty outside the file meta) and set 04 (empty SpecificCharacterSet),
and read back onto the image exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from support.dicom_validation import dciodvfy_errors

from cryoplan.imaging import ImagingWarning, read_labels, read_volume, segment_label_map, write_dicom_seg
from cryoplan.imaging.io import write_temperature_map

SETS = {"03": "03_totalseg_dicom_ct_series/dicom", "04": "04_dcmqi_ct3slice_dicomseg/ct-3slice"}


def _image(shared_data, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImagingWarning)  # set 03's repaired UIDs, tested in test_dicom_in
        return read_volume(shared_data / SETS[name])


def _balls(image, centre_index, radii_mm: dict[str, float]) -> dict[str, np.ndarray]:
    """Balls about one voxel centre, by name: the distances in mm computed once for every radius."""
    index = np.stack(np.meshgrid(*(np.arange(n) for n in image.shape), indexing="ij"), axis=-1)
    distance = np.linalg.norm(image.index_to_lps(index) - image.index_to_lps(centre_index), axis=-1)
    return {name: distance <= radius_mm for name, radius_mm in radii_mm.items()}


@pytest.mark.parametrize("name", sorted(SETS))
def test_seg_of_isotherms_tumour_and_margin_validates_and_reads_back(shared_data, tmp_path, name):
    image = _image(shared_data, name)
    centre = [256, 256, image.shape[2] // 2]
    masks = _balls(image, centre, {"tumour": 8.0, "margin": 13.0, "isotherm 0 C": 25.0, "isotherm -40 C": 15.0})
    write_dicom_seg(masks, shared_data / SETS[name], tmp_path / "seg.dcm", "cryoplan plan")
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.StudyInstanceUID and seg.SeriesInstanceUID and seg.SOPInstanceUID
    references = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in (shared_data / SETS[name]).iterdir()]
    assert references == {str(s.file_meta.MediaStorageSOPInstanceUID) for s in sources}
    segments = {item.SegmentLabel: item for item in seg.SegmentSequence}
    assert segments["tumour"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert segments["isotherm -40 C"].SegmentAlgorithmType == "AUTOMATIC"
    assert (
        segments["isotherm -40 C"].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName.startswith("cryoplan")
    )
    colours = {label: tuple(item.RecommendedDisplayCIELabValue) for label, item in segments.items()}
    assert len(set(colours.values())) == 4
    numbers = segment_label_map(tmp_path / "seg.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImagingWarning)
        labels = read_labels(tmp_path / "seg.dcm", image)
    # segments overlap, so the label map holds the last one written at each voxel: the −40 °C isotherm
    # inside its 15 mm, the 0 °C isotherm beyond
    assert np.array_equal(labels.array == numbers["isotherm -40 C"], masks["isotherm -40 C"])
    assert np.array_equal(labels.array == numbers["isotherm 0 C"], masks["isotherm 0 C"] & ~masks["isotherm -40 C"])


@pytest.mark.parametrize("name", sorted(SETS))
def test_temperature_parametric_map_validates_and_holds_the_values(shared_data, tmp_path, name):
    image = _image(shared_data, name)
    rng = np.random.default_rng(7)
    temperature = rng.uniform(-150.0, 37.0, image.shape).astype(np.float32)
    write_temperature_map(temperature, shared_data / SETS[name], tmp_path / "pm.dcm")
    assert dciodvfy_errors(tmp_path / "pm.dcm") == []
    pm = pydicom.dcmread(tmp_path / "pm.dcm")
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "Cel"
    frames = pm.pixel_array.reshape((-1,) + pm.pixel_array.shape[-2:])
    positions = [
        np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
        for item in pm.PerFrameFunctionalGroupsSequence
    ]
    for frame, position in zip(frames, positions):
        k = int(round(image.lps_to_index(position)[2]))
        assert np.array_equal(frame.T, temperature[:, :, k])
