"""Structured case entry: the case form (patient, diagnosis, labs with their units, clinical findings,
lesions, imaging), the import of a YAML/JSON case file or a FHIR R4 bundle into that form, and the
plausibility check of lab values that names a likely unit mix-up.

Form fields are named by their path in the case document (``patient.age``, ``labs.albumin.value``,
``lesions[1].diameter_mm``), so that an `InputError` from `cryoplan.case.parse_case` lands next to the
field it is about.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Annotated, Any, get_args

import yaml
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from cryoplan import units
from cryoplan.case import DiagnosisType, LiverDisease, PriorTreatment, parse_case
from cryoplan.clinical.fhir import case_from_bundle
from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import PRESETS
from cryoplan.service import store
from cryoplan.service.audit import Actor
from cryoplan.service.auth import ALL_ROLES, EDITORS, requires
from cryoplan.service.deps import Id, transaction
from cryoplan.service.labels import DIAGNOSIS_LABELS, LIVER_DISEASE_LABELS
from cryoplan.service.models import Case
from cryoplan.service.routes.inbox import unread_count

router = APIRouter(include_in_schema=False)
PageEditor = Annotated[Actor, Depends(requires(*EDITORS, page=True))]
ApiReader = Annotated[Actor, Depends(requires(*ALL_ROLES))]

ANALYTES = ("bilirubin", "albumin", "creatinine", "sodium", "platelets")
ANALYTE_LABELS = {
    "bilirubin": "Bilirubin (total)",
    "albumin": "Albumin",
    "creatinine": "Creatinine",
    "sodium": "Sodium",
    "platelets": "Platelets",
    "inr": "INR",
}
# Values outside these bounds (canonical units) are possible in no living patient or so rare that a unit
# mix-up is far likelier: they are wide around the adult reference intervals (bilirubin 0.3–1.2 mg/dL,
# albumin 3.5–5.0 g/dL, creatinine 0.6–1.2 mg/dL, sodium 135–145 mmol/L, platelets 150–400 10^9/L, INR
# 0.8–1.2) so that they catch typing errors, not disease.
PLAUSIBLE = {
    "bilirubin": (0.1, 40.0),
    "albumin": (1.0, 6.5),
    "creatinine": (0.2, 20.0),
    "sodium": (100.0, 180.0),
    "platelets": (5.0, 1500.0),
    "inr": (0.7, 10.0),
}
MAX_LESIONS = 12
TREATMENT_LABELS = {
    "tace": "TACE",
    "tare": "TARE (radioembolisation)",
    "rfa": "Radiofrequency ablation",
    "mwa": "Microwave ablation",
    "cryoablation": "Cryoablation",
    "resection": "Resection",
    "sbrt": "SBRT",
    "systemic": "Systemic therapy",
    "transplant": "Liver transplant",
    "other": "Other",
}
ASCITES_LABELS = {"none": "None", "mild": "Mild or controlled by diuretics", "moderate_severe": "Moderate to severe"}
LABEL_PRESET_LABELS = {
    "liver_tumour": "Liver and tumour (1 liver, 2 tumour)",
    "totalsegmentator": "TotalSegmentator (CT, task total)",
    "totalsegmentator_mr": "TotalSegmentator (MR)",
}


def plausibility_warning(analyte: str, value: float, unit: str | None) -> str | None:
    """A warning when a lab value is implausible in its unit, naming the unit it looks like it was measured in.

    Parameters
    ----------
    analyte : str
        One of `ANALYTES` or ``"inr"``.
    value : float
    unit : str or None
        An accepted unit of the analyte (None for the INR).

    Returns
    -------
    str or None
        None for a plausible value. Otherwise, e.g. for albumin 39 g/dL: "albumin 39 g/dL is implausible
        (expected 1–6.5 g/dL); it looks like g/L".

    Examples
    --------
    >>> plausibility_warning("albumin", 39, "g/dL")
    'Albumin 39 g/dL is implausible (expected 1–6.5 g/dL): it looks like g/L.'
    >>> plausibility_warning("albumin", 39, "g/L") is None
    True
    """
    low, high = PLAUSIBLE[analyte]
    if analyte == "inr" or unit is None:
        if low <= value <= high:
            return None
        return f"INR {value:g} is implausible (expected {low:g}–{high:g})."
    canonical = units.canonical_unit(analyte)
    if low <= units.convert(analyte, value, unit, canonical) <= high:
        return None
    low_shown, high_shown = (f"{units.convert(analyte, bound, canonical, unit):.3g}" for bound in (low, high))
    message = f"{ANALYTE_LABELS[analyte]} {value:g} {unit} is implausible (expected {low_shown}–{high_shown} {unit})"
    likely = [
        other
        for other in units.accepted_units(analyte)
        if other != unit and low <= units.convert(analyte, value, other, canonical) <= high
    ]
    return message + (f": it looks like {' or '.join(likely)}." if likely else ".")


def lab_warnings(document: dict[str, Any]) -> dict[str, str]:
    """The plausibility warnings of a case document's labs, by form field (``labs.albumin.value``)."""
    warnings = {}
    labs = document.get("labs") or {}
    for analyte in (*ANALYTES, "inr"):
        lab = labs.get(analyte)
        if analyte == "inr":
            value, unit = lab, None
        elif isinstance(lab, dict):
            value, unit = lab.get("value"), lab.get("unit")
            try:
                unit = units.normalise_unit(analyte, unit)
            except ValueError:
                continue
        else:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            warning = plausibility_warning(analyte, float(value), unit)
            if warning:
                warnings["labs.inr" if analyte == "inr" else f"labs.{analyte}.value"] = warning
    return warnings


