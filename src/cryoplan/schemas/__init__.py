"""JSON Schemas of cryoplan's JSON documents, generated from pydantic models.

`SCHEMAS` names each document; `json_schema(name)` gives its JSON Schema (draft 2020-12, as pydantic writes
it) and `cryoplan schema NAME` prints it. The case file's schema comes from the `cryoplan.case.Case` model
itself; the documents cryoplan writes are described by the models of `cryoplan.schemas.documents` (assessment,
batch, probes), `.planning` (plan, margins), `.imaging` (inspect) and `.thermal` (isotherms, simulation,
validation), which tests validate real outputs against, so a schema cannot drift from what is written.
Every object of a written document refuses keys it does not name (``additionalProperties: false``).

Two outputs follow a schema published by others and are not listed: ``probes.mrk.json`` follows 3D
Slicer's Markups schema (named in its ``@schema`` key), and ``cryoplan assess --format fhir`` writes a
FHIR R4 Bundle (validated with fhir.resources).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from cryoplan.case import Case
from cryoplan.schemas.documents import AssessmentDocument, BatchSummary, ProbesDocument
from cryoplan.schemas.imaging import InspectionDocument
from cryoplan.schemas.planning import MarginsDocument, PlanDocument
from cryoplan.schemas.thermal import IsothermsDocument, SimulationSummary, ValidationDocument

#: Document name → (what it is, the model or type describing it).
SCHEMAS: dict[str, tuple[str, Any]] = {
    "case": ("a case file (YAML or JSON), input of assess, plan and batch", Case),
    "assessment": ("the output of `cryoplan assess --format json`: an array of assessments", list[AssessmentDocument]),
    "batch": ("summary.json of `cryoplan batch`: one row per case", BatchSummary),
    "probes": ("the output of `cryoplan probes --format json`: the probe library", ProbesDocument),
    "plan": ("plan.json of `cryoplan plan` and `cryoplan demo` (and their `--format json`)", PlanDocument),
    "margins": ("margins.json of `cryoplan verify` (and its `--format json`)", MarginsDocument),
    "inspect": ("inspect.json of `cryoplan inspect` (and its `--format json`)", InspectionDocument),
    "isotherms": ("the output of `cryoplan isotherms --format json`: each isotherm's size", IsothermsDocument),
    "simulation": ("summary.json of `cryoplan simulate` (also printed on stdout)", SimulationSummary),
    "validation": ("validation.json of `cryoplan validate` (and its `--format json`)", ValidationDocument),
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the document `name` (a key of `SCHEMAS`), with its title and ``$id``."""
    description, model = SCHEMAS[name]
    schema = model.model_json_schema() if isinstance(model, type) and issubclass(model, BaseModel) else None
    if schema is None:
        schema = TypeAdapter(model).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:cryoplan:schema:{name}",
        "title": f"cryoplan {name}",
        "description": description,
        **schema,
    }
