"""A case from a FHIR R4 Bundle: Patient, Conditions and Observations.

The bundle is validated with `fhir.resources.R4B` (R4 resources; the package's default models are R5 and
drop R4-only fields). What is read:

- **Patient** (exactly one): ``gender`` (male / female) and the age in whole years at the bundle's
  ``timestamp``, or, without one, at the latest observation used. A partial ``birthDate`` (``1961``,
  ``1961-06``) gives the youngest age it allows, with a note when the oldest differs.
- **Condition** (ICD-10 with or without the dot, or SNOMED CT): the liver tumour (HCC, or liver metastasis
  with its primary), cirrhosis, the liver disease, ascites and hepatic encephalopathy (their grade from
  ``severity``). A condition that is refuted, entered in error, unconfirmed, provisional or differential,
  or whose ``clinicalStatus`` is inactive, in remission or resolved, is not used; a refuted ascites or
  encephalopathy is read as its absence.
- **Observation** (LOINC, UCUM units), the latest of each analyte by its instant (time zones honoured;
  ``effectivePeriod`` by its end; ``issued`` when there is no effective time): bilirubin, albumin, INR,
  platelets, creatinine and sodium under their common LOINC codes (`LAB_CODES`), ECOG performance status
  89247-1 (valueInteger), tumour size 21889-1 (one lesion per observation, its id the observation's id),
  and ascites or hepatic encephalopathy (SNOMED CT code; a severity, absent, or a West Haven grade as
  valueInteger). A value with a comparator (``<0.2``) is a bound, returned in ``lab_bounds`` and not as a
  value; a latest observation with ``dataAbsentReason`` falls back to the one before, with a note.

Everything else is returned as a list of descriptions of the entries not used, each with the reason, so
nothing is dropped silently. Vascular invasion, spread and bile-duct distances have no code here: they stay
missing and the assessment names them.

References
----------
HL7 FHIR Release 4 (4.0.1), resources Bundle, Patient, Condition and Observation. https://hl7.org/fhir/R4/
LOINC (Regenstrief Institute), version 2.77. https://loinc.org
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from cryoplan import units
from cryoplan.case import Case, parse_case
from cryoplan.clinical.eligibility import LabBound
from cryoplan.errors import InputError

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")

#: LOINC codes of each lab: the serum or plasma codes in mass and in molar units, and the whole-blood and
#: point-of-care variants laboratories report under.
LAB_CODES = {
    "1975-2": "bilirubin",  # Bilirubin.total [Mass/volume] in Serum or Plasma
    "14631-6": "bilirubin",  # Bilirubin.total [Moles/volume] in Serum or Plasma
    "42719-5": "bilirubin",  # Bilirubin.total [Mass/volume] in Blood
    "1751-7": "albumin",  # Albumin [Mass/volume] in Serum or Plasma
    "61151-7": "albumin",  # Albumin [Mass/volume] in Serum or Plasma by Bromocresol green (BCG) dye binding
    "61152-5": "albumin",  # Albumin [Mass/volume] in Serum or Plasma by Bromocresol purple (BCP) dye binding
    "6301-6": "inr",  # INR in Platelet poor plasma by Coagulation assay
    "34714-6": "inr",  # INR in Blood by Coagulation assay (point of care)
    "46418-0": "inr",  # INR in Capillary blood by Coagulation assay
    "777-3": "platelets",  # Platelets [#/volume] in Blood by Automated count
    "26515-7": "platelets",  # Platelets [#/volume] in Blood
    "778-1": "platelets",  # Platelets [#/volume] in Blood by Manual count
    "2160-0": "creatinine",  # Creatinine [Mass/volume] in Serum or Plasma
    "14682-9": "creatinine",  # Creatinine [Moles/volume] in Serum or Plasma
    "38483-4": "creatinine",  # Creatinine [Mass/volume] in Blood
    "2951-2": "sodium",  # Sodium [Moles/volume] in Serum or Plasma
    "2947-0": "sodium",  # Sodium [Moles/volume] in Blood
}
#: Alpha-fetoprotein: recognised, and listed as not used (no criterion of the assessment reads it).
AFP_CODES = {"1834-1", "19176-7"}
ECOG_CODE = "89247-1"
TUMOUR_SIZE_CODE = "21889-1"
USABLE_STATUSES = {"final", "amended", "corrected", "preliminary"}
UNCONFIRMED = {"refuted", "entered-in-error", "unconfirmed", "provisional", "differential"}
NOT_CURRENT = {"inactive", "remission", "resolved"}

# Condition codes → (case field, value). ICD-10 codes are compared without their dot and match as
# prefixes (C18 covers C18.7 and C187).
ICD10_CONDITIONS = {
    "C220": ("tumour", "hcc"),
    "C787": ("tumour", "liver_metastasis"),
    "C18": ("primary", "colorectal"),
    "C19": ("primary", "colorectal"),
    "C20": ("primary", "colorectal"),
    "C50": ("primary", "breast"),
    "C7A": ("primary", "neuroendocrine"),
    "K746": ("cirrhosis", True),
    "K703": ("cirrhosis", True),
    "B180": ("liver_disease", "hbv"),
    "B181": ("liver_disease", "hbv"),
    "B182": ("liver_disease", "hcv"),
    "K70": ("liver_disease", "alcohol"),
    "K758": ("liver_disease", "masld"),
    "K760": ("liver_disease", "masld"),
    "K743": ("liver_disease", "pbc"),
    "K830": ("liver_disease", "psc"),
    "R18": ("ascites", None),
    "K7682": ("encephalopathy", None),
}
SNOMED_CONDITIONS = {
    "25370001": ("tumour", "hcc"),  # Hepatocellular carcinoma
    "109841003": ("tumour", "hcc"),  # Liver cell carcinoma
    "94381002": ("tumour", "liver_metastasis"),  # Secondary malignant neoplasm of liver
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
    "389026000": ("ascites", None),  # Ascites
    "13920009": ("encephalopathy", None),  # Hepatic encephalopathy
}
# SNOMED CT severities and absence → the Child-Pugh ascites band and a West Haven grade that stands for
# the encephalopathy band (mild and moderate: grade 1-2; severe: grade 3-4).
MILD, MODERATE, SEVERE, ABSENT = "255604002", "6736007", "24484000", "2667000"
ASCITES_BY_SEVERITY = {MILD: "mild", MODERATE: "moderate_severe", SEVERE: "moderate_severe", ABSENT: "none"}
ENCEPHALOPATHY_BY_SEVERITY = {MILD: 1, MODERATE: 2, SEVERE: 3, ABSENT: 0}


@dataclass
class _Read:
    """What reading a bundle collects besides the case: entries not used, notes, lab bounds."""

    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lab_bounds: dict[str, LabBound] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseRecord:
    """What a case file or a bundle gives: the case, the entries not used, notes on how entries were read, and
    the labs given only as bounds (all empty for a case file)."""

    case: Case
    unused: list[str]
    notes: list[str]
    lab_bounds: dict[str, LabBound]


def _icd10(code: str) -> str:
    return code.replace(".", "").strip().upper()


def _condition_meaning(codings: Any) -> tuple[str, Any] | None:
    for coding in codings or []:
        code = coding.code or ""
        if coding.system == SNOMED and code in SNOMED_CONDITIONS:
            return SNOMED_CONDITIONS[code]
        if coding.system in ICD10:
            # The longest matching prefix wins: K70.3 (alcoholic cirrhosis) before K70 (alcoholic liver disease).
            for prefix in sorted(ICD10_CONDITIONS, key=len, reverse=True):
                if _icd10(code).startswith(prefix):
                    return ICD10_CONDITIONS[prefix]
    return None


def _code(codeable: Any, system: str) -> str | None:
    for coding in (codeable.coding if codeable else None) or []:
        if coding.system == system:
            return str(coding.code) if coding.code is not None else None
    return None


def _describe(resource: Any) -> str:
    name = f"{resource.get_resource_type()}/{resource.id or '?'}"
    codeable = getattr(resource, "code", None)
    label = (codeable.text if codeable is not None else None) or next(
        (c.display or f"{c.system} {c.code}" for c in (getattr(codeable, "coding", None) or [])), None
    )
    return f"{name} ({label})" if label else name


def _as_instant(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime; partial dates and dates at their start."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    text = str(value)  # "2026" or "2026-02": the validator keeps partial dates as text
    year, _, month = text.partition("-")
    return datetime(int(year), int(month or 1), 1, tzinfo=UTC)


def _when(observation: Any) -> datetime:
    """The observation's instant: effective time (a period by its end), else issued; the epoch when none."""
    period = observation.effectivePeriod
    effective = (
        observation.effectiveDateTime
        or observation.effectiveInstant
        or (period.end or period.start if period is not None else None)
    )
    return _as_instant(effective) or _as_instant(observation.issued) or datetime.min.replace(tzinfo=UTC)


