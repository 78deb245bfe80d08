"""Clinical assessment: liver scores, HCC staging, transplant criteria and eligibility for cryoablation.

`read_case_file` reads a YAML or JSON case file or a FHIR R4 Bundle into a `Case`; `assess` gives its
`Assessment`. `scores`, `staging`, `eligibility` and `fhir` are pure functions without I/O.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cryoplan.case import Case, load_case, read_document
from cryoplan.clinical.eligibility import DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML, Assessment, LabBound, assess
from cryoplan.clinical.fhir import CaseRecord, case_from_bundle

__all__ = [
    "Assessment",
    "CaseRecord",
    "DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML",
    "LabBound",
    "assess",
    "assess_record",
    "read_case_file",
    "read_case_record",
]


def read_case_record(path: str | Path) -> CaseRecord:
    """Read a case: a YAML or JSON case file, or a FHIR R4 Bundle (recognised by ``resourceType: Bundle``).

    Returns
    -------
    CaseRecord
        The case, with ``case_id`` set to the file name's stem when the file gives none; for a bundle also
        the entries not used, notes on how entries were read, and the labs given only as bounds.

    Raises
    ------
    InputError
        When the file is unreadable or its content invalid, naming the field.
    """
    path = Path(path)
    document = read_document(path)
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        record = case_from_bundle(document, source=str(path))
    else:
        record = CaseRecord(load_case(path), [], [], {})
    if record.case.case_id is None:
        record = replace(record, case=record.case.model_copy(update={"case_id": path.stem}))
    return record


def read_case_file(path: str | Path) -> tuple[Case, list[str]]:
    """The case of `read_case_record` and the FHIR entries not used (a lab given only as a bound is absent
    from the case: `assess_record` reads it)."""
    record = read_case_record(path)
    return record.case, record.unused


def assess_record(
    record: CaseRecord,
    *,
    cryoshock_tumour_volume_ml: float = DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML,
    imaging_flags: list[str] | None = None,
) -> Assessment:
    """Assess a read case with its lab bounds, listing the entries not used, the notes and `imaging_flags`."""
    assessment = assess(
        record.case,
        cryoshock_tumour_volume_ml=cryoshock_tumour_volume_ml,
        lab_bounds=record.lab_bounds,
        imaging_flags=imaging_flags,
    )
    notes = [*record.notes, *assessment.input_notes]
    return replace(assessment, unused_fhir_observations=list(record.unused), input_notes=notes)
