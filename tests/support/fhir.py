"""FHIR R4 bundles for the clinical tests: observations and conditions by code, a bundle around them, and the
entries of the baseline case."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "cryoplan" / "examples"


def observation(id, loinc, value=None, unit=None, date="2026-02-27", **extra):
    resource = {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": date,
        **extra,
    }
    if value is not None:
        resource["valueQuantity"] = {
            "value": value,
            "system": "http://unitsofmeasure.org",
            **({"code": unit} if unit else {}),
        }
    return {"resource": resource}


def condition(id, system, code, **extra):
    return {
        "resource": {
            "resourceType": "Condition",
            "id": id,
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": system, "code": code}]},
            **extra,
        }
    }


SNOMED, ICD10 = "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10"


def bundle(*entries, timestamp="2026-03-02T09:00:00Z"):
    return {
        "resourceType": "Bundle",
        "type": "collection",
        **({"timestamp": timestamp} if timestamp else {}),
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1961-06-15"}},
            *entries,
        ],
    }


BASELINE = [
    condition("hcc", SNOMED, "25370001"),
    condition("cirrhosis", ICD10, "K74.60"),
    condition("hbv", ICD10, "B18.1"),
    observation("bili", "1975-2", 1.1, "mg/dL"),
    observation("alb", "1751-7", 3.9, "g/dL"),
    observation("inr", "6301-6", 1.1, "{INR}"),
    observation("cr", "2160-0", 0.9, "mg/dL"),
    observation("na", "2951-2", 139, "mmol/L"),
    observation("plt", "777-3", 140, "10*9/L"),
    {
        "resource": {
            "resourceType": "Observation",
            "id": "ecog",
            "status": "final",
            "valueInteger": 0,
            "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
        }
    },
    observation("L1", "21889-1", 2.4, "cm"),
]