def _birth_range(value: Any) -> tuple[date, date]:
    """Earliest and latest birth date a FHIR birthDate allows (a year or a month is a range)."""
    if isinstance(value, date):
        return value, value
    year, _, month = str(value).partition("-")
    if month:
        first = date(int(year), int(month), 1)
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return first, last
    return date(int(year), 1, 1), date(int(year), 12, 31)


def case_from_bundle(bundle: dict[str, Any], source: str = "bundle") -> CaseRecord:
    """Build a `Case` from a FHIR R4 Bundle (the parsed JSON).

    Parameters
    ----------
    bundle : dict
        A Bundle resource (``resourceType: Bundle``).
    source : str
        Names the bundle in error messages (a file name).

    Returns
    -------
    CaseRecord
        The case, one description per entry (or coding) not used with the reason, notes on entries read
        with a fallback, and the labs given only as bounds.

    Raises
    ------
    InputError
        When the bundle is not valid FHIR R4, has no Patient or several, no liver-tumour Condition,
        contradicting tumour diagnoses, or a lab value without an accepted unit.
    """
    try:
        parsed = Bundle.model_validate(bundle)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise InputError(f"{source}: Bundle{path}", f"valid FHIR R4 ({first['msg']})") from None
    except KeyError as error:  # fhir.resources names an unknown resourceType by a KeyError
        raise InputError(f"{source}: Bundle.entry.resource.resourceType", "an R4 resource type", str(error)) from None

    read = _Read()
    # fhir.resources types its fields loosely: resources are handled as Any, checked by their type name.
    patients: list[Any] = []
    observations: dict[str, list[tuple[Any, int]]] = {}
    findings: dict[str, list[tuple[Any, Any, int]]] = {}
    for index, entry in enumerate(parsed.entry or []):
        resource: Any = entry.resource
        kind = resource.get_resource_type()
        if kind == "Patient":
            patients.append(resource)
        elif kind == "Condition":
            _sort_condition(resource, index, findings, read.unused)
        elif kind == "Observation":
            _sort_observation(resource, index, observations, findings, read.unused)
        else:
            read.unused.append(f"{kind}/{resource.id or '?'}: resource type not used")

    if len(patients) != 1:
        raise InputError(f"{source}: Bundle.entry", "exactly one Patient", len(patients))

    labs: dict[str, Any] = {}
    patient: dict[str, Any] = {}
    lesions = []
    instants = []
    for key, items in observations.items():
        if key == TUMOUR_SIZE_CODE:
            for resource, index in items:
                lesions.append(_tumour_size(resource, index, source))
                instants.append(_when(resource))
            continue
        # Latest first; a stable sort keeps the later entry first among equal instants.
        items = sorted(items, key=lambda item: (_when(item[0]), item[1]), reverse=True)
        chosen = next((item for item in items if item[0].dataAbsentReason is None), None)
        absent = items[: items.index(chosen)] if chosen is not None else items
        for resource, _ in absent:
            reason = _first_code(resource.dataAbsentReason) or resource.dataAbsentReason.text or "unknown"
            fallback = f"the earlier {_describe(chosen[0])} is used" if chosen else f"{key} stays missing"
            read.notes.append(f"{_describe(resource)}: no value (dataAbsentReason {reason}); {fallback}")
        if chosen is None:
            continue
        resource, index = chosen
        read.unused.extend(
            f"{_describe(old)}: superseded by the later {_describe(resource)}"
            for old, _ in items[items.index(chosen) + 1 :]
        )
        instants.append(_when(resource))
        where = f"{source}: Bundle.entry[{index}].resource"
        if key == ECOG_CODE:
            if resource.valueInteger is None:
                raise InputError(f"{where}.valueInteger", "the ECOG performance status as an integer 0-5")
            patient["ecog"] = resource.valueInteger
        else:
            _read_lab(key, resource, where, labs, read)

    clinical = _clinical(findings, read)
    person = patients[0]
    if person.gender in ("male", "female"):
        patient["sex"] = person.gender
    else:
        read.unused.append(f"Patient/{person.id or '?'}.gender ({person.gender}): MELD 3.0 needs male or female")
    stamp = _as_instant(parsed.timestamp) or (max(instants) if instants else None)
    reference = stamp.date() if stamp is not None else None
    if person.birthDate is not None and reference is not None:
        earliest, latest = _birth_range(person.birthDate)
        youngest, oldest = _age(latest, reference), _age(earliest, reference)
        patient["age"] = youngest
        if youngest != oldest:
            read.notes.append(
                f"Patient/{person.id or '?'}.birthDate {person.birthDate}: age {youngest} or {oldest} on "
                f"{reference}; taken as {youngest}"
            )

    diagnosis = _diagnosis(findings, read.unused, source)
    document = {
        "schema_version": 1,
        "patient": patient,
        "diagnosis": diagnosis,
        "labs": labs,
        "clinical": clinical,
        "lesions": lesions,
    }
    return CaseRecord(parse_case(document, source=source), read.unused, read.notes, read.lab_bounds)


