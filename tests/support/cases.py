"""Case documents for the clinical tests: a baseline eligible HCC and a way to vary one field."""

from __future__ import annotations

import copy

from cryoplan.case import Case, parse_case

BASE = {
    "schema_version": 1,
    "patient": {"age": 64, "sex": "male", "ecog": 0},
    "diagnosis": {
        "type": "hcc",
        "cirrhosis": True,
        "liver_disease": "hbv",
        "vascular_invasion": False,
        "extrahepatic_spread": False,
    },
    "labs": {
        "bilirubin": {"value": 1.1, "unit": "mg/dL"},
        "albumin": {"value": 3.9, "unit": "g/dL"},
        "inr": 1.1,
        "creatinine": {"value": 0.9, "unit": "mg/dL"},
        "sodium": {"value": 139, "unit": "mmol/L"},
        "platelets": {"value": 140, "unit": "10^9/L"},
    },
    "clinical": {"ascites": "none", "encephalopathy_grade": 0},
    "lesions": [
        {"id": "L1", "diameter_mm": 24, "segment": 7, "distance_to_bile_duct_mm": 11, "distance_to_major_vessel_mm": 16}
    ],
    "transplant_listed": False,
    "prior_treatments": [],
}


def case_document(**changes: object) -> dict:
    """BASE with changes given by dotted path (``labs__inr=1.8`` or ``{"labs.inr": 1.8}`` via **);
    a value of `DELETE` removes the field."""
    document = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.replace("__", ".").split(".")
        node = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return document


def make_case(**changes: object) -> Case:
    return parse_case(case_document(**changes))


def lesions(*diameters_mm: float, bile_duct_mm: float = 20, vessel_mm: float = 20) -> list[dict]:
    return [
        {
            "id": f"L{i + 1}",
            "diameter_mm": d,
            "distance_to_bile_duct_mm": bile_duct_mm,
            "distance_to_major_vessel_mm": vessel_mm,
        }
        for i, d in enumerate(diameters_mm)
    ]


DELETE = object()
