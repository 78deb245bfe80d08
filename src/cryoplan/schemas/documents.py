"""Pydantic models of the JSON documents cryoplan writes, the source of their published JSON Schemas.

Every model forbids fields it does not name, so validating a real output against it (as the tests do)
fails on any key the schema does not describe.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cryoplan.schemas.base import Document


class ChildPughDocument(Document):
    """Child-Pugh points (5-15), class, label (class and points) and each component's points."""

    points: int = Field(ge=5, le=15)
    child_class: Literal["A", "B", "C"] = Field(alias="class")
    label: str
    components: dict[str, int]


class AlbiDocument(Document):
    score: float
    grade: Literal[1, 2, 3]


class MeldDocument(Document):
    meld: int | None
    meld_na: int | None
    meld_3: int | None
    note: str | None


class BclcDocument(Document):
    stage: Literal["0", "A", "B", "C", "D"] | None
    burden_stage: Literal["0", "A", "B", "C", "D"] | None
    liver_function_preserved: bool | None
    reason: str


class TransplantDocument(Document):
    milan: bool | None
    ucsf: bool | None
    up_to_seven: bool | None


class CriterionDocument(Document):
    id: str
    value: float | int | str | None
    unit: str | None
    status: Literal["preferred", "conditional", "review", "contraindicated", "unknown", "not_applicable"]
    note: str
    source: str


class RecommendationDocument(Document):
    id: str
    text: str
    reason: str
    source: str


class AssessmentDocument(Document):
    """One case's assessment (``cryoplan assess --format json`` writes an array of them)."""

    schema_version: Literal[1]
    case_id: str | None
    diagnosis: str
    child_pugh: ChildPughDocument | None
    albi: AlbiDocument | None
    meld: MeldDocument
    bclc: BclcDocument | None = Field(description="HCC only; null for metastases")
    transplant: TransplantDocument | None = Field(description="HCC only; null for metastases")
    total_tumour_volume_ml: float | None
    criteria: list[CriterionDocument]
    verdict: Literal["suitable", "suitable_with_conditions", "mdt_review", "not_recommended"]
    recommendations: list[RecommendationDocument]
    missing_inputs: list[str]
    unused_fhir_observations: list[str]
    imaging_flags: list[str]
    input_notes: list[str]


class BatchRow(Document):
    """One case of a batch: its file, what was run, the outcome, and the outputs or the error."""

    case: str = Field(description="the case file as given")
    case_id: str | None
    task: Literal["assess", "plan"]
    status: Literal["ok", "error"]
    verdict: Literal["suitable", "suitable_with_conditions", "mdt_review", "not_recommended"] | None
    outputs: list[str] = Field(description="files written, relative to the output folder")
    error: str | None
    elapsed_s: float = Field(ge=0)
    worker: str | None = Field(description="address of the Dask worker that ran the case")


class BatchSummary(Document):
    """summary.json of ``cryoplan batch``."""

    schema_version: Literal[1]
    cryoplan_version: str
    scheduler: str = Field(description="the Dask scheduler's address")
    cases: list[BatchRow]
    ok_count: int = Field(ge=0)
    error_count: int = Field(ge=0)


class ProbeCalibration(Document):
    data: str = Field(description="what the family's cooling was calibrated against")


class ProbeRow(Document):
    """One cryoprobe type of the library: geometry and the family's calibrated cooling."""

    id: str
    family: str
    diameter_mm: float = Field(gt=0)
    active_length_mm: float = Field(gt=0)
    tip_offset_mm: float = Field(ge=0)
    working_length_mm: float = Field(gt=0)
    description: str
    source: str
    cryogen_temperature_c: float
    heat_transfer_w_m2k: float = Field(ge=0)
    heat_transfer_sd_w_m2k: float = Field(ge=0)
    proximal_cooled_length_mm: float = Field(ge=0)  # shaft behind the active zone cooled by the returning gas
    proximal_cooled_length_sd_mm: float = Field(ge=0)
    calibration: ProbeCalibration


class ProbesDocument(Document):
    """``cryoplan probes --format json``: the probe library."""

    schema_version: Literal[1]
    probes: list[ProbeRow]