def _sort_condition(
    resource: Any, index: int, findings: dict[str, list[tuple[Any, Any, int]]], unused: list[str]
) -> None:
    verification = _first_code(resource.verificationStatus)
    clinical_status = _first_code(resource.clinicalStatus)
    meaning = _condition_meaning(resource.code.coding if resource.code else None)
    if meaning is None:
        unused.append(f"{_describe(resource)}: not a condition cryoplan uses")
    elif meaning[0] in ("ascites", "encephalopathy") and verification == "refuted":
        findings.setdefault(meaning[0], []).append((ABSENT, resource, index))
    elif verification in UNCONFIRMED:
        unused.append(f"{_describe(resource)}: verification status {verification}")
    elif clinical_status in NOT_CURRENT:
        unused.append(f"{_describe(resource)}: clinical status {clinical_status}")
    elif meaning[0] in ("ascites", "encephalopathy"):
        findings.setdefault(meaning[0], []).append((_first_snomed(resource.severity), resource, index))
    else:
        findings.setdefault(meaning[0], []).append((meaning[1], resource, index))


def _sort_observation(
    resource: Any,
    index: int,
    observations: dict[str, list[tuple[Any, int]]],
    findings: dict[str, list[tuple[Any, Any, int]]],
    unused: list[str],
) -> None:
    code = _code(resource.code, LOINC)
    finding = SNOMED_CONDITIONS.get(_code(resource.code, SNOMED) or "", (None,))[0]
    if resource.status not in USABLE_STATUSES:
        unused.append(f"{_describe(resource)}: status {resource.status}")
    elif code in LAB_CODES:
        observations.setdefault(LAB_CODES[code], []).append((resource, index))
    elif code in (ECOG_CODE, TUMOUR_SIZE_CODE):
        observations.setdefault(code, []).append((resource, index))
    elif code in AFP_CODES:
        unused.append(f"{_describe(resource)}: alpha-fetoprotein; no criterion of the assessment uses it")
    elif finding in ("ascites", "encephalopathy"):
        value: Any
        if resource.valueBoolean is False:
            value = ABSENT
        elif finding == "encephalopathy" and resource.valueInteger is not None:
            value = resource.valueInteger
        else:
            value = _first_snomed(resource.valueCodeableConcept)
        findings.setdefault(finding, []).append((value, resource, index))
    else:
        unused.append(f"{_describe(resource)}: not an input cryoplan uses")


