"""Clinical assessment: liver scores, HCC staging, transplant criteria and eligibility for cryoablation.

`read_case_file` reads a YAML or JSON case file or a FHIR R4 Bundle into a `Case`; `assess` gives its
`Assessment`. `scores`, `staging`, `eligibility` and `fhir` are pure functions without I/O.
"""

from __future__ import annotations

from pathlib import Path

from cryoplan.case import Case, load_case, read_document
from cryoplan.clinical.eligibility import DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML, Assessment, assess
from cryoplan.clinical.fhir import case_from_bundle

__all__ = ["Assessment", "DEFAULT_CRYOSHOCK_TUMOUR_VOLUME_ML", "assess", "read_case_file"]


def read_case_file(path: str | Path) -> tuple[Case, list[str]]:
    """Read a case: a YAML or JSON case file, or a FHIR R4 Bundle (recognised by ``resourceType: Bundle``).

    Returns
    -------
    case : Case
        With ``case_id`` set to the file name's stem when the file gives none.
    unused : list of str
        The FHIR entries not used, each with the reason (empty for a case file).

    Raises
    ------
    InputError
        When the file is unreadable or its content invalid, naming the field.
    """
    path = Path(path)
    document = read_document(path)
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        case, unused = case_from_bundle(document, source=str(path))
    else:
        case, unused = load_case(path), []
    if case.case_id is None:
        case = case.model_copy(update={"case_id": path.stem})
    return case, unused
