"""One joint calibration of the probe cooling and the media's heat loads against published ice sizes.

``python -m cryoplan.thermal.calibration`` simulates every row of ``data/measurements.yaml`` (published
phantom, animal and human ice-ball and isotherm sizes) and fits, all at once, the parameters they share:

- ``heat_transfer_w_m2k``: the argon family's surface-to-cryogen heat-transfer coefficient h (probes.py);
- ``proximal_cooled_length_mm``: the length of shaft behind the active zone that the family's returning gas
  cools (probes.py);
- ``agar_heat_load_w_m3k``: the heat load of the heat-loaded agar phantom, a Pennes-like term W (T_bath − T)
  that holds the agar at its bath temperature as perfusion holds tissue at the arterial one;
- ``liver_perfusion_1_s``, ``lung_perfusion_1_s``, ``kidney_perfusion_1_s``: in vivo perfusion ω_b.

The fit is weighted least squares on log parameters: each row's residual divided by its stated spread
(sd_mm, or max(2 mm, 10 %) where the source gives none), a one-sided residual for upper bounds, plus a weak
log-normal prior per parameter centred on the literature value (`Parameter`), which bounds what a parameter
no row constrains does and keeps each within its published range. Kidney's prior is on its ratio to liver's
perfusion (about four times: Cardiovasc Intervent Radiol 2018;41:1089; 4.4 times in the IT'IS database), so
that a kidney row left out is predicted from the liver's perfusion rather than from a tabulated organ blood
flow. A row whose source leaves the probe, spacing or count unstated lists setups; each group of rows from
one experiment takes the setup that fits it best (a profile over the unstated choice), and the report
names it. The Levenberg–Marquardt steps use
forward-difference Jacobians of the simulations. Parameter uncertainty: the Gauss–Newton covariance
(JᵀJ)⁻¹, scaled by the reduced χ² when that exceeds 1 (the model misfits more than the rows' spread).

Grid: 2 mm (`CALIBRATION_GRID_MM`), 30 mm around the active zones: with the sub-grid probe model the 0, −20
and −40 °C widths of a 2.4 mm probe in liver agree within 1 mm with a 1 mm grid's
(tests/validation/test_probe_physics.py), at an eighth of the voxels. A full calibration is about 700
simulations (10 minutes on two shared cores). The fitted values, their uncertainty and the validation
summary are written to ``data/calibration.yaml``; `parameter_distribution` hands them to Monte Carlo
analyses.

Validation (`validate`): every row at the fitted parameters, its residual, mean and maximum absolute error
per category, and the leave-one-source-out error: the fit redone without a source's rows (one Gauss–Newton
step from the joint fit on the remaining rows' Jacobian, a linearised refit) and that source's rows then
simulated at the refitted parameters, with its experiment's setup (the unstated choices, and the phantom's
heat load) still chosen by its own rows.

References
----------
K. Levenberg, Q Appl Math 1944;2:164; D. W. Marquardt, J SIAM 1963;11:431 (damped least squares).
P. A. Hasgall, et al., IT'IS Database for thermal and electromagnetic parameters of biological tissues,
version 4.1, 2022, doi:10.13099/VIP21000-04-1 (the perfusion priors).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike

from cryoplan.errors import InputError
from cryoplan.output import write_text
from cryoplan.thermal import probes as probe_library
from cryoplan.thermal.chart import PROBE_AXIS, chart_grid, probe_layout
from cryoplan.thermal.probes import ProbePlacement, family_parameters
from cryoplan.thermal.protocol import parse_protocol
from cryoplan.thermal.result import ThermalResult
from cryoplan.thermal.solver import simulate
from cryoplan.thermal.tissue import BASELINE_LIVER, TISSUES, Tissue, ml_min_kg_to_1_s
from cryoplan.thermal.vessel import Vessel

CALIBRATION_GRID_MM = 2.0
CALIBRATION_MARGIN_MM = 30.0
DEFAULT_SD_MM = 2.0
DEFAULT_SD_FRACTION = 0.10
CORE_SPACINGS_MM = (12.0, 16.0, 20.0, 24.0, 28.0)
JACOBIAN_STEP = 0.1
"""Forward-difference step in log parameter (a 10.5 % change)."""
CATEGORIES = ("phantom", "animal", "human")
TARGET_CATEGORIES = ("phantom", "animal")
TARGET_MEAN_MM = 3.0
TARGET_MAX_MM = 6.0
"""The leave-one-source-out error aimed at on phantom and animal rows: near the best published multi-probe
gel validation (< 2.3 mm mean, < 4.1 mm maximum: Int J Hyperthermia 2020;37:1268)."""
EXCLUDED_ROWS: dict[str, str] = {}
"""Rows left out of the fit and the validation, with the reason (none are)."""


@dataclass(frozen=True)
class Parameter:
    """A fitted parameter: its range, and the weak log-normal prior (centre, sd of the natural log).

    With `prior_relative_to`, the prior is on the ratio to that parameter (`prior` is the ratio): what the
    literature states about a medium no other source measures may be its perfusion relative to another's.
    An `experiment_setup` parameter describes one experiment's apparatus rather than physics the sources
    share (a phantom's heat load, set by its bath and heater): like an unstated spacing, it is chosen by that
    experiment's own rows, also when its source is left out (`refit_without`).
    """

    name: str
    lower: float
    upper: float
    prior: float
    prior_log_sd: float
    unit: str
    about: str
    prior_relative_to: str | None = None
    experiment_setup: bool = False


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("heat_transfer_w_m2k", 300.0, 30000.0, 3000.0, math.log(10.0), "W/m²·K", "argon probes: h"),
    # Not stated by the sources: a few millimetres of shaft behind the expansion chamber (1 … 20 mm).
    Parameter(
        "proximal_cooled_length_mm", 1.0, 20.0, 5.0, math.log(3.0), "mm", "argon probes: cooled shaft behind the zone"
    ),
    # Only Littrup's heat-loaded agar: the load its warm bath puts on the phantom, part of that experiment's setup.
    Parameter(
        "agar_heat_load_w_m3k",
        100.0,
        3.0e5,
        3000.0,
        math.log(30.0),
        "W/m³·K",
        "heat-loaded agar: W",
        experiment_setup=True,
    ),
    # Liver: the modelling baseline 5e-4 1/s to beyond the IT'IS organ blood flow (tissue.ITIS_LIVER_PERFUSION_1_S).
    Parameter("liver_perfusion_1_s", 3.0e-4, 2.0e-2, 3.0e-3, math.log(10.0) / 2, "1/s", "in vivo liver: ω_b"),
    Parameter("lung_perfusion_1_s", 1.0e-4, 1.0e-2, ml_min_kg_to_1_s(401.0, 394.0), math.log(10.0) / 2, "1/s", "lung"),
    # Kidney: about four times the liver's perfusion (CVIR 2018; IT'IS 3795 vs 860 ml/min/kg, 4.4 times), a
    # ratio that holds whatever the effective perfusion of either is.
    Parameter("kidney_perfusion_1_s", 2.0e-3, 8.0e-2, 4.0, math.log(2.0), "1/s", "kidney", "liver_perfusion_1_s"),
)
NAMES = tuple(p.name for p in PARAMETERS)
PROBE_PARAMETERS = ("heat_transfer_w_m2k", "proximal_cooled_length_mm")
"""Parameters of the probe family: they act on every row."""
MEDIUM_PARAMETER = {
    "agar": "agar_heat_load_w_m3k",
    "liver": "liver_perfusion_1_s",
    "lung": "lung_perfusion_1_s",
    "kidney": "kidney_perfusion_1_s",
}


@dataclass(frozen=True)
class Row:
    """One published figure (data/measurements.yaml) and what its simulation assumes."""

    id: str
    source: str
    reference: str
    category: str
    medium: str
    baseline_c: float
    protocol: str
    setups: tuple[dict[str, Any], ...]
    quantity: str
    isotherm_c: float
    value_mm: float
    sd_mm: float
    bound: str | None
    offset_mm: float
    all_setups: bool
    target_radius_mm: float
    measured: str
    assumed: str

    @property
    def group(self) -> str:
        """Rows of one experiment (same source, protocol and setups) share the setup chosen for them."""
        return json.dumps([self.source, self.protocol, self.setups], sort_keys=True)


def load_rows() -> list[Row]:
    """The measurement rows shipped with the package."""
    text = resources.files("cryoplan.thermal").joinpath("data/measurements.yaml").read_text(encoding="utf-8")
    rows = []
    for entry in yaml.safe_load(text):
        value = float(entry["value_mm"])
        sd = entry.get("sd_mm")
        rows.append(
            Row(
                id=entry["id"],
                source=entry["source"],
                reference=entry["reference"],
                category=entry["category"],
                medium=entry["medium"],
                baseline_c=float(entry["baseline_c"]),
                protocol=entry["protocol"],
                setups=tuple(entry["setups"]),
                quantity=entry["quantity"],
                isotherm_c=float(entry["isotherm_c"]),
                value_mm=value,
                sd_mm=float(sd) if sd is not None else max(DEFAULT_SD_MM, DEFAULT_SD_FRACTION * abs(value)),
                bound=entry.get("bound"),
                offset_mm=float(entry.get("offset_mm", 0.0)),
                all_setups=bool(entry.get("all_setups", False)),
                target_radius_mm=float(entry.get("target_radius_mm", 0.0)),
                measured=entry.get("measured", ""),
                assumed=entry.get("assumed", ""),
            )
        )
    return rows


def medium_for(name: str, baseline_c: float, params: Mapping[str, float]) -> Tissue:
    """The simulated medium of a row: the library's properties with the fitted heat load or perfusion."""
    if name == "gel":
        return TISSUES["gel"].replace(arterial_temperature_c=baseline_c)
    if name == "agar":
        gel = TISSUES["gel"]
        return gel.replace(
            name="agar",
            perfusion_1_s=params["agar_heat_load_w_m3k"] / gel.blood_heat_capacity_j_m3k,
            arterial_temperature_c=baseline_c,
        )
    if name == "liver":
        base = BASELINE_LIVER
    elif name in ("lung", "kidney"):
        base = TISSUES[name]
    else:
        raise InputError("medium", "gel, agar, liver, lung or kidney", name)
    return base.replace(perfusion_1_s=params[MEDIUM_PARAMETER[name]], arterial_temperature_c=baseline_c)


def _placements(setup: Mapping[str, Any], spacing_mm: float | None = None) -> list[ProbePlacement]:
    count = int(setup.get("count", 1))
    spacing = float(spacing_mm if spacing_mm is not None else setup.get("spacing_mm", 15.0))
    layout = {3: "triangle", 4: "square"}.get(count, "line")
    flow = float(setup.get("flow_fraction", 1.0))
    return [replace(p, flow_fraction=flow) for p in probe_layout(setup["probe"], count, spacing, layout)]


def _rays(result: ThermalResult, temperature: float, origin: ArrayLike, direction: ArrayLike) -> float:
    return result.isotherm_distance_mm(temperature, origin, np.asarray(direction, dtype=float), which="min")


def _width(result: ThermalResult, placements: Sequence[ProbePlacement], temperature: float) -> float:
    """Largest extent across the probes through the middle of their active zones; one probe: the mean
    diameter over four directions."""
    mids = np.array([np.mean(p.active_segment_mm(), axis=0) for p in placements])
    spans = []
    for axis in (0, 1):
        unit = np.eye(3)[axis]
        hi = max(m[axis] + _rays(result, temperature, m, unit) for m in mids)
        lo = min(m[axis] - _rays(result, temperature, m, -unit) for m in mids)
        spans.append(hi - lo)
    return float(np.mean(spans)) if len(placements) == 1 else float(max(spans))


def _reach(result: ThermalResult, placements: Sequence[ProbePlacement], temperature: float) -> float:
    """How far the isotherm reaches beyond the outermost probe, mean of the four directions across the probes
    (one probe: the isotherm's radius)."""
    mids = np.array([np.mean(p.active_segment_mm(), axis=0) for p in placements])
    reaches = []
    for axis in (0, 1):
        for sign in (1.0, -1.0):
            unit = sign * np.eye(3)[axis]
            outermost = mids[np.argmax(mids @ unit)]
            reaches.append(_rays(result, temperature, outermost, unit))
    return float(np.mean(reaches))


def _length(result: ThermalResult, placements: Sequence[ProbePlacement], temperature: float) -> float:
    mids = [np.mean(p.active_segment_mm(), axis=0) for p in placements]
    return float(
        max(_rays(result, temperature, m, PROBE_AXIS) + _rays(result, temperature, m, -PROBE_AXIS) for m in mids)
    )


class Simulator:
    """Simulates rows' setups, caching each simulation by its setup and the parameters that act on it."""

    def __init__(self, grid_mm: float = CALIBRATION_GRID_MM, progress: Callable[[str], None] | None = None):
        self.grid_mm = grid_mm
        self.progress = progress
        self.cache: dict[str, tuple[ThermalResult, list[ProbePlacement]]] = {}
        self.runs = 0

    def _simulate(
        self, row: Row, setup: Mapping[str, Any], params: Mapping[str, float], spacing: float | None = None
    ) -> tuple[ThermalResult, list[ProbePlacement]]:
        relevant = {"h": round(params["heat_transfer_w_m2k"], 6), "p": round(params["proximal_cooled_length_mm"], 6)}
        if row.medium in MEDIUM_PARAMETER:
            relevant["m"] = float(f"{params[MEDIUM_PARAMETER[row.medium]]:.6g}")
        key = json.dumps([row.medium, row.baseline_c, row.protocol, setup, spacing, relevant], sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        with family_parameters("argon", **{name: params[name] for name in PROBE_PARAMETERS}):
            placements = _placements(setup, spacing)
            medium = medium_for(row.medium, row.baseline_c, params)
            protocol = parse_protocol(setup.get("protocol", row.protocol))  # a duration the source leaves open
            grid = chart_grid(placements, medium, protocol, self.grid_mm, margin_mm=CALIBRATION_MARGIN_MM)
            vessels: list[Vessel] = []
            if "vessel_mm" in setup:
                offset, diameter = setup["vessel_mm"]
                middle = np.mean(placements[0].active_segment_mm(), axis=0)
                vessels = [Vessel.cylinder(grid, middle + [offset, 0.0, 0.0], PROBE_AXIS, diameter)]
            result = simulate(
                grid,
                placements,
                protocol,
                tissues=medium,
                vessels=vessels,
                isotherms_c=(0.0,),
                initial_temp_c=row.baseline_c if medium.perfusion_w_m3k == 0 else None,
            )
        self.runs += 1
        if self.progress is not None:
            self.progress(f"{row.id} {setup} {relevant}")
        self.cache[key] = (result, placements)
        return result, placements

    def figure(self, row: Row, setup: Mapping[str, Any], params: Mapping[str, float]) -> float:
        """The simulated figure of `row` (mm) for one setup, offset included."""
        q, t = row.quantity, row.isotherm_c
        if q == "core_spacing":
            # Largest spacing at which the point midway between the needles still reaches the isotherm.
            mid_t = []
            for spacing in CORE_SPACINGS_MM:
                result, placements = self._simulate(row, setup, params, spacing)
                middle = np.mean([np.mean(p.active_segment_mm(), axis=0) for p in placements], axis=0)
                mid_t.append(float(result.temperature_along_c(middle[None], which="min")[0]))
            return float(np.interp(t, mid_t, CORE_SPACINGS_MM)) + row.offset_mm  # mid_t rises with spacing
        result, placements = self._simulate(row, setup, params)
        middle = np.mean(placements[0].active_segment_mm(), axis=0)
        if q == "width":
            value = _width(result, placements, t)
        elif q == "length":
            value = _length(result, placements, t)
        elif q == "radius":
            value = _reach(result, placements, t)
        elif q == "gap":
            value = 0.5 * (_width(result, placements, 0.0) - _width(result, placements, t))
        elif q == "margin":
            value = _width(result, placements, t) / 2.0 - row.target_radius_mm
        elif q == "vessel_rim":
            offset, diameter = setup["vessel_mm"]
            value = max(0.0, offset - 0.5 * diameter - _rays(result, t, middle, [1.0, 0.0, 0.0]))
        else:
            raise InputError(f"measurements.{row.id}.quantity", "a known quantity", q)
        return float(value) + row.offset_mm


def residual(row: Row, simulated_mm: float) -> float:
    """Weighted residual; an upper bound counts only when exceeded."""
    difference = simulated_mm - row.value_mm
    if row.bound == "upper":
        difference = max(0.0, difference)
    return difference / row.sd_mm


def evaluate(
    simulator: Simulator, rows: Sequence[Row], params: Mapping[str, float], choices: Mapping[str, int] | None = None
) -> tuple[np.ndarray, dict[str, int], dict[str, float]]:
    """Weighted residuals of `rows`, the setup chosen per experiment group (the best fit unless `choices`
    fixes it), and the simulated figure per row id."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    chosen: dict[str, int] = {}
    figures: dict[str, float] = {}
    for key, members in groups.items():
        setups = members[0].setups
        if members[0].all_setups:
            for row in members:
                values = [simulator.figure(row, s, params) for s in setups]
                figures[row.id] = max(values, key=lambda v: abs(residual(row, v)))
            chosen[key] = -1
            continue
        options = range(len(setups)) if choices is None or key not in choices else [choices[key]]
        best: tuple[float, int, dict[str, float]] | None = None
        for option in options:
            by_id = {row.id: simulator.figure(row, setups[option], params) for row in members}
            cost = sum(residual(row, by_id[row.id]) ** 2 for row in members)
            if best is None or cost < best[0]:
                best = (cost, option, by_id)
        assert best is not None, "every experiment lists at least one setup"
        chosen[key] = best[1]
        figures.update(best[2])
    return np.array([residual(row, figures[row.id]) for row in rows]), chosen, figures


def _as_params(z: np.ndarray) -> dict[str, float]:
    return {name: float(math.exp(v)) for name, v in zip(NAMES, z)}


def _prior_jacobian() -> np.ndarray:
    """The priors are linear in the log parameters: residuals `_prior_jacobian() @ z − offset`."""
    matrix = np.zeros((len(PARAMETERS), len(PARAMETERS)))
    for n, p in enumerate(PARAMETERS):
        matrix[n, n] = 1.0 / p.prior_log_sd
        if p.prior_relative_to is not None:
            matrix[n, NAMES.index(p.prior_relative_to)] = -1.0 / p.prior_log_sd
    return matrix


def _prior_residuals(z: np.ndarray) -> np.ndarray:
    offset = np.array([math.log(p.prior) / p.prior_log_sd for p in PARAMETERS])
    residuals: np.ndarray = _prior_jacobian() @ z - offset
    return residuals


def _start(start: Mapping[str, float] | None) -> np.ndarray:
    """Log parameters to start from: `start`'s values, else the prior centres (relative ones applied)."""
    values: dict[str, float] = {}
    for p in PARAMETERS:
        prior = p.prior * values[p.prior_relative_to] if p.prior_relative_to else p.prior
        values[p.name] = float(np.clip((start or {}).get(p.name, prior), p.lower, p.upper))
    return np.log([values[name] for name in NAMES])


def _bounds() -> tuple[np.ndarray, np.ndarray]:
    return np.log([p.lower for p in PARAMETERS]), np.log([p.upper for p in PARAMETERS])


def jacobian(
    simulator: Simulator, rows: Sequence[Row], z: np.ndarray, base: np.ndarray, choices: Mapping[str, int]
) -> np.ndarray:
    """d residual / d log parameter by forward differences, setups held at `choices`."""
    columns = []
    for n in range(len(z)):
        step = z.copy()
        step[n] += JACOBIAN_STEP
        affected = [
            i
            for i, row in enumerate(rows)
            if NAMES[n] in PROBE_PARAMETERS or MEDIUM_PARAMETER.get(row.medium) == NAMES[n]
        ]
        column = np.zeros(len(rows))
        if affected:
            shifted, _, _ = evaluate(simulator, [rows[i] for i in affected], _as_params(step), choices)
            column[affected] = (shifted - base[affected]) / JACOBIAN_STEP
        columns.append(column)
    return np.stack(columns, axis=1)


def fit(
    simulator: Simulator, rows: Sequence[Row], start: Mapping[str, float] | None = None, max_iterations: int = 6
) -> dict[str, Any]:
    """Levenberg–Marquardt on log parameters with the priors; returns the fitted point and its covariance."""
    lo, hi = _bounds()
    z = _start(start)
    r, choices, figures = evaluate(simulator, rows, _as_params(z))
    damping = 1e-2
    history = []
    for _ in range(max_iterations):
        J = jacobian(simulator, rows, z, r, choices)
        full_r = np.concatenate([r, _prior_residuals(z)])
        full_J = np.vstack([J, _prior_jacobian()])
        normal = full_J.T @ full_J
        gradient = full_J.T @ full_r
        improved = False
        while damping < 1e6:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), -gradient)
            trial = np.clip(z + step, lo, hi)
            r_trial, choices_trial, figures_trial = evaluate(simulator, rows, _as_params(trial))
            cost = float(full_r @ full_r)
            trial_cost = float(np.sum(r_trial**2) + np.sum(_prior_residuals(trial) ** 2))
            if trial_cost < cost:
                z, r, choices, figures = trial, r_trial, choices_trial, figures_trial
                damping = max(damping / 3.0, 1e-4)
                improved = True
                history.append(trial_cost)
                break
            damping *= 4.0
        if not improved or np.max(np.abs(step)) < 0.02:
            break
    J = jacobian(simulator, rows, z, r, choices)
    full_J = np.vstack([J, _prior_jacobian()])
    dof = max(1, len(rows) - len(PARAMETERS))
    chi2 = float(np.sum(r**2))
    scale = max(1.0, chi2 / dof)
    covariance = np.linalg.inv(full_J.T @ full_J) * scale
    return {
        "z": z,
        "residuals": r,
        "jacobian": J,
        "choices": choices,
        "figures": figures,
        "covariance_log": covariance,
        "chi2": chi2,
        "chi2_scale": scale,
        "history": history,
    }