def _read_lab(analyte: str, resource: Any, where: str, labs: dict[str, Any], read: _Read) -> None:
    quantity = resource.valueQuantity
    if quantity is None or quantity.value is None:
        raise InputError(f"{where}.valueQuantity", "a value with its unit")
    unit = None
    if analyte != "inr":
        given = quantity.code or quantity.unit
        try:
            unit = units.normalise_unit(analyte, given)
        except ValueError as error:
            raise InputError(f"{where}.valueQuantity.code", f"a UCUM unit of {analyte}: {error}", given) from None
    value = float(quantity.value)
    if quantity.comparator is not None:
        read.lab_bounds[analyte] = LabBound(analyte, quantity.comparator, value, unit)
        read.notes.append(f"{_describe(resource)}: {quantity.comparator}{value:g} {unit or ''} kept as a bound")
    elif analyte == "inr":
        labs["inr"] = value
    else:
        labs[analyte] = {"value": value, "unit": unit}


def _clinical(findings: dict[str, list[tuple[Any, Any, int]]], read: _Read) -> dict[str, Any]:
    """Ascites and encephalopathy from their findings: the latest that gives a grade or its absence."""
    clinical: dict[str, Any] = {}
    grades: dict[str, dict[str, Any]] = {"ascites": ASCITES_BY_SEVERITY, "encephalopathy": ENCEPHALOPATHY_BY_SEVERITY}
    fields = {"ascites": "ascites", "encephalopathy": "encephalopathy_grade"}
    for finding, by_code in grades.items():
        items = sorted(findings.get(finding, []), key=lambda item: (_recorded(item[1]), item[2]), reverse=True)
        for value, resource, _ in items:
            grade = value if isinstance(value, int) and not isinstance(value, bool) else by_code.get(value)
            if grade is None:
                read.notes.append(f"{_describe(resource)}: {finding} without a severity; its grade stays missing")
                continue
            if fields[finding] not in clinical:
                clinical[fields[finding]] = grade
                if finding == "encephalopathy" and not isinstance(value, int):
                    read.notes.append(f"{_describe(resource)}: severity read as West Haven grade {grade}")
            else:
                read.unused.append(f"{_describe(resource)}: superseded by a later {finding} finding")
    return clinical


