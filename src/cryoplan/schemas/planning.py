"""Models of the planning documents: plan.json (``cryoplan plan`` and ``cryoplan demo``) and margins.json
(``cryoplan verify``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cryoplan.schemas.base import Document
from cryoplan.schemas.documents import AssessmentDocument
from cryoplan.schemas.imaging import ImageWarningDocument, LesionMeasurementDocument
from cryoplan.schemas.thermal import Category, CategoryError

Point = list[float]
Mm = float | None


class PlanSettingsDocument(Document):
    """The planner's settings the plan was made with."""

    lethal_isotherm_c: float
    margin_mm: float = Field(ge=0)
    success_rule: str = Field(description="when a plan is accepted, in words")
    confidence: float | None = Field(description="probability of success a robust plan must reach; null: nominal")
    robust_samples: int = Field(ge=0, description="most samples of the sequential test (0: not robust)")
    chart_coverage_target_pct: float = Field(ge=0, le=100, description="share the charts' estimate must cover")
    max_probes: int = Field(ge=1)
    probe_types: list[str]
    freeze_minutes: list[float]
    spacing_mm: list[float]
    min_vessel_calibre_mm: float = Field(ge=0)
    critical_temperature_c: float
    paths: Literal["any", "parallel", "converging"]
    entry_radius_mm: float = Field(ge=0)
    grid_mm: float = Field(gt=0)
    position: Literal["supine", "prone", "left_decubitus"]
    clearances_mm: dict[str, float] = Field(description="clearance each path keeps from a structure")
    entries_lps_mm: dict[str, Point] = Field(description="skin entry given per lesion id")


class CrossedTissue(Document):
    structure: str
    length_mm: float = Field(ge=0)


class NearestStructure(Document):
    structure: str
    distance_mm: float = Field(ge=0)
    clearance_mm: float = Field(ge=0)
    probe_radius_mm: float = Field(gt=0)


class PathAngles(Document):
    craniocaudal: float
    mediolateral: float


class ProbePath(Document):
    """A probe's path from the skin: length, angles, approach, tissues crossed and nearest obstacles."""

    length_mm: float = Field(ge=0)
    angles_deg: PathAngles
    approach: Literal["intercostal", "subcostal", "posterior_lateral"]
    intercostal_space: str | None
    crossed: list[CrossedTissue]
    nearest: list[NearestStructure]


class PlannedProbe(Document):
    """One probe: its library type, tip and skin entry in LPS mm, unit direction, and path."""

    type: str
    tip_lps_mm: Point = Field(min_length=3, max_length=3)
    direction: Point = Field(min_length=3, max_length=3)
    entry_lps_mm: Point = Field(min_length=3, max_length=3)
    path_length_mm: float = Field(ge=0)
    path: ProbePath | None


class OrganVolume(Document):
    structure: str
    inside_0c_ml: float = Field(ge=0)
    inside_lethal_ml: float = Field(ge=0)


class OrganDistance(Document):
    structure: str
    to_0c_mm: Mm
    to_lethal_mm: Mm


class OrganExposureDocument(Document):
    """What the ice of a planning unit reaches besides the liver and the tumour."""

    isotherms_c: list[float] = Field(min_length=2, max_length=2)
    volumes_ml: list[OrganVolume]
    distances_mm: list[OrganDistance]
    grid_reach_mm: float = Field(ge=0)
    grid_beyond_image_pct: float = Field(ge=0, le=100)
    simulated_as: dict[str, str] = Field(description="structure → the tissue whose properties it takes")


class ProtocolPhase(Document):
    phase: Literal["freeze", "passive_thaw", "active_thaw", "tract_freeze"]
    minutes: float = Field(gt=0)


class IsothermCoverage(Document):
    isotherm_c: float
    tumour_covered_pct: float = Field(ge=0, le=100)
    margin_covered_pct: float = Field(ge=0, le=100)


class CoverageDocument(Document):
    """How the simulated lethal isotherm covers the tumour and the tumour plus margin."""

    lethal_isotherm_c: float
    margin_met: bool
    margin_tolerance_mm: float = Field(ge=0)
    tumour_covered_pct: float = Field(ge=0, le=100)
    margin_mm: float = Field(ge=0)
    margin_covered_pct: float = Field(ge=0, le=100)
    min_margin_mm: Mm
    mean_margin_mm: Mm
    ice_min_margin_mm: Mm
    ice_mean_margin_mm: Mm
    tumour_warmest_min_temperature_c: float
    by_isotherm: list[IsothermCoverage]


class CriticalStructuresDocument(Document):
    """Coldest temperature reached in each structure a freeze must spare (null when absent)."""

    bile_duct_min_temperature_c: float | None
    vessel_wall_min_temperature_c: float | None
    gallbladder_min_temperature_c: float | None
    bowel_min_temperature_c: float | None


class RiskDocument(Document):
    code: str
    lesion_id: str | None
    detail: str


class SuccessDocument(Document):
    """The sequential test of a plan's probability that every margin is met under the uncertainty model."""

    probability_of_success: float = Field(ge=0, le=1)
    probability_interval_95: list[float] = Field(min_length=2, max_length=2)
    successes: int = Field(ge=0)
    samples: int = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    decision: Literal["robust", "not_robust", "undecided"]
    method: str
    seed: int
    elapsed_s: float = Field(ge=0)


class _Step(Document):
    grid_mm: float = Field(gt=0)
    probes: int = Field(ge=1)
    freeze_minutes: float = Field(gt=0)
    probe_type: str
    margin_covered_pct: float = Field(ge=0, le=100)
    min_margin_mm: Mm
    margin_met: bool
    elapsed_s: float = Field(ge=0)