def refit_without(source: str, rows: Sequence[Row], fitted: Mapping[str, Any]) -> dict[str, float]:
    """The parameters fitted without `source`'s rows: one Gauss–Newton step from the joint fit on the
    remaining rows' Jacobian (a linearised refit). Experiment-setup parameters keep their joint-fit values:
    they describe an experiment's apparatus, which only its own rows can tell (`Parameter`)."""
    z, r, J = fitted["z"], fitted["residuals"], fitted["jacobian"]
    keep = np.array([row.source != source for row in rows])
    full_J = np.vstack([J[keep], _prior_jacobian()])
    full_r = np.concatenate([r[keep], _prior_residuals(z)])
    step = np.linalg.solve(full_J.T @ full_J, -full_J.T @ full_r)
    step[[p.experiment_setup for p in PARAMETERS]] = 0.0
    lo, hi = _bounds()
    return _as_params(np.clip(z + step, lo, hi))


def leave_one_source_out(simulator: Simulator, rows: Sequence[Row], fitted: Mapping[str, Any]) -> dict[str, float]:
    """Per row id, the figure predicted by a fit without its source's rows (`refit_without`, then simulated)."""
    predicted = {}
    for source in sorted({row.source for row in rows}):
        held_out = [row for row in rows if row.source == source]
        _, _, figures = evaluate(simulator, held_out, refit_without(source, rows, fitted))
        predicted.update(figures)
    return predicted