# --- form ↔ case document ------------------------------------------------------------------------------


def _number(form: FormData, field: str, errors: dict[str, str], integer: bool = False) -> float | int | None:
    text = str(form.get(field, "")).strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        errors[field] = f"expected a number, got {text!r}"
        return None
    if not math.isfinite(value):
        errors[field] = f"expected a finite number, got {text!r}"
        return None
    if integer:
        if value != int(value):
            errors[field] = f"expected a whole number, got {text!r}"
            return None
        return int(value)
    return int(value) if value == int(value) and "." not in text else value


def _choice(form: FormData, field: str) -> str | None:
    return str(form.get(field, "")).strip() or None


def _flag(form: FormData, field: str) -> bool | None:
    """A yes / no / unknown select."""
    return {"yes": True, "no": False}.get(str(form.get(field, "")))


def document_from_form(form: FormData, base: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The case document a submitted case form describes, and the fields it could not read.

    Parameters
    ----------
    form : FormData
        The posted form; field names are document paths.
    base : dict, optional
        The stored document being edited: its keys the form does not show (``case_id``, ``imaging``'s
        labels map when the form leaves it alone) are kept.

    Returns
    -------
    document : dict
        Empty fields are left out, so the assessment names them as missing inputs.
    errors : dict
        Form field → what was expected, for the fields that are not numbers where numbers belong.
    """
    errors: dict[str, str] = {}
    document = {key: value for key, value in (base or {}).items() if key in ("case_id",)}
    document["schema_version"] = 1
    patient = {
        "age": _number(form, "patient.age", errors, integer=True),
        "sex": _choice(form, "patient.sex"),
        "ecog": _number(form, "patient.ecog", errors, integer=True),
    }
    document["patient"] = {k: v for k, v in patient.items() if v is not None}
    diagnosis = {
        "type": _choice(form, "diagnosis.type"),
        "cirrhosis": _flag(form, "diagnosis.cirrhosis"),
        "liver_disease": _choice(form, "diagnosis.liver_disease"),
        "vascular_invasion": _flag(form, "diagnosis.vascular_invasion"),
        "extrahepatic_spread": _flag(form, "diagnosis.extrahepatic_spread"),
    }
    document["diagnosis"] = {k: v for k, v in diagnosis.items() if v is not None}
    labs: dict[str, Any] = {}
    for analyte in ANALYTES:
        value = _number(form, f"labs.{analyte}.value", errors)
        if value is not None:
            labs[analyte] = {"value": value, "unit": _choice(form, f"labs.{analyte}.unit")}
    inr = _number(form, "labs.inr", errors)
    if inr is not None:
        labs["inr"] = inr
    if form.get("labs.dialysis_twice_past_week") == "on":
        labs["dialysis_twice_past_week"] = True
    document["labs"] = labs
    clinical = {
        "ascites": _choice(form, "clinical.ascites"),
        "encephalopathy_grade": _number(form, "clinical.encephalopathy_grade", errors, integer=True),
    }
    document["clinical"] = {k: v for k, v in clinical.items() if v is not None}
    lesions = []
    for index in range(MAX_LESIONS):
        prefix = f"lesions[{index}]"
        lesion_id = _choice(form, f"{prefix}.id")
        numbers = {
            name: _number(form, f"{prefix}.{name}", errors, integer=name == "segment")
            for name in ("diameter_mm", "segment", "distance_to_bile_duct_mm", "distance_to_major_vessel_mm")
        }
        if lesion_id is None and all(v is None for v in numbers.values()):
            continue
        if lesion_id is None:
            errors[f"{prefix}.id"] = "a lesion id (e.g. L1)"
        lesions.append({"id": lesion_id, **{k: v for k, v in numbers.items() if v is not None}})
    document["lesions"] = lesions
    document["transplant_listed"] = form.get("transplant_listed") == "on"
    document["prior_treatments"] = [t for t in form.getlist("prior_treatments") if t in get_args(PriorTreatment)]
    imaging = _imaging_from_form(form, errors)
    if imaging:
        document["imaging"] = imaging
    return document, errors


def _imaging_from_form(form: FormData, errors: dict[str, str]) -> dict[str, Any] | None:
    """The imaging section: a label preset, or a labels map typed as ``name = value`` lines."""
    preset = _choice(form, "imaging.label_preset")
    mapping_text = str(form.get("imaging.labels_map", "")).strip()
    if preset and mapping_text:
        errors["imaging.labels_map"] = "either a label preset or a labels map, not both"
        return None
    if preset:
        return {"label_preset": preset}
    if not mapping_text:
        return None
    labels_map = {}
    for number, line in enumerate(mapping_text.splitlines(), 1):
        match = re.fullmatch(r"\s*([A-Za-z_][\w]*)\s*[=:]\s*(\d+)\s*", line)
        if not line.strip():
            continue
        if match is None:
            errors["imaging.labels_map"] = f"line {number}: expected 'structure = label value', got {line.strip()!r}"
            return None
        labels_map[match.group(1)] = int(match.group(2))
    return {"labels_map": labels_map}


def check_document(document: dict[str, Any]) -> dict[str, str]:
    """The first problem `parse_case` finds in a form's document (without its images), by field."""
    try:
        parse_case({k: v for k, v in document.items() if k != "imaging"}, "case")
    except InputError as error:
        return {error.field: error.expected + (f" (got {error.got!r})" if error.got is not None else "")}
    return {}


def form_values(document: dict[str, Any]) -> dict[str, Any]:
    """The form's field values for a stored document (the inverse of `document_from_form`)."""
    values: dict[str, object] = {}
    for section in ("patient", "diagnosis", "clinical"):
        for key, value in (document.get(section) or {}).items():
            if isinstance(value, bool):
                value = "yes" if value else "no"
            values[f"{section}.{key}"] = value
    labs = document.get("labs") or {}
    for analyte in ANALYTES:
        lab = labs.get(analyte)
        if isinstance(lab, dict):
            values[f"labs.{analyte}.value"] = lab.get("value")
            values[f"labs.{analyte}.unit"] = lab.get("unit")
    if labs.get("inr") is not None:
        values["labs.inr"] = labs["inr"]
    values["labs.dialysis_twice_past_week"] = bool(labs.get("dialysis_twice_past_week"))
    for index, lesion in enumerate(document.get("lesions") or []):
        for key, value in lesion.items():
            values[f"lesions[{index}].{key}"] = value
    values["transplant_listed"] = bool(document.get("transplant_listed"))
    values["prior_treatments"] = list(document.get("prior_treatments") or [])
    imaging = document.get("imaging") or {}
    values["imaging.label_preset"] = imaging.get("label_preset")
    if imaging.get("labels_map"):
        values["imaging.labels_map"] = "\n".join(f"{k} = {v}" for k, v in imaging["labels_map"].items())
    return values


def form_options() -> dict[str, Any]:
    """The choices the case form offers, each with its human label."""
    return {
        "diagnosis_types": [(code, DIAGNOSIS_LABELS.get(code, code)) for code in get_args(DiagnosisType)],
        "liver_diseases": [(code, LIVER_DISEASE_LABELS.get(code, code)) for code in get_args(LiverDisease)],
        "treatments": [(code, TREATMENT_LABELS.get(code, code)) for code in get_args(PriorTreatment)],
        "ascites": list(ASCITES_LABELS.items()),
        "label_presets": [(code, LABEL_PRESET_LABELS.get(code, code)) for code in PRESETS],
        "analytes": [(a, ANALYTE_LABELS[a], units.accepted_units(a)) for a in ANALYTES],
        "lesion_rows": MAX_LESIONS,
    }


def imported_document(text: str, filename: str) -> tuple[dict[str, Any], list[str]]:
    """A case document from an imported YAML/JSON case file or FHIR R4 bundle, and notes for the user.

    Image paths of a case file are dropped (images are attached to the case as documents).
    """
    try:
        parsed = yaml.safe_load(text)  # YAML reads JSON too
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise InputError(
            "case_file",
            "a YAML or JSON case file, or a FHIR bundle",
            "unreadable" + (f" near line {mark.line + 1}" if mark is not None else ""),
        ) from None
    if not isinstance(parsed, dict):
        raise InputError("case_file", "a YAML or JSON case file, or a FHIR bundle", type(parsed).__name__)
    notes: list[str] = []
    if parsed.get("resourceType") == "Bundle":
        record = case_from_bundle(parsed, source=filename or "bundle")
        document = record.case.model_dump(mode="json", exclude_none=True)
        notes += [f"Not used: {entry}" for entry in record.unused]
        notes += list(record.notes)
        notes += [
            f"{ANALYTE_LABELS.get(name, name)} is known only as {bound.text()}: enter a value to use it"
            for name, bound in record.lab_bounds.items()
        ]
        return document, notes
    document = dict(parsed)
    imaging = document.get("imaging")
    if isinstance(imaging, dict):
        dropped = [key for key in ("image", "labels", "masks") if key in imaging]
        if dropped:
            document["imaging"] = {k: v for k, v in imaging.items() if k not in dropped}
            notes.append(f"Image paths ({', '.join(dropped)}) left out: upload the images to the case instead.")
    return document, notes


# --- routes ----------------------------------------------------------------------------------------------


def render_form(
    request: Request,
    actor: Actor,
    *,
    case: Case | None = None,
    status_code: int = 200,
    document: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    label: str = "",
    board_date: str = "",
    errors: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    advanced_json: str | None = None,
) -> HTMLResponse:
    """The case form: empty for a new case, the stored case's values for an edit, or the values just
    submitted (kept as typed) with the errors beside their fields."""
    document = document or {"schema_version": 1, "diagnosis": {"type": "hcc"}}
    documents = []
    with transaction(request) as db:
        count = unread_count(db, actor.user_id)
        if case is not None:
            documents = [d for d in store.documents(db, case.id) if d.purpose in ("ct", "labels")]
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "case_form.html",
        {
            "actor": actor,
            "case": case,
            "label": label,
            "board_date": board_date,
            "values": values if values is not None else form_values(document),
            "errors": errors or {},
            "warnings": lab_warnings(document),
            "notes": notes or [],
            "case_document": advanced_json or json.dumps(document, indent=2, ensure_ascii=False),
            "options": form_options(),
            "image_documents": documents,
            "inbox_count": count,
            "error": "Not saved: see the marked fields." if errors else None,
        },
        status_code=status_code,
    )
    return page


