"""De-identification (DICOM PS3.15 basic profile): identity gone, geometry kept, UIDs replaced
consistently across a series and its segmentation."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from support.dicom_validation import dciodvfy_errors

from cryoplan.errors import InputError
from cryoplan.imaging import ImagingWarning, read_labels, read_volume, write_dicom_seg, write_dicom_series
from cryoplan.imaging.deid import deidentify_files
from cryoplan.imaging.io import write_temperature_map
from cryoplan.imaging.phantom import TumourSpec, make_phantom


@pytest.fixture()
def series_and_seg(tmp_path):
    phantom = make_phantom([TumourSpec((-40.0, -10.0, 0.0), 20.0)], spacing_mm=4.0, field_mm=(120, 100, 60))
    write_dicom_series(phantom.ct, tmp_path / "ct", patient_name="Doe^Jane", patient_id="MRN-123456")
    for file in (tmp_path / "ct").iterdir():  # identifying attributes a scanner writes
        ds = pydicom.dcmread(file)
        ds.InstitutionName = "General Hospital"
        ds.PatientBirthDate = "19600101"
        ds.OperatorsName = "Smith^John"
        ds.add_new(0x00091001, "LO", "private detail")
        ds.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", "secret")
        ds.save_as(file)
    ct = read_volume(tmp_path / "ct")
    write_dicom_seg({"tumour": phantom.labels.array == 2}, tmp_path / "ct", tmp_path / "seg" / "seg.dcm", "tumour")
    return tmp_path, ct, phantom


def test_series_and_seg_deidentified_separately_still_match(series_and_seg):
    tmp_path, ct, phantom = series_and_seg
    deidentify_files([tmp_path / "ct"], tmp_path / "out_ct", pseudonym="CRYO-001", key="secret-key")
    (seg_file,) = deidentify_files([tmp_path / "seg"], tmp_path / "out_seg", pseudonym="CRYO-001", key="secret-key")
    originals = {pydicom.dcmread(f).SOPInstanceUID for f in (tmp_path / "ct").iterdir()}
    for file in (tmp_path / "out_ct").iterdir():
        ds = pydicom.dcmread(file)
        assert str(ds.PatientName) == ds.PatientID == "CRYO-001"
        assert ds.PatientBirthDate == "" and "InstitutionName" not in ds and "OperatorsName" not in ds
        assert not any(element.tag.is_private for element in ds)
        assert ds.SOPInstanceUID not in originals and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # registered UIDs stay
        assert ds.PatientIdentityRemoved == "YES"
        assert "Doe" not in str(ds) and "MRN-123456" not in str(ds)
    # geometry and pixels kept
    back = read_volume(tmp_path / "out_ct")
    assert np.array_equal(back.array, ct.array) and np.allclose(back.affine, ct.affine)
    # the SEG still references the de-identified series and lands on it
    seg = pydicom.dcmread(seg_file)
    new_ct = [pydicom.dcmread(f) for f in (tmp_path / "out_ct").iterdir()]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == new_ct[0].SeriesInstanceUID
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in new_ct}
    assert seg.FrameOfReferenceUID == new_ct[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == new_ct[0].StudyInstanceUID
    assert np.array_equal(read_labels(seg_file, back).array == 1, phantom.labels.array == 2)


def test_another_key_gives_other_uids_and_burned_in_annotation_is_refused(series_and_seg):
    tmp_path, _, _ = series_and_seg
    a = deidentify_files([tmp_path / "seg"], tmp_path / "a", pseudonym="P", key="one")
    b = deidentify_files([tmp_path / "seg"], tmp_path / "b", pseudonym="P", key="two")
    assert pydicom.dcmread(a[0]).SOPInstanceUID != pydicom.dcmread(b[0]).SOPInstanceUID
    file = next((tmp_path / "ct").iterdir())
    ds = pydicom.dcmread(file)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(file)
    with pytest.raises(InputError, match="BurnedInAnnotation"):
        deidentify_files([tmp_path / "ct"], tmp_path / "c", pseudonym="P", key="one")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("name", ["03_totalseg_dicom_ct_series/dicom", "04_dcmqi_ct3slice_dicomseg/ct-3slice"])
def test_deidentified_real_series_and_its_seg_stay_valid(shared_data, tmp_path, name):
    source = shared_data / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImagingWarning)  # set 03's repaired UIDs
        ct = read_volume(source)
    liver_like = np.zeros(ct.shape, dtype=bool)
    liver_like[150:350, 150:350, :] = True
    write_dicom_seg({"liver": liver_like, "isotherm -40 C": liver_like}, source, tmp_path / "seg" / "seg.dcm", "plan")
    write_temperature_map(np.where(liver_like, -60.0, 37.0), source, tmp_path / "seg" / "pm.dcm")
    written = deidentify_files([tmp_path / "seg"], tmp_path / "out_seg", pseudonym="CRYO-7", key="k")
    assert len(written) == 2
    for file in written:  # the SEG and the Parametric Map
        derived = pydicom.dcmread(file)
        # Type 1 in their multi-frame modules, so replaced by dummies rather than removed
        assert derived.DeviceSerialNumber and derived.ContentDate and derived.ContentTime
        assert str(derived.PatientName) == "CRYO-7"
        assert dciodvfy_errors(file) == []
    # The de-identified CT slice is valid too, although the source is not: set 03 has empty UIDs (repaired) and
    # both sets leave Laterality (Type 2C) out for a body part that may be paired; it is written empty, unknown.
    first = sorted(source.iterdir())[0]
    assert "Laterality" not in pydicom.dcmread(first)
    deidentify_files([first], tmp_path / "out_ct", pseudonym="CRYO-7", key="k")
    (written,) = (tmp_path / "out_ct").iterdir()
    assert pydicom.dcmread(written).Laterality == ""
    assert dciodvfy_errors(written) == []