def _summary(rows: Sequence[Row], figures: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Mean and maximum absolute error (mm) per category, over rows that are not met bounds."""
    summary = {}
    for category in CATEGORIES:
        errors = [abs(residual(row, figures[row.id]) * row.sd_mm) for row in rows if row.category == category]
        if errors:
            summary[category] = {
                "rows": len(errors),
                "mean_abs_error_mm": round(float(np.mean(errors)), 2),
                "max_abs_error_mm": round(float(np.max(errors)), 2),
            }
    return summary


def target_check(rows: Sequence[Row], predicted: Mapping[str, float]) -> dict[str, Any]:
    """The leave-one-source-out error on the phantom and animal rows against `TARGET_MEAN_MM` and
    `TARGET_MAX_MM`, with the rows that miss the maximum (largest first)."""
    chosen = [row for row in rows if row.category in TARGET_CATEGORIES]
    errors = {row.id: abs(residual(row, predicted[row.id]) * row.sd_mm) for row in chosen}
    mean, largest = float(np.mean(list(errors.values()))), float(np.max(list(errors.values())))
    return {
        "categories": list(TARGET_CATEGORIES),
        "rows": len(chosen),
        "mean_abs_error_mm": round(mean, 2),
        "max_abs_error_mm": round(largest, 2),
        "target_mean_mm": TARGET_MEAN_MM,
        "target_max_mm": TARGET_MAX_MM,
        "mean_missed_by_mm": round(max(0.0, mean - TARGET_MEAN_MM), 2),
        "max_missed_by_mm": round(max(0.0, largest - TARGET_MAX_MM), 2),
        "met": mean <= TARGET_MEAN_MM and largest <= TARGET_MAX_MM,
        "rows_over_max": [
            {"id": key, "abs_error_mm": round(value, 2)}
            for key, value in sorted(errors.items(), key=lambda item: -item[1])
            if value > TARGET_MAX_MM
        ],
    }


def validation_document(
    simulator: Simulator, rows: Sequence[Row], fitted: Mapping[str, Any], predicted: Mapping[str, float]
) -> dict[str, Any]:
    """The `cryoplan validate` document: per row measured, simulated, residual and leave-one-source-out."""
    groups = {row.group: row for row in rows}
    table = []
    for row in rows:
        choice = fitted["choices"][row.group]
        simulated = fitted["figures"][row.id]
        table.append(
            {
                "id": row.id,
                "source": row.source,
                "category": row.category,
                "medium": row.medium,
                "quantity": row.quantity,
                "isotherm_c": row.isotherm_c,
                "measured_mm": row.value_mm,
                "sd_mm": round(row.sd_mm, 2),
                "bound": row.bound,
                "simulated_mm": round(simulated, 2),
                "residual_mm": round(residual(row, simulated) * row.sd_mm, 2),
                "loso_simulated_mm": round(predicted[row.id], 2),
                "loso_residual_mm": round(residual(row, predicted[row.id]) * row.sd_mm, 2),
                "setup": "all listed" if choice < 0 else groups[row.group].setups[choice],
                "assumed": row.assumed,
            }
        )
    return {
        "schema_version": 1,
        "grid_mm": simulator.grid_mm,
        "parameters": _parameter_entries(fitted),
        "rows": table,
        "fit_error": _summary(rows, fitted["figures"]),
        "leave_one_source_out_error": _summary(rows, predicted),
        "target": target_check(rows, predicted),
        "excluded_rows": dict(EXCLUDED_ROWS),
        "chi2": round(fitted["chi2"], 2),
        "simulations": simulator.runs,
    }


def _parameter_entries(fitted: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    z, cov = fitted["z"], fitted["covariance_log"]
    entries = {}
    for n, p in enumerate(PARAMETERS):
        log_sd = float(math.sqrt(cov[n, n]))
        value = math.exp(z[n])
        entries[p.name] = {
            "value": float(f"{value:.4g}"),
            "log_sd": round(log_sd, 4),
            "sd": float(f"{value * log_sd:.3g}"),
            "unit": p.unit,
            "range": [p.lower, p.upper],
            "at_bound": bool(np.isclose(z[n], math.log(p.lower)) or np.isclose(z[n], math.log(p.upper))),
        }
    return entries


def current_parameters() -> dict[str, float]:
    """The fitted parameter values in data/calibration.yaml (the priors where none are recorded)."""
    document = _calibration_document()
    fitted = document.get("parameters", {})
    recorded = {name: float(entry["value"]) for name, entry in fitted.items() if name in NAMES}
    return _as_params(_start(recorded))


def _calibration_document() -> dict[str, Any]:
    text = resources.files("cryoplan.thermal").joinpath("data/calibration.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def validated_error_mm() -> dict[str, dict[str, float]]:
    """The model's error against published ice sizes it was not fitted to, by category of source.

    The leave-one-source-out error of the stored calibration (`validate`): for each of ``phantom``,
    ``animal`` and ``human``, the number of rows and the mean and largest absolute error in mm.
    """
    errors: dict[str, dict[str, float]] = _calibration_document()["leave_one_source_out_error"]
    return errors


def parameter_distribution(n_samples: int = 0, seed: int | None = None) -> dict[str, Any]:
    """The calibrated probe and perfusion parameters with their uncertainty, for Monte Carlo analyses.

    Parameters
    ----------
    n_samples : int
        Number of joint samples to draw (0: none).
    seed : int, optional
        Seed of the sampler; required when `n_samples` > 0.

    Returns
    -------
    dict
        ``mean``: parameter → fitted value; ``sd``: parameter → standard deviation (delta method);
        ``log_covariance``: the covariance of the natural logs (order ``names``); ``names``; and, with
        `n_samples`, ``samples``: parameter → array of `n_samples` values drawn log-normally with that
        covariance (the fit was made on log parameters, which keeps samples positive).

    Examples
    --------
    >>> d = parameter_distribution(100, seed=1)
    >>> d["samples"]["liver_perfusion_1_s"].shape
    (100,)
    """
    document = _calibration_document()
    fitted = document.get("parameters")
    if not fitted:
        raise InputError(
            "calibration", "a calibrated data/calibration.yaml (run python -m cryoplan.thermal.calibration)"
        )
    names = list(document["log_covariance"]["names"])
    covariance = np.asarray(document["log_covariance"]["matrix"], dtype=np.float64)
    mean = {name: float(fitted[name]["value"]) for name in names}
    out: dict[str, Any] = {
        "names": names,
        "mean": mean,
        "sd": {name: float(fitted[name]["sd"]) for name in names},
        "log_covariance": covariance,
    }
    if n_samples:
        if seed is None:
            raise InputError("seed", "a seed for the parameter sampler", seed)
        if not isinstance(n_samples, int) or n_samples < 0:
            raise InputError("n_samples", "a non-negative number of samples", n_samples)
        rng = np.random.default_rng(seed)
        logs = rng.multivariate_normal(np.log([mean[n] for n in names]), covariance, size=n_samples)
        out["samples"] = {name: np.exp(logs[:, k]) for k, name in enumerate(names)}
    return out


def draw_parameters(rng: np.random.Generator) -> dict[str, float]:
    """One joint draw of the calibrated parameters (log-normal with the fitted covariance), from `rng`: for a
    Monte Carlo sample that already holds its own generator. Apply the probe family's with
    `cryoplan.thermal.probes.family_parameters` and the media's to their tissues.

    Examples
    --------
    >>> draw = draw_parameters(np.random.default_rng(3))
    >>> sorted(draw) == sorted(NAMES)
    True
    """
    distribution = parameter_distribution()
    names = distribution["names"]
    logs = rng.multivariate_normal(np.log([distribution["mean"][n] for n in names]), distribution["log_covariance"])
    return {name: float(np.exp(value)) for name, value in zip(names, logs)}


def profiles(
    simulator: Simulator, rows: Sequence[Row], params: Mapping[str, float], choices: Mapping[str, int]
) -> dict[str, Any]:
    """Per experiment group, the minimum temperature along the line from the first probe's active-zone middle
    outwards (perpendicular to the probes): what the isotherm figures are read from."""
    out = {}
    distances = np.arange(0.0, CALIBRATION_MARGIN_MM, 0.5)
    for row in rows:
        if row.group in out or row.quantity == "core_spacing":
            continue
        choice = max(choices[row.group], 0)
        result, placements = simulator._simulate(row, row.setups[choice], params)
        middle = np.mean(placements[0].active_segment_mm(), axis=0)
        outward = np.array([1.0, 0.0, 0.0]) if len(placements) == 1 else np.array([0.0, 1.0, 0.0])
        temperature = result.temperature_along_c(middle + distances[:, None] * outward, which="min")
        out[row.group] = {
            "rows": [r.id for r in rows if r.group == row.group],
            "label": f"{', '.join(r.id for r in rows if r.group == row.group)} ({row.source}): {row.medium}, "
            f"{row.protocol}, {row.setups[choice]}",
            "distance_mm": distances,
            "temperature_c": temperature,
        }
    return out


def validate(
    grid_mm: float = CALIBRATION_GRID_MM, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate every row at the calibrated parameters (data/calibration.yaml), with the leave-one-source-out
    predictions; returns the `cryoplan validate` document and the isotherm profiles (`profiles`)."""
    if not (math.isfinite(grid_mm) and 0.5 <= grid_mm <= 3.0):
        raise InputError("--grid-mm", "a grid spacing between 0.5 and 3 mm", grid_mm)
    rows = load_rows()
    simulator = Simulator(grid_mm, progress)
    params = current_parameters()
    z = np.log([params[name] for name in NAMES])
    r, choices, figures = evaluate(simulator, rows, params)
    document = _calibration_document()
    covariance = np.asarray(
        document.get("log_covariance", {}).get("matrix", np.diag([p.prior_log_sd**2 for p in PARAMETERS]))
    )
    if covariance.shape != (len(NAMES), len(NAMES)):  # a calibration of other parameters: the priors' spread
        covariance = np.diag([p.prior_log_sd**2 for p in PARAMETERS])
    fitted = {
        "z": z,
        "residuals": r,
        "jacobian": jacobian(simulator, rows, z, r, choices),
        "choices": choices,
        "figures": figures,
        "covariance_log": covariance,
        "chi2": float(np.sum(r**2)),
    }
    predicted = leave_one_source_out(simulator, rows, fitted)
    return validation_document(simulator, rows, fitted, predicted), profiles(simulator, rows, params, choices)


def calibrate(grid_mm: float = CALIBRATION_GRID_MM, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit, validate, and return the calibration document written to data/calibration.yaml."""
    rows = load_rows()
    simulator = Simulator(grid_mm, progress)
    fitted = fit(simulator, rows, start=current_parameters())
    predicted = leave_one_source_out(simulator, rows, fitted)
    validation = validation_document(simulator, rows, fitted, predicted)
    params = _as_params(fitted["z"])
    entries = validation["parameters"]
    return {
        "schema_version": 1,
        "families": [
            {
                "id": "argon",
                "cryogen": "argon",
                "cryogen_temperature_c": probe_library.ARGON_BOILING_C,
                "heat_transfer_w_m2k": entries["heat_transfer_w_m2k"]["value"],
                "heat_transfer_sd_w_m2k": entries["heat_transfer_w_m2k"]["sd"],
                "proximal_cooled_length_mm": entries["proximal_cooled_length_mm"]["value"],
                "proximal_cooled_length_sd_mm": entries["proximal_cooled_length_mm"]["sd"],
                "source": "fitted to data/measurements.yaml by cryoplan.thermal.calibration",
            }
        ],
        "media": {
            name: {"perfusion_1_s": float(f"{params[f'{name}_perfusion_1_s']:.4g}")}
            for name in ("liver", "lung", "kidney")
        }
        | {"agar": {"heat_load_w_m3k": float(f"{params['agar_heat_load_w_m3k']:.4g}")}},
        "parameters": entries,
        "log_covariance": {"names": list(NAMES), "matrix": np.round(fitted["covariance_log"], 6).tolist()},
        "grid_mm": grid_mm,
        "fit_error": validation["fit_error"],
        "leave_one_source_out_error": validation["leave_one_source_out_error"],
        "chi2": validation["chi2"],
        "simulations": simulator.runs,
    }


HEADER = """# Written by `python -m cryoplan.thermal.calibration`: the argon family's cooling, the in vivo perfusion
# and phantom heat load fitted jointly to data/measurements.yaml, with their uncertainty (log_covariance:
# covariance of the natural logs of `parameters`, in that order). Do not edit by hand.
"""


def main() -> None:
    document = calibrate(progress=lambda text: print(f"  simulated {text}", flush=True))
    path = resources.files("cryoplan.thermal").joinpath("data/calibration.yaml")
    write_text(str(path), HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110))
    print(json.dumps({k: document[k] for k in ("parameters", "fit_error", "leave_one_source_out_error")}, indent=1))


if __name__ == "__main__":
    main()