def _recorded(resource: Any) -> datetime:
    if resource.get_resource_type() == "Observation":
        return _when(resource)
    return _as_instant(resource.recordedDate or resource.onsetDateTime) or datetime.min.replace(tzinfo=UTC)


def _first_code(codeable: Any) -> str | None:
    """The first code of a CodeableConcept (for status concepts, whose system is fixed)."""
    codings = (codeable.coding if codeable else None) or []
    return codings[0].code if codings else None


def _first_snomed(codeable: Any) -> str | None:
    return _code(codeable, SNOMED)


def _tumour_size(resource: Any, index: int, source: str) -> dict[str, Any]:
    where = f"{source}: Bundle.entry[{index}].resource.valueQuantity"
    quantity = resource.valueQuantity
    if quantity is None or quantity.value is None or quantity.comparator is not None:
        raise InputError(where, "the tumour's largest diameter with its unit (mm or cm), not a bound")
    unit = (quantity.code or quantity.unit or "").strip()
    if unit not in ("mm", "cm"):
        raise InputError(f"{where}.code", "mm or cm", unit or None)
    diameter = float(quantity.value) * (10 if unit == "cm" else 1)
    return {"id": resource.id or f"entry{index}", "diameter_mm": diameter}


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _diagnosis(findings: dict[str, list[tuple[Any, Any, int]]], unused: list[str], source: str) -> dict[str, Any]:
    tumours = {value for value, _, _ in findings.get("tumour", [])}
    if not tumours:
        raise InputError(
            f"{source}: Bundle.entry",
            "a confirmed, current Condition coding the liver tumour (HCC: ICD-10 C22.0 or SNOMED CT "
            "25370001 / 109841003; liver metastasis: ICD-10 C78.7 or SNOMED CT 94381002)",
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
