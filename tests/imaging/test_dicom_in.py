"""DICOM in as hospitals send it: enhanced multi-frame images, localizers in the series folder, empty UIDs
repaired from the file meta, a corrupt file named, several series."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from support.synthetic import centres_mm

from cryoplan.errors import InputError
from cryoplan.imaging import ImagingWarning, Volume, read_labels, read_volume, write_dicom_seg, write_dicom_series
from cryoplan.imaging.io import derived_uid
from cryoplan.imaging.io.dicom_seg import copied_names_allowed


def _ramp_volume(shape=(20, 18, 7), spacing=(0.8, 0.9, 2.5)) -> Volume:
    """A CT volume whose values are a linear function of position (so any misplaced slice shows)."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, 20.0, -300.0)
    grid = Volume(np.zeros(shape), affine, "CT")
    points = centres_mm(grid)
    return grid.with_array(
        np.round(2.0 * points[..., 0] - 3.0 * points[..., 1] + 1.5 * points[..., 2]).astype(np.int16)
    )


def test_enhanced_multiframe_ct_reads_as_the_single_frame_series(tmp_path):
    volume = _ramp_volume()
    write_dicom_series(volume, tmp_path / "legacy")
    datasets = [pydicom.dcmread(p) for p in sorted((tmp_path / "legacy").iterdir())]
    rng = np.random.default_rng(0)
    datasets = [datasets[i] for i in rng.permutation(len(datasets))]  # frame order is not slice order
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets, derived_uid("enhanced-series"), 2, derived_uid("enhanced-instance"), 1
    )
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "ct.dcm")
    read = read_volume(tmp_path / "enhanced")
    assert read.modality == "CT"
    assert np.allclose(read.affine, volume.affine, atol=1e-4)
    assert np.array_equal(read.array, volume.array)


def test_localizer_in_the_series_is_left_out_with_a_note(tmp_path):
    volume = _ramp_volume()
    folder = tmp_path / "series"
    write_dicom_series(volume, folder)
    template = pydicom.dcmread(sorted(folder.iterdir())[0])
    localizer = template.copy()
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    localizer.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal scout through the same series
    localizer.SOPInstanceUID = localizer.file_meta.MediaStorageSOPInstanceUID = derived_uid("scout")
    localizer.save_as(folder / "scout.dcm", enforce_file_format=True)
    with pytest.warns(ImagingWarning, match="left out 1 LOCALIZER images"):
        read = read_volume(folder)
    assert np.array_equal(read.array, volume.array)


def test_empty_uids_are_repaired_from_the_file_meta_and_said_so(tmp_path):
    volume = _ramp_volume()
    folder = tmp_path / "series"
    write_dicom_series(volume, folder)
    for path in folder.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.SOPClassUID = dataset.SOPInstanceUID = dataset.SeriesInstanceUID = dataset.StudyInstanceUID = ""
        dataset.save_as(path)
    with pytest.warns(ImagingWarning, match="SOPClassUID, SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID"):
        read = read_volume(folder)
    assert np.array_equal(read.array, volume.array)


def test_corrupt_file_in_a_series_is_named(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(_ramp_volume(), folder)
    victim = sorted(folder.iterdir())[2]
    victim.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    with pytest.raises(InputError) as error:
        read_volume(folder)
    assert victim.name in error.value.field


@pytest.fixture
def _inspect(cryoplan_cli):
    """``cryoplan inspect ARGS`` in this process; `tests/cli/test_console_script.py` runs the installed script."""
    return lambda *args: cryoplan_cli("inspect", *args)


def test_seg_referencing_another_series_is_refused_in_one_line(tmp_path, _inspect):
    volume = _ramp_volume()
    write_dicom_series(volume, tmp_path / "a", seed=1)
    write_dicom_series(volume, tmp_path / "b", seed=2)  # the same grid, another series
    mask = np.zeros(volume.shape, bool)
    mask[5:12, 4:10, 2:5] = True
    write_dicom_seg({"tumour": mask, "liver": ~mask}, tmp_path / "a", tmp_path / "seg.dcm", "on a")
    assert np.array_equal(read_labels(tmp_path / "seg.dcm", read_volume(tmp_path / "a")).array == 1, mask)
    with pytest.raises(InputError, match="drawn on the image's series"):
        read_labels(tmp_path / "seg.dcm", read_volume(tmp_path / "b"))
    done = _inspect(tmp_path / "b", "--labels", tmp_path / "seg.dcm", "-o", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "referencing series" in done.stderr
    assert not (tmp_path / "out").exists()


def test_corrupt_file_in_a_series_is_one_line_exit_2_through_the_cli(tmp_path, _inspect):
    folder = tmp_path / "series"
    write_dicom_series(_ramp_volume(), folder)
    victim = sorted(folder.iterdir())[4]
    victim.write_bytes(victim.read_bytes()[:700])
    done = _inspect(folder, "-o", tmp_path / "out")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and victim.name in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_set_04_as_enhanced_multiframe_reads_like_its_single_frame_slices(shared_data, tmp_path):
    source = shared_data / "04_dcmqi_ct3slice_dicomseg" / "ct-3slice"
    single = read_volume(source)
    datasets = [pydicom.dcmread(p) for p in sorted(source.iterdir())]
    for dataset in datasets:
        del dataset.SpecificCharacterSet  # empty in this set; the converter needs a defined term or none
    with copied_names_allowed():  # the set's single-component PatientName, copied as it is
        enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
            datasets[::-1], derived_uid("set-04-enhanced"), 3, derived_uid("set-04-enhanced-instance"), 1
        )
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "ct.dcm")
    read = read_volume(tmp_path / "enhanced")
    assert np.allclose(read.affine, single.affine, atol=1e-4)
    assert np.array_equal(read.array, single.array)