def submitted_values(form: FormData) -> dict[str, Any]:
    """The submitted fields as the form shows them again (checkboxes as booleans, multi-selects as lists)."""
    values: dict[str, object] = dict(form.multi_items())
    values["prior_treatments"] = form.getlist("prior_treatments")
    values["labs.dialysis_twice_past_week"] = form.get("labs.dialysis_twice_past_week") == "on"
    values["transplant_listed"] = form.get("transplant_listed") == "on"
    return values


def _error_text(error: InputError) -> str:
    return error.expected + (f" (got {error.got!r})" if error.got is not None else "")


def _document_of(
    form: FormData, base: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, str], str | None]:
    """(document, field values to show again, errors, advanced JSON text) of a submitted case form."""
    if form.get("entry") == "json":
        text = str(form.get("case_document", ""))
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            return None, {}, {"case_document": f"valid JSON (line {error.lineno}: {error.msg})"}, text
        if not isinstance(document, dict):
            return None, {}, {"case_document": "a JSON object (the case file)"}, text
        return document, form_values(document), {}, text
    document, errors = document_from_form(form, base)
    return document, submitted_values(form), errors or check_document(document), None


def _board_date(form: FormData) -> dt.date | None:
    text = str(form.get("board_date", "")).strip()
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise InputError("board_date", "a date YYYY-MM-DD", text) from None


