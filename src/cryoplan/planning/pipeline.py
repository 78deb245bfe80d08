"""`plan_case`: from a case (or a phantom) to a simulated, checked freeze plan.

Assessment → imaging → planning units → placement (fast candidates, then full simulations with vessels)
→ coverage → optional uncertainty. Writing the outputs (plan.json, NIfTI, figures, report) is
`cryoplan.report.plan_report.write_plan_outputs`, called by the CLI and the service on the returned plan.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.case import Case
from cryoplan.clinical import CaseRecord, assess_record
from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import Anatomy, anatomy_from_labels, load_anatomy
from cryoplan.imaging.body import field_of_view_warnings
from cryoplan.imaging.case_images import case_with_measured_lesions
from cryoplan.imaging.phantom import Phantom
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy, planning_anatomy
from cryoplan.planning.coverage import Coverage, Risk, margin_met, margin_shell, zone_margin
from cryoplan.planning.local_search import Evaluation, local_search
from cryoplan.planning.organs import OrganExposure, organ_exposure, organ_risks
from cryoplan.planning.paths import (
    NoSafePath,
    PathMap,
    describe_path,
    max_path_mm,
    ranked_directions,
    why_no_path,
)
from cryoplan.planning.robust import PlanUnderTest, SequentialTest, SuccessProbability, success_probability
from cryoplan.planning.search import Candidate, build_target, scored_layouts, thinnest_margin
from cryoplan.planning.sessions import Session, UnitLoad, planning_groups, staged_sessions
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.simulation import SIMULATION_REACH_MM, resample_mask, simulate_plan, unit_coverage
from cryoplan.planning.uncertainty import UncertaintyResult, run_uncertainty
from cryoplan.progress import Progress
from cryoplan.thermal import Grid, ThermalResult, get_probe
from cryoplan.thermal.solver import PREVIEW_SPACING_MM


@dataclass
class UnitPlan:
    """The plan of one planning unit (one lesion, or lesions sharing probes) and its full simulation."""

    unit_id: str
    lesion_ids: list[str]
    candidate: Candidate
    result: ThermalResult
    coverage: Coverage
    lesion_masks: dict[str, np.ndarray]  # on the simulation grid
    margin_masks: dict[str, np.ndarray]
    structures: dict[str, np.ndarray]  # bile_duct, large_vessels, liver on the simulation grid
    history_points: dict[str, list[float]]
    simulations: list[dict[str, Any]] = field(default_factory=list)
    uncertainty: UncertaintyResult | None = None  # `run_uncertainty`, with --uncertainty
    success: SuccessProbability | None = None  # the sequential test of robust planning
    exposure: OrganExposure | None = None  # what the ice reaches besides liver and tumour
    paths: list[dict[str, Any]] = field(default_factory=list)  # per probe, `describe_path`

    @property
    def grid_volume(self) -> Volume:
        return Volume(self.result.min_temperature_c, self.result.grid.affine)


@dataclass
class CasePlan:
    """Everything `cryoplan plan` reports."""

    settings: PlanSettings
    assessment: dict[str, Any] | None
    ct: Volume
    anatomy: PlanningAnatomy
    lesion_measurements: dict[str, dict[str, Any]]
    units: list[UnitPlan]
    timing_s: dict[str, float]
    source_dicom: Path | None = None
    notes: list[str] = field(default_factory=list)
    image_warnings: list[dict[str, Any]] = field(default_factory=list)  # `cryoplan.imaging.body.field_of_view_warnings`
    sessions: list[Session] = field(default_factory=list)  # staged sessions (`cryoplan.planning.sessions`)


def checked_entry(
    path_map: PathMap, lesion_id: str, point: Sequence[float], centre: np.ndarray, reach_mm: float
) -> np.ndarray:
    """A user-given entry point: inside the image, in the air outside the body, within the probes' reach.

    Raises
    ------
    InputError
        An entry outside the image or inside the body, or farther from the lesion than any probe reaches.
    """
    entry = np.asarray(point, dtype=np.float64)
    field = f"entries.{lesion_id}"
    where = path_map.in_body(entry[None])[0]
    if where < 0:
        raise InputError(field, "an entry point inside the image (LPS mm)", [round(float(v), 1) for v in entry])
    if where == 1:
        raise InputError(
            field, "an entry point at the skin, in the air outside the body", [round(float(v), 1) for v in entry]
        )
    distance = float(np.linalg.norm(centre - entry))
    if distance > reach_mm:
        raise InputError(
            field,
            f"an entry within the probes' working length ({reach_mm:g} mm) of the lesion's centre",
            f"{distance:.0f} mm",
        )
    return entry


CRITICAL_CODES = ("biloma", "gallbladder_injury", "bowel_injury")
#: The least the search's goal rises after a plan fell short on the plan grid or under uncertainty, mm.
GOAL_STEP_MM = 0.5
#: Layouts whose chart estimates all miss the target rank as equals within this many points of tumour +
#: margin coverage of the best (`best_covering_layouts`): the charts simulate homogeneous liver with no
#: vessel, so a few points between two such estimates do not tell which the full simulation favours, and
#: among equals the fewest probes start.
CHART_COVERAGE_SLACK_PCT = 10.0


@dataclass
class CoarseSearch:
    """``evaluate(candidate)``: the candidate's full simulation on the search grid (`settings.chart_grid_mm`),
    as the local search ranks it.

    Its goal starts at the whole margin, and a plan meets it on the search grid within that grid's tolerance
    (`margin_met` on `chart_grid_mm`: half its voxel), since a margin measured there is known no better; such a
    plan goes to the check on the plan grid. When it falls short there (the coarse simulation's isotherms
    differ from the finer one's) or under uncertainty, the planner raises the goal by the difference seen
    (`raise_goal`) and searches on.
    """

    anatomy: PlanningAnatomy
    lesion_ids: list[str]
    settings: PlanSettings
    goal_mm: float = 0.0

    def __post_init__(self) -> None:
        self.goal_mm = self.goal_mm or self.settings.margin_mm

    def __call__(self, candidate: Candidate) -> Evaluation:
        settings = self.settings
        # The preview's longer steps keep its isotherm volumes within 1.5 % of the default ones; the plan's
        # check runs with the default steps.
        result, lesion_masks, structures, _, _ = simulate_plan(
            self.anatomy,
            self.lesion_ids,
            candidate,
            settings,
            grid_mm=settings.chart_grid_mm,
            preview=settings.chart_grid_mm >= PREVIEW_SPACING_MM,
        )
        covered = unit_coverage(result, lesion_masks, structures, self.anatomy, settings)
        # Margins on the coarse grid move in steps of its voxel, too coarse for the search to see a 1 mm move:
        # they are measured on the minimum temperature interpolated (trilinear) to a grid twice as fine.
        grid = result.grid
        nx, ny, nz = grid.shape
        fine = Grid(grid.origin_mm, grid.spacing_mm / 2, (2 * nx - 1, 2 * ny - 1, 2 * nz - 1))
        zoom = [(2 * n - 1) / n for n in grid.shape]
        temperature = ndimage.zoom(result.min_temperature_c, zoom, order=1)
        lethal = temperature <= settings.lethal_isotherm_c
        tumours = [resample_mask(self.anatomy.lesions[i], self.anatomy.grid, fine) for i in self.lesion_ids]
        spacing = [fine.spacing_mm] * 3
        worst = min(zone_margin(tumour, lethal, spacing).min_margin_mm for tumour in tumours)
        point, _ = thinnest_margin(temperature, np.any(tumours, axis=0), fine, settings.lethal_isotherm_c)
        return Evaluation(
            candidate,
            worst,
            min(lesion.margin_covered_pct for lesion in covered.lesions),
            not any(r.code in CRITICAL_CODES for r in covered.risks),
            point,
            self.goal_met(worst),
        )

    def goal_met(self, min_margin_mm: float) -> bool:
        """Whether a worst margin measured on the search grid meets the goal within that grid's tolerance."""
        return margin_met(min_margin_mm, self.goal_mm, [self.settings.chart_grid_mm] * 3)

    def raise_goal(self, coarse_mm: float, fine_mm: float) -> None:
        """Aim higher by how much the coarse grid overrated the thinnest margin seen (`fine_mm`: on the plan
        grid, or in the samples of a failed sequential test), at least `GOAL_STEP_MM`, and in further steps
        until the coarse margin `coarse_mm` of the plan that fell short no longer meets the goal (so that the
        search moves on from it rather than sending it to be checked again)."""
        self.goal_mm += max(coarse_mm - fine_mm, GOAL_STEP_MM)
        while np.isfinite(coarse_mm) and self.goal_met(coarse_mm):
            self.goal_mm += GOAL_STEP_MM


def per_probe_type(found: list[Candidate]) -> list[Candidate]:
    """The cheapest of `found` (in its order) for each probe type."""
    seen: dict[str, Candidate] = {}
    for candidate in found:
        seen.setdefault(candidate.probes[0].probe_id, candidate)
    return list(seen.values())


def starting_layouts(qualified: list[Candidate], feasible: list[Candidate]) -> list[Candidate]:
    """From one probe count's `scored_layouts`: per probe type, its cheapest layout whose estimate covers
    tumour + margin (in cost order), then for the types with none their best-covering layout; empty when no
    layout of that count has safe paths."""
    covering = sorted(feasible, key=lambda c: -c.estimated_margin_covered_pct)
    first = per_probe_type(qualified)
    types = {c.probes[0].probe_id for c in first}
    return first + [c for c in per_probe_type(covering) if c.probes[0].probe_id not in types]


def best_covering_layouts(feasible_per_count: list[list[Candidate]]) -> list[Candidate]:
    """Where no layout's estimate meets the target: per probe type, its feasible layout over every probe count
    (`scored_layouts` of each) whose estimate covers most of tumour + margin (the fewest probes among equals).
    Those within `CHART_COVERAGE_SLACK_PCT` of the best come first, fewest probes first; the others follow by
    coverage."""
    best: dict[str, Candidate] = {}
    for feasible in feasible_per_count:
        for candidate in feasible:
            kept = best.get(candidate.probes[0].probe_id)
            if kept is None or candidate.estimated_margin_covered_pct > kept.estimated_margin_covered_pct:
                best[candidate.probes[0].probe_id] = candidate
    if not best:
        return []
    top = max(c.estimated_margin_covered_pct for c in best.values())
    near = sorted(
        (c for c in best.values() if c.estimated_margin_covered_pct >= top - CHART_COVERAGE_SLACK_PCT),
        key=lambda c: c.cost,
    )
    rest = sorted((c for c in best.values() if c not in near), key=lambda c: -c.estimated_margin_covered_pct)
    return near + rest


def margin_rank(evaluation: Evaluation) -> tuple[float, float]:
    """How searched plans rank across starts: the worst margin (the criterion), then the covered share."""
    return evaluation.min_margin_mm, evaluation.margin_covered_pct


def _record(evaluation: Evaluation, grid_mm: float, stage: str, elapsed_s: float, **extra: Any) -> dict[str, Any]:
    candidate = evaluation.candidate
    return {
        "stage": stage,
        "grid_mm": grid_mm,
        "probes": len(candidate.probes),
        "freeze_minutes": candidate.freeze_minutes,
        "probe_type": candidate.probes[0].probe_id,
        "margin_covered_pct": round(evaluation.margin_covered_pct, 2),
        "min_margin_mm": round(evaluation.min_margin_mm, 2) if np.isfinite(evaluation.min_margin_mm) else None,
        "margin_met": evaluation.met,
        **extra,
        "elapsed_s": round(elapsed_s, 2),
    }


def plan_unit(
    anatomy: PlanningAnatomy,
    path_map: PathMap,
    lesion_ids: list[str],
    settings: PlanSettings,
    unit_id: str,
    progress: Progress | None = None,
    seed: int = 0,
) -> UnitPlan:
    """Choose, simulate and check the plan of one planning unit.

    The plans are tried cheapest first: the fewest probes, then the shortest freeze, each probe type's
    cheapest chart layout of a count in cost order. For each, the chart's layout (or, after a shorter
    freeze, the layout the search left) is improved by the local search on the coarse full simulation
    (`cryoplan.planning.local_search`) until every lesion's margin is met there within that grid's tolerance
    (`CoarseSearch`); a plan that meets it there is simulated on the plan's grid and accepted when it meets
    every margin there (`margin_met`) and, with ``settings.robust_samples``, when the sequential test finds
    its probability of success under the uncertainty model at least ``settings.confidence``
    (`cryoplan.planning.robust`). When none is accepted within the probe, freeze and simulation limits, the
    best plan checked is kept and its shortfall is flagged with the limit that bound.
    """
    target = build_target(anatomy, lesion_ids, settings.margin_mm)
    thickest = max(get_probe(p).radius_mm for p in settings.probe_types)
    deepest = max(get_probe(p).active_length_mm / 2 + get_probe(p).tip_offset_mm for p in settings.probe_types)
    reach = max(max_path_mm(settings, get_probe(p)) for p in settings.probe_types)
    where = f"lesions.{','.join(lesion_ids)}"
    given = [i for i in lesion_ids if i in settings.entries_lps_mm]
    entry = None
    if given:
        entry = checked_entry(path_map, given[0], settings.entries_lps_mm[given[0]], target.centre, reach)
    directions = ranked_directions(path_map, target.centre, settings, thickest, deepest, reach_mm=reach, entry=entry)
    if entry is not None:
        skin = path_map.skin_entry(target.centre, -directions[0], reach)
        if skin is None or path_map.path_clearance_mm(target.centre, skin, need=thickest) < thickest:
            blocking = path_map.blocking(target.centre, skin) if skin is not None else None
            raise NoSafePath(
                where,
                f"the path from the given entry passes within {path_map.clearances_mm.get(blocking, 0):g} mm of the "
                f"{blocking.replace('_', ' ')}"
                if blocking
                else "the path from the given entry has no skin crossing inside the image",
            )
    if not directions:
        raise NoSafePath(where, why_no_path(path_map, target.centre, settings, thickest, reach))
    if progress:
        progress(f"{unit_id}: searching layouts", 0.0)
    # The fewest probes whose chart estimate meets the target, each count's layouts scored once.
    scores = []
    for count in range(1, settings.max_probes + 1):
        scores.append(scored_layouts(target, path_map, settings, directions, count))
        if scores[-1][0]:
            break
    # The chart's cheapest layout of each probe type, tried in cost order: the charts know no vessel, so the
    # type they prefer may not be the one whose full simulation meets the margin. When nothing meets the
    # target even on estimates, the best-covering layouts start, and the search and the full simulation decide.
    if scores[-1][0]:
        pending = starting_layouts(*scores[-1])
    else:
        pending = best_covering_layouts([feasible for _, feasible in scores])
    if not pending:
        raise InputError(
            where,
            "probe layouts whose paths avoid vessels, bile ducts, gallbladder and bone",
            f"none feasible with {settings.paths} paths",
        )
    evaluate = CoarseSearch(anatomy, lesion_ids, settings)
    simulations: list[dict[str, Any]] = []
    searched = 0
    best = None  # (rank, candidate, simulated, covered, robust)
    best_search: Evaluation | None = None
    accepted = False
    bound = None  # the limit that ended the search, for the shortfall flag
    first = pending.pop(0)
    start: Candidate | None = first
    count = len(first.probes)
    checked: list[Candidate] = []

    def check(evaluation: Evaluation) -> tuple[bool, float]:
        """Simulate on the plan's grid and keep the best: (accepted, the thinnest margin seen: on the plan grid,
        or of the samples when the sequential test found the plan not robust)."""
        nonlocal best
        candidate = evaluation.candidate
        checked.append(candidate)
        if progress:
            progress(
                f"{unit_id}: checking on the {settings.grid_mm:g} mm grid ({len(candidate.probes)} probes, "
                f"{candidate.freeze_minutes:g} min)",
                0.0,
            )
        started = time.perf_counter()
        simulated = simulate_plan(
            anatomy, lesion_ids, candidate, settings, progress=(lambda f: progress(None, f)) if progress else None
        )
        result, lesion_masks, structures, _, _ = simulated
        covered = unit_coverage(result, lesion_masks, structures, anatomy, settings)
        # One criterion with `verify`: every lesion's margin met (`margin_met`); the worst margin ranks the rest.
        met = all(lesion.margin_met for lesion in covered.lesions)
        worst = min(lesion.min_margin_mm for lesion in covered.lesions)
        outcome = replace(
            evaluation,
            min_margin_mm=worst,
            margin_covered_pct=min(lesion.margin_covered_pct for lesion in covered.lesions),
            met=met,
        )
        simulations.append(_record(outcome, settings.grid_mm, "check", time.perf_counter() - started))
        robust = None
        if met and settings.robust_samples:
            # Robust planning: the nominal plan meets the margins; does it under placement and tissue error?
            robust = success_probability(
                anatomy,
                PlanUnderTest(lesion_ids, candidate),
                settings,
                test=SequentialTest(target=settings.confidence, max_samples=settings.robust_samples),
                seed=seed,
                grid_mm=settings.chart_grid_mm,
            )
            simulations[-1]["probability_of_success"] = robust.to_dict()
        rank = (robust is None or robust.robust, met, robust.probability if robust else 0.0, worst)
        if best is None or rank > best[0]:
            best = (rank, candidate, simulated, covered, robust)
        if robust is not None and not robust.robust and np.isfinite(robust.thinnest_margin_mm):
            return False, robust.thinnest_margin_mm
        return met and (robust is None or robust.robust), worst

    while start is not None and not accepted:
        for minutes in [m for m in sorted(settings.freeze_minutes) if m >= start.freeze_minutes]:
            if progress:
                progress(f"{unit_id}: local search ({count} probes, {minutes:g} min)", 0.0)
            evaluation = evaluate(replace(start, freeze_minutes=minutes))
            searched += 1
            while True:
                started = time.perf_counter()
                evaluation, used, kept = local_search(
                    evaluation, evaluate, path_map, settings, max(settings.max_search_simulations - searched, 0)
                )
                searched += used
                simulations.append(
                    _record(
                        evaluation,
                        settings.chart_grid_mm,
                        "search",
                        time.perf_counter() - started,
                        simulations=used,
                        moves=kept,
                        goal_mm=round(evaluate.goal_mm, 2),
                    )
                )
                # Across starts the margin ranks first: it is the criterion, a frozen duct is a flag.
                if best_search is None or margin_rank(evaluation) > margin_rank(best_search):
                    best_search = evaluation
                if not evaluation.met or len(checked) >= settings.max_full_simulations:
                    break
                accepted, fine_mm = check(evaluation)
                if accepted or searched >= settings.max_search_simulations:
                    break
                # Short on the plan grid, or under uncertainty: aim higher by how much the coarse grid overrated
                # the thinnest margin seen there or in the samples, and search on from here.
                evaluate.raise_goal(evaluation.min_margin_mm, fine_mm)
                evaluation = replace(evaluation, met=evaluate.goal_met(evaluation.min_margin_mm))
            start = evaluation.candidate  # a longer freeze starts from where the search left the probes
            if accepted:
                break
            if searched >= settings.max_search_simulations:
                bound = f"the search's budget of {settings.max_search_simulations} coarse simulations was spent"
                break
            if len(checked) >= settings.max_full_simulations:
                bound = f"the budget of {settings.max_full_simulations} checks on the plan grid was spent"
                break
        if accepted or bound:
            break
        if pending:
            start = pending.pop(0)
            continue
        tried, blocked, start = count, [], None
        while not pending and count < settings.max_probes:
            count += 1
            pending = starting_layouts(*scored_layouts(target, path_map, settings, directions, count))
            if not pending:
                blocked.append(str(count))
        start = pending.pop(0) if pending else None
        if start is None:
            bound = (
                f"{tried} probe{'s' if tried > 1 else ''} frozen up to {max(settings.freeze_minutes):g} min "
                "(--freeze-minutes) were not enough, and "
                + (
                    f"no layout of {' or '.join(blocked)} probes has paths that keep their clearances "
                    f"({settings.paths} paths; --max-probes {settings.max_probes})"
                    if blocked
                    else f"--max-probes is {settings.max_probes}"
                )
            )
    if not accepted and best_search is not None and all(best_search.candidate is not b for b in checked):
        # The plan the search found best, simulated on the plan grid: the numbers reported are its own.
        check(best_search)
    assert best is not None  # the search ran at least once, and its best plan was checked
    _, candidate, (result, lesion_masks, structures, history_points, tissues), covered, robust = best
    if not best[0][1] and bound:
        for risk in covered.risks:
            if risk.code == "coverage_shortfall":
                risk.detail += f"; the best plan searched: {bound}"
    if robust is not None and not robust.robust:
        low, high = robust.interval
        covered.risks.append(
            Risk(
                "not_robust",
                f"probability that every margin is met {robust.probability:.2f} (95 % interval {low:.2f}–{high:.2f}, "
                f"{robust.samples} samples), below the confidence asked for ({settings.confidence:g}); "
                "the best plan found within the probe and time limits",
            )
        )
    exposure = None
    if tissues.names is not None:
        exposure = organ_exposure(
            result.min_temperature_c,
            tissues.names,
            result.grid.spacing_mm,
            settings.lethal_isotherm_c,
            SIMULATION_REACH_MM,
            tissues.beyond_image_pct,
        )
        covered.risks.extend(organ_risks(exposure))
    paths = [
        describe_path(path_map, anatomy, p.tip_lps_mm, p.entry_lps_mm, get_probe(p.probe_id).radius_mm)
        for p in candidate.probes
    ]
    margin_masks = {
        i: margin_shell(m, settings.margin_mm, [result.grid.spacing_mm] * 3, structures["liver"])
        for i, m in lesion_masks.items()
    }
    return UnitPlan(
        unit_id,
        lesion_ids,
        candidate,
        result,
        covered,
        lesion_masks,
        margin_masks,
        structures,
        history_points,
        simulations,
        exposure=exposure,
        paths=paths,
        success=robust,
    )


def case_sessions(anatomy: PlanningAnatomy, units: list[UnitPlan]) -> list[Session]:
    """The units split into staged sessions (`staged_sessions`); each session's flags are added to the risks
    of its units, where the report shows them."""
    healthy = anatomy.liver & ~np.any(np.stack(list(anatomy.lesions.values())), axis=0)
    loads = [UnitLoad(u.unit_id, u.lesion_ids, u.coverage.frozen_volume_ml, u.coverage.frozen_liver_ml) for u in units]
    sessions = staged_sessions(loads, float(healthy.sum()) * anatomy.grid.voxel_volume_ml or None)
    by_id = {u.unit_id: u for u in units}
    for session in sessions:
        for unit_id in session.unit_ids:
            by_id[unit_id].coverage.risks.extend(session.risks)
    return sessions


# ------------------------------------------------------------------------------------------ the case


def case_record(case: CaseRecord | Case) -> CaseRecord:
    """`case` as `cryoplan.clinical.read_case_record` returns it: a Case (a case file's, or one parsed from a
    document) has no FHIR entries left unused, no notes and no lab bounds."""
    return case if isinstance(case, CaseRecord) else CaseRecord(case, [], [], {})


def load_source(source: Case | Phantom) -> tuple[Volume, Anatomy, Path | None]:
    """(ct, anatomy, source_dicom) from a Case with imaging, or from a phantom (source_dicom: the DICOM series
    folder the image was read from, None for other formats)."""
    if isinstance(source, Case):
        imaging = source.imaging
        if imaging is None:
            raise InputError("imaging", "an imaging section (image and labels or masks) to plan on")
        ct, anatomy = load_anatomy(
            imaging.image,
            labels=imaging.labels,
            label_preset=imaging.label_preset,
            label_map=imaging.labels_map,
            masks=imaging.masks,
            series_uid=imaging.series_uid,
        )
        if anatomy is None:
            raise InputError("imaging.labels", "a segmentation with the liver and the tumour")
        dicom = Path(imaging.image) if Path(imaging.image).is_dir() else None
        return ct, anatomy, dicom
    if hasattr(source, "labels") and hasattr(source, "label_map"):
        anatomy = anatomy_from_labels(source.labels, None, source.label_map)
        return source.ct, anatomy, None
    raise InputError("case", "a case with imaging or a phantom", type(source).__name__)


def plan_case(
    source: CaseRecord | Case | Phantom,
    uncertainty_samples: int = 0,
    scheduler: str | None = None,
    progress: Progress | None = None,
    *,
    settings: PlanSettings = PlanSettings(),
    case: CaseRecord | Case | None = None,
    seed: int = 0,
) -> CasePlan:
    """Plan a case: assessment, imaging, placement, full simulation, coverage and optional uncertainty.

    Nothing is written: `cryoplan.report.plan_report.write_plan_outputs` writes the returned plan.

    The assessment is `cryoplan assess`'s: `cryoplan.clinical.assess_record` on the case read (with the lab
    bounds and unused entries of a FHIR bundle) whose lesions are measured on the planning images.

    Parameters
    ----------
    source : CaseRecord, Case or Phantom
        A case (as `cryoplan.clinical.read_case_record` returns it, or a Case: one without lab bounds) whose
        imaging section names an image and its segmentation, or a phantom (`cryoplan.imaging.phantom`).
    uncertainty_samples : int
        Monte Carlo samples of the uncertainty analysis (0: none).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://HOST:PORT``); None starts a LocalCluster.
    progress : callable, optional
        ``progress(label, fraction)``: a new stage when `label` is a string, progress within it otherwise.
    case : CaseRecord or Case, optional
        The clinical case for the assessment when `source` is a phantom.
    seed : int
        Seed of every random choice (point sampling, Monte Carlo).
    """
    settings = settings.check()
    if uncertainty_samples < 0:
        raise InputError("uncertainty", "a number of samples ≥ 0", uncertainty_samples)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    record = None
    if isinstance(source, CaseRecord | Case):
        record = case_record(source)
        source = record.case
    elif case is not None:
        record = case_record(case)
    ct, anatomy, dicom = load_source(source)
    if isinstance(source, Case) and source.imaging is not None and source.imaging.entries:
        # Entries given on the command line win over the case file's.
        given = {k: (v[0], v[1], v[2]) for k, v in source.imaging.entries.items()}
        settings = replace(settings, entries_lps_mm={**given, **settings.entries_lps_mm}).check()
    assessment = None
    if record is not None:
        # The one code path of `cryoplan assess` (`cryoplan.cli.assess.assess_file`), on the planning images.
        measured, flags = case_with_measured_lesions(record.case, anatomy=anatomy)
        assessment = assess_record(replace(record, case=measured), imaging_flags=flags).to_dict()
    planning, measurements = planning_anatomy(ct, anatomy)
    timing["imaging_s"] = time.perf_counter() - started
    started = time.perf_counter()
    path_map = PathMap.build(planning, settings)
    timing["path_map_s"] = time.perf_counter() - started
    unknown = sorted(set(settings.entries_lps_mm) - set(planning.lesions))
    if unknown:
        raise InputError(f"entries.{unknown[0]}", f"a lesion id, one of {', '.join(planning.lesions)}", unknown[0])
    units = []
    for number, lesion_ids in enumerate(planning_groups(planning, path_map, settings), start=1):
        units.append(plan_unit(planning, path_map, lesion_ids, settings, f"U{number}", progress, seed))
    sessions = case_sessions(planning, units)
    timing["planning_s"] = time.perf_counter() - started
    timing["final_simulation_s"] = float(sum(u.result.elapsed_s for u in units))
    if uncertainty_samples:
        started = time.perf_counter()
        for unit in units:
            unit.uncertainty = run_uncertainty(
                planning, unit, settings, samples=uncertainty_samples, scheduler=scheduler, seed=seed, progress=progress
            )
        timing["uncertainty_s"] = time.perf_counter() - started
    notes = [
        "Liver, fat, muscle, kidney, lung, bone and blood are simulated with their own properties from the "
        "tissue library; other organs and unlabelled soft tissue take muscle's, gas inside the body lung's and "
        "air outside it fat's. The tumour takes the liver baseline properties (the tissue library has no "
        "tumour-specific values)."
    ]
    for unit in units:
        beyond = unit.exposure.beyond_image_pct if unit.exposure is not None else 0.0
        if beyond > 0:
            notes.append(
                f"{unit.unit_id}: {beyond:.0f} % of the simulation grid lies beyond the image; the tissue at the "
                "image's edge is continued there (not known to be liver)."
            )
    warnings = field_of_view_warnings(planning.body_model, settings.margin_mm) if planning.body_model else []
    return CasePlan(
        settings,
        assessment,
        ct,
        planning,
        measurements,
        units,
        timing,
        dicom,
        notes,
        [w.to_json() for w in warnings],
        sessions=sessions,
    )
