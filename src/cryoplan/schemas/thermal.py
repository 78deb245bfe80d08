"""Models of the thermal documents: ``cryoplan isotherms``, ``cryoplan simulate`` (summary.json) and
``cryoplan validate`` (validation.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cryoplan.schemas.base import Document

Category = Literal["phantom", "animal", "human"]


class IsothermSize(Document):
    """One isotherm at the end of the protocol: extents along and across the probes, and the enclosed volume."""

    temperature_c: float
    length_mm: float = Field(ge=0, description="along the probe axis")
    width_mm: float = Field(ge=0, description="largest extent perpendicular to the probe axis")
    depth_mm: float = Field(ge=0, description="perpendicular to the probe axis and to the width")
    volume_ml: float = Field(ge=0)


class IsothermsDocument(Document):
    """``cryoplan isotherms --format json``."""

    schema_version: Literal[1]
    isotherms: list[IsothermSize]
    grid_mm: float = Field(gt=0)
    grid_shape: list[int] = Field(min_length=3, max_length=3)
    elapsed_s: float = Field(ge=0)


class SimulationGrid(Document):
    origin_mm: list[float] = Field(min_length=3, max_length=3)
    spacing_mm: float = Field(gt=0)
    shape: list[int] = Field(min_length=3, max_length=3)


class SimulatedProbe(Document):
    probe: str = Field(description="probe id of the library")
    tip_mm: list[float] = Field(min_length=3, max_length=3)
    direction: list[float] = Field(min_length=3, max_length=3)
    flow_fraction: float = Field(ge=0)


class SimulatedIsotherm(Document):
    temperature_c: float
    volume_ml: float = Field(ge=0)
    mask_file: str


class RecordPoint(Document):
    min_temperature_c: float
    final_temperature_c: float


class EnergyLedger(Document):
    """Energy balance of the simulation, J: the enthalpy change of the tissue and each source's heat."""

    enthalpy_change: float
    probes: float
    perfusion: float
    metabolic: float
    boundary: float
    vessels: float


class SimulationSummary(Document):
    """summary.json of ``cryoplan simulate`` (also printed on stdout)."""

    schema_version: Literal[1]
    grid: SimulationGrid
    protocol: str
    probes: list[SimulatedProbe]
    isotherms: list[SimulatedIsotherm]
    record_points: dict[str, RecordPoint]
    energy_j: EnergyLedger
    elapsed_s: float = Field(ge=0)


class FittedParameter(Document):
    """A calibrated parameter with its uncertainty and the range the fit allows."""

    value: float
    log_sd: float = Field(ge=0, description="standard deviation of its natural log")
    sd: float = Field(ge=0)
    unit: str
    range: list[float] = Field(min_length=2, max_length=2)
    at_bound: bool


class MeasurementSetup(Document):
    """How a published measurement was made, as simulated: the probes and what else the source states."""

    probe: str = Field(description="probe id of the library")
    count: int | None = Field(None, ge=1, description="probes (default one)")
    spacing_mm: float | None = Field(None, gt=0, description="distance between neighbouring probes")
    protocol: str | None = Field(None, description="the protocol of this setup, where the source leaves it open")
    flow_fraction: float | None = Field(None, ge=0, description="cryogen flow as a share of the full flow")
    vessel_mm: list[float] | None = Field(
        None, min_length=2, max_length=2, description="a vessel beside the probe: its offset and diameter"
    )


class ValidationRow(Document):
    """One published measurement: measured, simulated at the fit, and predicted with its source left out."""

    id: str
    source: str
    category: Category
    medium: str
    quantity: str
    isotherm_c: float
    measured_mm: float
    sd_mm: float = Field(ge=0)
    bound: Literal["upper"] | None = Field(description="upper: the measured value is an upper bound")
    simulated_mm: float
    residual_mm: float
    loso_simulated_mm: float
    loso_residual_mm: float
    setup: Literal["all listed"] | MeasurementSetup = Field(description='the setup simulated, or "all listed"')
    assumed: str


class CategoryError(Document):
    rows: int = Field(ge=1)
    mean_abs_error_mm: float = Field(ge=0)
    max_abs_error_mm: float = Field(ge=0)


class RowOverMax(Document):
    id: str
    abs_error_mm: float = Field(ge=0)


class TargetCheck(Document):
    """The leave-one-source-out error of the chosen categories against the accuracy target."""

    categories: list[Category]
    rows: int = Field(ge=1)
    mean_abs_error_mm: float = Field(ge=0)
    max_abs_error_mm: float = Field(ge=0)
    target_mean_mm: float = Field(gt=0)
    target_max_mm: float = Field(gt=0)
    mean_missed_by_mm: float = Field(ge=0)
    max_missed_by_mm: float = Field(ge=0)
    met: bool
    rows_over_max: list[RowOverMax] = Field(description="rows whose error exceeds the maximum, largest first")


class ValidationDocument(Document):
    """``cryoplan validate --format json`` and validation.json."""

    schema_version: Literal[1]
    grid_mm: float = Field(gt=0)
    parameters: dict[str, FittedParameter]
    rows: list[ValidationRow]
    fit_error: dict[Category, CategoryError]
    leave_one_source_out_error: dict[Category, CategoryError]
    target: TargetCheck
    excluded_rows: dict[str, str] = Field(description="rows left out of the fit and the validation, with why")
    chi2: float = Field(ge=0)
    simulations: int = Field(ge=0)
