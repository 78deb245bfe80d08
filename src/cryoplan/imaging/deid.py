"""De-identification of DICOM files for export: the Basic Application Level Confidentiality Profile of
DICOM PS3.15 Annex E (Table E.1-1), keeping the geometry.

Identifying attributes are emptied, removed or replaced with a pseudonym; private attributes are removed;
every UID that is not a registered DICOM UID (SOP classes, transfer syntaxes, coding schemes stay) is
replaced by a UID derived from a secret key and the original, so a series and the segmentation that
references it, de-identified separately with the same key, still reference each other. Geometry
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing, slice spacing) and pixel data are kept;
files that declare burned-in annotation are refused, as the profile then requires pixel cleaning.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from cryoplan.errors import InputError
from cryoplan.imaging.io import derived_uid
from cryoplan.imaging.io.dicom_series import repair_uids
from cryoplan.output import atomic_directory

# PS3.15 Table E.1-1 actions for the attributes a CT/MR/SEG export carries. Z: empty (type 2 attributes),
# X: remove, D: replace with a dummy (the pseudonym). UIDs (action U) are handled generically.
_EMPTY = (
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ContentCreatorName",
)
_REMOVE = (
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "OperatorsName",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "MedicalRecordLocator",
    "IssuerOfPatientID",
    "MilitaryRank",
    "BranchOfService",
    "PregnancyStatus",
    "DeviceSerialNumber",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "ContentDate",
    "ContentTime",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "StudyDescription",
    "SeriesDescription",
    "ImageComments",
    "ProtocolName",
    "RequestAttributesSequence",
    "ReferencedPatientSequence",
    "ReferencedStudySequence",
    "ReferencedPerformedProcedureStepSequence",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "ScheduledProcedureStepID",
    "AdmittingDiagnosesDescription",
    "ProcedureCodeSequence",
    "PerformedLocation",
    "OperatorIdentificationSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PersonName",
    "CountryOfResidence",
    "RegionOfResidence",
    "CurrentPatientLocation",
    "PatientInsurancePlanCodeSequence",
    "SourceApplicationEntityTitle",
)
_METHOD_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# Attributes whose PS3.15 Table E.1-1 action includes D (dummy) for when the IOD makes them Type 1: the
# Multi-frame Functional Groups module (ContentDate, ContentTime) and the Enhanced General Equipment module
# (DeviceSerialNumber) of SEG, Parametric Map and enhanced CT/MR objects (PS3.3 C.7.6.16, C.7.5.2).
_DUMMY_IN_MULTIFRAME = {"ContentDate": "19000101", "ContentTime": "000000", "DeviceSerialNumber": "0"}
# Body Part Examined defined terms (PS3.16 Annex L) of unpaired parts: Laterality stays absent for them.
_UNPAIRED_BODY_PARTS = {
    "ABDOMEN",
    "ABDOMENPELVIS",
    "CHEST",
    "CHESTABDOMEN",
    "CHESTABDPELVIS",
    "HEAD",
    "HEADNECK",
    "HEART",
    "LIVER",
    "NECK",
    "PANCREAS",
    "PELVIS",
    "SPINE",
    "WHOLEBODY",
}


def _is_registered(uid: str) -> bool:
    """True for UIDs of the DICOM registry (SOP classes, transfer syntaxes, ...), which carry no identity."""
    return UID(uid).name != uid


def deidentified_uid(uid: str, key: str) -> str:
    """The replacement of `uid` under `key`: deterministic, so references between files survive."""
    return derived_uid("cryoplan-deid", key, uid)


def deidentify_dataset(dataset: Dataset, pseudonym: str, key: str) -> Dataset:
    """Apply the basic profile to one dataset in place and return it.

    Attributes the profile lets replace with a dummy (action D) get one where the object's IOD requires
    them (Type 1 in multi-frame objects such as a SEG), so the de-identified object stays valid; for the same
    reason an empty SpecificCharacterSet is dropped, and an image of a body part that may be paired
    (BodyPartExamined absent or not an unpaired part) without Laterality gets it empty, "unknown".

    Parameters
    ----------
    dataset : pydicom.Dataset
    pseudonym : str
        Replaces PatientName and PatientID.
    key : str
        Secret that seeds the UID replacement; keep it to de-identify related files consistently.
    """
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES":
        raise InputError("BurnedInAnnotation", "images without burned-in annotation (pixel data is not cleaned)", "YES")
    dataset.remove_private_tags()
    repair_uids(dataset)  # empty SOP, study or series UIDs would leave the file meta without its instance UID
    multiframe = "PerFrameFunctionalGroupsSequence" in dataset
    dummies = {k: v for k, v in _DUMMY_IN_MULTIFRAME.items() if k in dataset} if multiframe else {}

    def visit(item: Dataset) -> None:
        for keyword in _REMOVE:
            if keyword in item:
                delattr(item, keyword)
        for keyword in _EMPTY:
            if keyword in item:
                item[keyword].value = ""
        for element in item:
            if element.VR == "SQ":
                for child in element.value:
                    visit(child)
            elif element.VR == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                replaced = [v if _is_registered(str(v)) else deidentified_uid(str(v), key) for v in values]
                element.value = replaced if element.VM > 1 else replaced[0]

    visit(dataset)
    for keyword, value in dummies.items():
        setattr(dataset, keyword, value)
    if "SpecificCharacterSet" in dataset and not dataset.SpecificCharacterSet:
        del dataset.SpecificCharacterSet  # empty is not a defined term; absent means the default repertoire
    body_part = str(dataset.get("BodyPartExamined", "")).upper()
    if (
        "PixelData" in dataset
        and not multiframe
        and "Laterality" not in dataset
        and "ImageLaterality" not in dataset
        and body_part not in _UNPAIRED_BODY_PARTS
    ):
        # Type 2C in the General Series module when the part may be paired (PS3.3 C.7.3.1): empty is "unknown"
        dataset.Laterality = ""
    dataset.PatientName = pseudonym
    dataset.PatientID = pseudonym
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "DICOM PS3.15 E.1 basic profile (cryoplan)"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _METHOD_CODE
    dataset.DeidentificationMethodCodeSequence = [code]
    if hasattr(dataset, "file_meta"):
        if "MediaStorageSOPInstanceUID" in dataset.file_meta and "SOPInstanceUID" in dataset:
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        if "SourceApplicationEntityTitle" in dataset.file_meta:
            del dataset.file_meta.SourceApplicationEntityTitle
    return dataset


def deidentify_files(sources: list[str | Path], output: str | Path, pseudonym: str, key: str) -> list[Path]:
    """De-identify DICOM files (or every file of given folders) into `output`, named by their new
    SOPInstanceUID; the folder is written atomically.

    Returns
    -------
    list of Path
        The files written.
    """
    if not key:
        raise InputError("key", "a non-empty secret key for UID replacement", key)
    files = []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        elif source.is_file():
            files.append(source)
        else:
            raise InputError(str(source), "an existing DICOM file or folder", "not found")
    datasets = []
    for file in files:
        try:
            datasets.append(pydicom.dcmread(str(file)))
        except Exception as error:
            raise InputError(str(file), "a readable DICOM file", f"{type(error).__name__}: {error}") from None
    written = []
    with atomic_directory(output) as folder:
        for dataset in datasets:
            deidentify_dataset(dataset, pseudonym, key)
            target = folder / f"{dataset.SOPInstanceUID}.dcm"
            dataset.save_as(target, enforce_file_format=True)
            written.append(Path(output) / target.name)
    return written