@router.get("/cases/new")
def new_case_page(request: Request, actor: PageEditor) -> HTMLResponse:
    return render_form(request, actor)


@router.post("/cases/new")
async def new_case(request: Request, actor: PageEditor) -> Response:
    """Create a case from the structured form, or from the JSON of the advanced view (``entry=json``)."""
    form = await request.form()
    label = str(form.get("label", ""))
    document, values, errors, text = _document_of(form, None)
    if not errors:
        assert document is not None  # a form without errors describes a document
        try:
            with transaction(request) as db:
                case = store.create_case(db, actor, label, document)
            return RedirectResponse(f"/cases/{case.id}", status_code=303)
        except InputError as error:
            errors = {error.field: _error_text(error)}
    return render_form(
        request,
        actor,
        status_code=422,
        document=document,
        values=values,
        label=label,
        errors=errors,
        advanced_json=text,
    )


@router.post("/cases/new/import")
async def import_case(
    request: Request, actor: PageEditor, case_file: Annotated[UploadFile, File()], label: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Read a case file or FHIR bundle into the form, for the user to check and then save."""
    raw = await case_file.read(2**20 + 1)
    if len(raw) > 2**20:
        return render_form(request, actor, status_code=422, label=label, errors={"case_file": "at most 1 MiB"})
    try:
        document, notes = imported_document(raw.decode("utf-8"), case_file.filename or "")
    except UnicodeDecodeError:
        return render_form(request, actor, status_code=422, label=label, errors={"case_file": "UTF-8 text"})
    except InputError as error:
        return render_form(request, actor, status_code=422, label=label, errors={error.field: _error_text(error)})
    notes.insert(0, f"Read from {case_file.filename}: check the fields, then create the case.")
    stem = (case_file.filename or "").rsplit(".", 1)[0]
    return render_form(request, actor, document=document, label=label or stem, notes=notes)


@router.get("/cases/{case_id}/edit")
def edit_case_page(request: Request, case_id: Id, actor: PageEditor) -> HTMLResponse:
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id)
    return render_form(
        request,
        actor,
        case=case,
        document=dict(case.case_document),
        label=case.label,
        board_date=case.board_date.isoformat() if case.board_date else "",
    )


@router.post("/cases/{case_id}/edit")
async def edit_case(request: Request, case_id: Id, actor: PageEditor) -> Response:
    """Save the structured form (or the advanced JSON) of a case, at the version it was opened at."""
    form = await request.form()
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id)
        base = dict(case.case_document)
    label, board_date = str(form.get("label", "")), str(form.get("board_date", ""))
    document, values, errors, text = _document_of(form, base)
    if not errors:
        try:
            with transaction(request) as db:
                store.update_case(
                    db, actor, case_id, int(str(form.get("version", "0")) or 0), label, document, _board_date(form)
                )
            return RedirectResponse(f"/cases/{case_id}", status_code=303)
        except InputError as error:
            errors = {error.field: _error_text(error)}
        except ValueError:
            errors = {"version": "the case version the form was opened at"}
        except store.VersionConflict as conflict:
            errors = {"version": str(conflict)}
    return render_form(
        request,
        actor,
        case=case,
        status_code=422,
        document=document,
        values=values,
        label=label,
        board_date=board_date,
        errors=errors,
        advanced_json=text,
    )


@router.get("/api/lab-plausibility", summary="Whether a lab value is plausible in its unit (the form's check)")
def lab_plausibility(
    actor: ApiReader,
    analyte: Annotated[str, Query(max_length=20)],
    value: Annotated[float, Query(allow_inf_nan=False)],
    unit: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    if analyte not in PLAUSIBLE:
        raise InputError("analyte", f"one of {sorted(PLAUSIBLE)}", analyte)
    if analyte != "inr":
        try:
            unit = units.normalise_unit(analyte, unit)
        except ValueError as error:
            raise InputError("unit", str(error), unit) from None
    return {"schema_version": 1, "analyte": analyte, "warning": plausibility_warning(analyte, value, unit)}
