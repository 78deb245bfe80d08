"""The words users read for the codes the service stores and shows: diagnoses, workflow statuses, board
decisions, roles, document kinds."""

from __future__ import annotations

from typing import Any

DIAGNOSIS_LABELS = {
    "hcc": "Hepatocellular carcinoma",
    "colorectal_metastasis": "Colorectal liver metastasis",
    "breast_metastasis": "Breast cancer liver metastasis",
    "neuroendocrine_metastasis": "Neuroendocrine liver metastasis",
    "other_metastasis": "Other liver metastasis",
}
LIVER_DISEASE_LABELS = {
    "hbv": "Hepatitis B",
    "hcv": "Hepatitis C",
    "alcohol": "Alcohol-related",
    "masld": "MASLD (metabolic)",
    "pbc": "Primary biliary cholangitis",
    "psc": "Primary sclerosing cholangitis",
    "other": "Other",
    "none": "None",
}
CODES = {
    **DIAGNOSIS_LABELS,
    **LIVER_DISEASE_LABELS,
    "male": "Male",
    "female": "Female",
    "mild": "Mild",
    "moderate_severe": "Moderate to severe",
    "intake": "Intake",
    "records_complete": "Records complete",
    "eligibility_reviewed": "Eligibility reviewed",
    "planned": "Planned",
    "board_decided": "Board decided",
    "referred": "Referred",
    "treated": "Treated",
    "follow_up": "Follow-up",
    "closed": "Closed",
    "cryoablation": "Cryoablation",
    "other_ablation": "Other ablation (RFA, MWA)",
    "resection": "Resection",
    "transplant_listing": "Transplant listing",
    "tace": "TACE",
    "systemic_therapy": "Systemic therapy",
    "best_supportive_care": "Best supportive care",
    "more_information_needed": "More information needed",
    "suitable": "Suitable",
    "suitable_with_conditions": "Suitable with conditions",
    "mdt_review": "Needs multidisciplinary review",
    "preferred": "Preferred",
    "eligible": "Eligible",
    "review": "Needs review",
    "not_recommended": "Not recommended",
    "contraindicated": "Contraindicated",
    "met": "Met",
    "not_met": "Not met",
    "unknown": "Unknown",
    "sent": "Sent",
    "received": "Received",
    "note": "Note",
    "ct": "CT",
    "labels": "Segmentation",
    "record": "Record",
    "admin": "Administrator",
    "coordinator": "Coordinator (navigator)",
    "clinician": "Clinician",
    "viewer": "Viewer",
}
#: How a board decision"s workflow step records it (`cryoplan.service.store.record_board_decision`).
BOARD_REASON_PREFIX = "tumour board: "


def label(code: Any) -> str:
    """The words for a code: its entry in `CODES`, else the code with spaces for underscores, capitalised;
    "—" for none."""
    if code is None:
        return "—"
    return CODES.get(str(code), str(code).replace("_", " ").capitalize())


def status_reason(reason: str) -> str:
    """A workflow step"s reason as read: a board decision named in words."""
    if reason.startswith(BOARD_REASON_PREFIX):
        return "Tumour board: " + label(reason.removeprefix(BOARD_REASON_PREFIX))
    return reason


#: What every template of the service may call.
TEMPLATE_GLOBALS = {"label": label, "status_reason": status_reason}
