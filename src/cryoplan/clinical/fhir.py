"""A case from a FHIR R4 Bundle: Patient, Conditions and Observations (LOINC-coded labs).

The bundle is validated with `fhir.resources.R4B` (R4 resources; the package's default models are R5 and
drop R4-only fields). What is read:

- **Patient**: ``gender`` (male / female) and the age in whole years at the bundle's ``timestamp``, or,
  without one, at the date of the latest observation used.
- **Condition** (ICD-10 or SNOMED CT): the liver tumour (HCC, or liver metastasis with its primary),
  cirrhosis, and the liver disease; conditions marked refuted or entered-in-error are not used.
- **Observation** (LOINC, UCUM units), the latest of each code: total bilirubin 1975-2, albumin 1751-7,
  INR 6301-6, platelets 777-3, creatinine 2160-0, sodium 2951-2, ECOG performance status 89247-1
  (valueInteger), and tumour size 21889-1 (one lesion per observation, its id the observation's id).

Everything else is returned as a list of descriptions of the entries not used, each with the reason, so
nothing is dropped silently. Ascites, encephalopathy, invasion, spread and bile-duct distances have no
code here: they stay missing and the assessment names them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError

from cryoplan import units
from cryoplan.case import Case, parse_case
from cryoplan.errors import InputError

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")

LAB_CODES = {
    "1975-2": "bilirubin",
    "1751-7": "albumin",
    "6301-6": "inr",
    "777-3": "platelets",
    "2160-0": "creatinine",
    "2951-2": "sodium",
}
ECOG_CODE = "89247-1"
TUMOUR_SIZE_CODE = "21889-1"
USABLE_STATUSES = {"final", "amended", "corrected", "preliminary"}

# Condition codes → (case field, value). ICD-10 codes match as prefixes (C18 covers C18.7).
ICD10_CONDITIONS = {
    "C22.0": ("tumour", "hcc"),
    "C78.7": ("tumour", "liver_metastasis"),
    "C18": ("primary", "colorectal"),
    "C19": ("primary", "colorectal"),
    "C20": ("primary", "colorectal"),
    "C50": ("primary", "breast"),
    "C7A": ("primary", "neuroendocrine"),
    "K74.6": ("cirrhosis", True),
    "K70.3": ("cirrhosis", True),
    "B18.0": ("liver_disease", "hbv"),
    "B18.1": ("liver_disease", "hbv"),
    "B18.2": ("liver_disease", "hcv"),
    "K70": ("liver_disease", "alcohol"),
    "K75.8": ("liver_disease", "masld"),
    "K76.0": ("liver_disease", "masld"),
    "K74.3": ("liver_disease", "pbc"),
    "K83.0": ("liver_disease", "psc"),
}
SNOMED_CONDITIONS = {
    "25370001": ("tumour", "hcc"),
    "94381002": ("tumour", "liver_metastasis"),
    "363406005": ("primary", "colorectal"),
    "363351006": ("primary", "colorectal"),
    "254837009": ("primary", "breast"),
    "19943007": ("cirrhosis", True),
    "61977001": ("liver_disease", "hbv"),
    "128302006": ("liver_disease", "hcv"),
    "41309000": ("liver_disease", "alcohol"),
    "197321007": ("liver_disease", "masld"),
    "31712002": ("liver_disease", "pbc"),
    "82403002": ("liver_disease", "psc"),
}


def _condition_meaning(codings) -> tuple[str, Any] | None:
    for coding in codings or []:
        code = coding.code or ""
        if coding.system == SNOMED and code in SNOMED_CONDITIONS:
            return SNOMED_CONDITIONS[code]
        if coding.system in ICD10:
            # The longest matching prefix wins: K70.3 (alcoholic cirrhosis) before K70 (alcoholic liver disease).
            for prefix in sorted(ICD10_CONDITIONS, key=len, reverse=True):
                if code.startswith(prefix):
                    return ICD10_CONDITIONS[prefix]
    return None


def _loinc(codeable) -> str | None:
    for coding in (codeable.coding if codeable else None) or []:
        if coding.system == LOINC:
            return coding.code
    return None


def _describe(resource) -> str:
    name = f"{resource.get_resource_type()}/{resource.id or '?'}"
    codeable = getattr(resource, "code", None)
    label = (codeable.text if codeable is not None else None) or next(
        (c.display or f"{c.system} {c.code}" for c in (getattr(codeable, "coding", None) or [])), None
    )
    return f"{name} ({label})" if label else name


def _when(observation) -> str:
    """Sortable effective time (ISO text; dates sort before datetimes of the same day)."""
    value = observation.effectiveDateTime or observation.issued
    return value.isoformat() if value is not None else ""


def case_from_bundle(bundle: dict, source: str = "bundle") -> tuple[Case, list[str]]:
    """Build a `Case` from a FHIR R4 Bundle (the parsed JSON).

    Parameters
    ----------
    bundle : dict
        A Bundle resource (``resourceType: Bundle``).
    source : str
        Names the bundle in error messages (a file name).

    Returns
    -------
    case : Case
    unused : list of str
        One description per entry (or coding) not used, with the reason.

    Raises
    ------
    InputError
        When the bundle is not valid FHIR R4, has no or several Patients, no liver-tumour Condition,
        contradicting tumour diagnoses, or a lab value without an accepted unit.
    """
    from fhir.resources.R4B.bundle import Bundle  # heavy import, only when a bundle is read

    try:
        parsed = Bundle.model_validate(bundle)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise InputError(f"{source}: Bundle{path}", f"valid FHIR R4 ({first['msg']})") from None
    except KeyError as error:  # fhir.resources names an unknown resourceType by a KeyError
        raise InputError(f"{source}: Bundle.entry.resource.resourceType", "an R4 resource type", str(error)) from None

    unused: list[str] = []
    patients, observations, findings = [], {}, {}
    for index, entry in enumerate(parsed.entry or []):
        resource = entry.resource
        kind = resource.get_resource_type()
        if kind == "Patient":
            patients.append(resource)
        elif kind == "Condition":
            status = _first_code(resource.verificationStatus)
            meaning = _condition_meaning(resource.code.coding if resource.code else None)
            if status in ("refuted", "entered-in-error"):
                unused.append(f"{_describe(resource)}: verification status {status}")
            elif meaning is None:
                unused.append(f"{_describe(resource)}: not a condition cryoplan uses")
            else:
                findings.setdefault(meaning[0], []).append((meaning[1], resource, index))
        elif kind == "Observation":
            code = _loinc(resource.code)
            if resource.status not in USABLE_STATUSES:
                unused.append(f"{_describe(resource)}: status {resource.status}")
            elif code in LAB_CODES or code in (ECOG_CODE, TUMOUR_SIZE_CODE):
                observations.setdefault(code, []).append((resource, index))
            else:
                unused.append(f"{_describe(resource)}: not an input cryoplan uses")
        else:
            unused.append(f"{kind}/{resource.id or '?'}: resource type not used")

    if len(patients) > 1:
        raise InputError(f"{source}: Bundle.entry", "at most one Patient", f"{len(patients)} Patients")

    labs: dict[str, Any] = {}
    patient: dict[str, Any] = {}
    lesions = []
    dates = []
    for code, items in observations.items():
        if code == TUMOUR_SIZE_CODE:
            for resource, index in items:
                lesions.append(_tumour_size(resource, index, source))
                dates.append(_when(resource))
            continue
        items.sort(key=lambda item: _when(item[0]))
        resource, index = items[-1]
        unused += [f"{_describe(old)}: superseded by the later {_describe(resource)}" for old, _ in items[:-1]]
        dates.append(_when(resource))
        where = f"{source}: Bundle.entry[{index}].resource"
        if code == ECOG_CODE:
            if resource.valueInteger is None:
                raise InputError(f"{where}.valueInteger", "the ECOG performance status as an integer 0-5")
            patient["ecog"] = resource.valueInteger
            continue
        quantity = resource.valueQuantity
        if quantity is None or quantity.value is None:
            raise InputError(f"{where}.valueQuantity", "a value with its unit")
        analyte = LAB_CODES[code]
        if analyte == "inr":
            labs["inr"] = float(quantity.value)
            continue
        unit = quantity.code or quantity.unit
        try:
            unit = units.normalise_unit(analyte, unit)
        except ValueError as error:
            raise InputError(f"{where}.valueQuantity.code", f"a UCUM unit of {analyte}: {error}", unit) from None
        labs[analyte] = {"value": float(quantity.value), "unit": unit}

    if patients:
        person = patients[0]
        if person.gender in ("male", "female"):
            patient["sex"] = person.gender
        else:
            unused.append(f"Patient/{person.id or '?'}.gender ({person.gender}): MELD 3.0 needs male or female")
        if parsed.timestamp is not None:
            reference = parsed.timestamp.date()
        else:
            reference = date.fromisoformat(max(dates)[:10]) if any(dates) else None
        if person.birthDate is not None and reference is not None:
            patient["age"] = _age(person.birthDate, reference)

    diagnosis = _diagnosis(findings, unused, source)
    document = {"schema_version": 1, "patient": patient, "diagnosis": diagnosis, "labs": labs, "lesions": lesions}
    return parse_case(document, source=source), unused


def _first_code(codeable) -> str | None:
    """The first code of a CodeableConcept (for status concepts, whose system is fixed)."""
    codings = (codeable.coding if codeable else None) or []
    return codings[0].code if codings else None


def _tumour_size(resource, index: int, source: str) -> dict:
    where = f"{source}: Bundle.entry[{index}].resource.valueQuantity"
    quantity = resource.valueQuantity
    if quantity is None or quantity.value is None:
        raise InputError(where, "the tumour's largest diameter with its unit (mm or cm)")
    unit = (quantity.code or quantity.unit or "").strip()
    if unit not in ("mm", "cm"):
        raise InputError(f"{where}.code", "mm or cm", unit or None)
    diameter = float(quantity.value) * (10 if unit == "cm" else 1)
    return {"id": resource.id or f"entry{index}", "diameter_mm": diameter}


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _diagnosis(findings: dict, unused: list[str], source: str) -> dict:
    tumours = {value for value, _, _ in findings.get("tumour", [])}
    if not tumours:
        raise InputError(
            f"{source}: Bundle.entry",
            "a Condition coding the liver tumour (HCC: ICD-10 C22.0 or SNOMED CT "
            "25370001; liver metastasis: ICD-10 C78.7 or SNOMED CT 94381002)",
        )
    if len(tumours) > 1:
        raise InputError(f"{source}: Bundle.entry", "one liver-tumour diagnosis (HCC or liver metastasis, not both)")
    primaries = [value for value, _, _ in findings.get("primary", [])]
    if tumours == {"hcc"}:
        kind = "hcc"
        unused += [
            f"{_describe(r)}: a primary cancer, but the liver tumour is HCC" for _, r, _ in findings.get("primary", [])
        ]
    elif len(set(primaries)) == 1:
        kind = f"{primaries[0]}_metastasis"
    else:
        kind = "other_metastasis"
        unused += [
            f"{_describe(r)}: several primaries given, metastasis typed as other"
            for _, r, _ in findings.get("primary", [])
        ]
    diagnosis: dict[str, Any] = {"type": kind}
    if findings.get("cirrhosis"):
        diagnosis["cirrhosis"] = True
    diseases = findings.get("liver_disease", [])
    if diseases:
        # A cholestatic disease changes the Child-Pugh bands, so it is the one kept.
        diseases = sorted(diseases, key=lambda d: d[0] not in ("pbc", "psc"))
        diagnosis["liver_disease"] = diseases[0][0]
        unused += [f"{_describe(r)}: liver disease already given as {diseases[0][0]}" for v, r, _ in diseases[1:]]
    return diagnosis