class SearchStep(_Step):
    """A local search of probe positions on the coarse grid, from one starting layout."""

    stage: Literal["search"]
    simulations: int = Field(ge=0, description="coarse simulations the search ran")
    moves: list[str] = Field(description="the moves it kept, in order")
    goal_mm: float = Field(description="the minimal margin it aimed at")


class CheckStep(_Step):
    """A check of a searched layout by a simulation on the plan's grid."""

    stage: Literal["check"]
    probability_of_success: SuccessDocument | None = Field(None, description="for a robust plan only")


SimulationStep = Annotated[SearchStep | CheckStep, Field(discriminator="stage")]


class CoveredPctSummary(Document):
    median: float
    p05: float
    min: float
    max: float


class UncertaintyDocument(Document):
    """The Monte Carlo analysis of placement and tissue-property uncertainty."""

    samples: int = Field(ge=1)
    seed: int
    tip_sigma_mm: float = Field(ge=0)
    direction_sigma_deg: float = Field(ge=0)
    margin_mm: float = Field(ge=0)
    probability_of_success: float = Field(ge=0, le=1)
    probability_interval_95: list[float] = Field(min_length=2, max_length=2)
    margin_covered_pct: CoveredPctSummary
    scheduler: str
    workers: int = Field(ge=1)
    elapsed_s: float = Field(ge=0)


class PlannedLesion(Document):
    """One lesion's plan: its unit, probes, protocol, simulated coverage, frozen volumes and risks."""

    id: str
    planning_unit: str
    shared_with: list[str] = Field(description="lesions ablated by the same probes")
    imaging: LesionMeasurementDocument | None
    probes: list[PlannedProbe]
    organs: OrganExposureDocument | None
    probe_spacing_mm: float | None
    protocol: list[ProtocolPhase]
    coverage: CoverageDocument
    frozen_volume_ml: Mm
    frozen_liver_ml: Mm
    frozen_liver_fraction: float | None
    critical_structures: CriticalStructuresDocument
    risks: list[RiskDocument]
    simulations: list[SimulationStep] = Field(description="the search's steps and checks, in order")
    simulation_grid_mm: float = Field(gt=0)
    success: SuccessDocument | None = Field(description="a robust plan's probability of success")
    uncertainty: UncertaintyDocument | None


class SessionDocument(Document):
    """One treatment session of a staged plan: its units, lesions, frozen volumes and risks."""

    session: int = Field(ge=1)
    unit_ids: list[str]
    lesion_ids: list[str]
    frozen_volume_ml: float = Field(ge=0)
    frozen_liver_ml: Mm
    frozen_liver_fraction: float | None
    risks: list[RiskDocument]


class FailedExport(Document):
    export: str
    reason: str


class PlanOutputs(Document):
    """The files written, relative to the output folder."""

    plan: Literal["plan.json"]
    min_temperature: str
    report_html: str
    report_pdf: str
    isotherms: list[str]
    failed_exports: list[FailedExport] = Field(description="exports that could not be made, with the reason")
    dicom: list[str]
    slicer: list[str]
    figures: list[str]


class PlanDocument(Document):
    """plan.json of ``cryoplan plan`` and ``cryoplan demo`` (also printed by ``--format json``)."""

    schema_version: Literal[1]
    assessment: AssessmentDocument | None = Field(description="the case's assessment; null for a phantom")
    settings: PlanSettingsDocument
    image_warnings: list[ImageWarningDocument]
    unknown_structures: list[str]
    lesions: list[PlannedLesion]
    sessions: list[SessionDocument]
    liver_volume_ml: float = Field(ge=0)
    frozen_volume_ml: float = Field(ge=0)
    frozen_liver_ml: float = Field(ge=0)
    frozen_liver_fraction: float | None
    notes: list[str]
    model_error_mm: dict[Category, CategoryError] = Field(
        description="the thermal model's leave-one-source-out error by category of source"
    )
    timing_s: dict[str, float]
    cryoplan_version: str
    outputs: PlanOutputs


class RegistrationDocument(Document):
    method: str
    metric: str
    metric_value: float
    correlation: float
    converged: bool
    stop_condition: str


class IceFitDocument(Document):
    """The re-fit of the simulation to the observed ice ball."""

    parameter: str
    value: float
    ice_dice: float = Field(ge=0, le=1)
    simulations: int = Field(ge=0)
    observed_ice_ml: float = Field(ge=0)
    simulated_ice_ml: float = Field(ge=0)
    protocol: str
    grid_mm: float = Field(gt=0)
    vessels: int = Field(ge=0)
    accepted: bool
    failure: str | None


class ShortMargin(Document):
    """A tumour-surface point where the lethal margin falls short, one per side."""

    side: str
    lps_mm: Point = Field(min_length=3, max_length=3)
    lethal_margin_mm: float


class MarginsDocument(Document):
    """margins.json of ``cryoplan verify`` (also printed by ``--format json``)."""

    schema_version: Literal[1]
    registration: RegistrationDocument | None
    margin_mm: float = Field(ge=0)
    margin_tolerance_mm: float | None
    lethal_isotherm_c: float
    lethal_zone_method: Literal["refitted_simulation", "erosion"]
    fit: IceFitDocument | None
    lethal_depth_behind_ice_edge_mm: Mm
    ice_threshold_hu: float | None
    ice_volume_ml: float | None
    ice_min_margin_mm: Mm
    ice_mean_margin_mm: Mm
    lethal_min_margin_mm: Mm
    margin_covered_pct: float | None
    verdict: Literal["adequate", "insufficient", "unverified"]
    reasons: list[str]
    where: list[ShortMargin]
    lethal_depth_source: str | None = Field(description="where the erosion depth came from; null after a re-fit")
