"""`plan_case`: from a case (or a phantom) to a simulated, checked freeze plan.

Assessment → imaging → planning units → placement (fast candidates, then full simulations with vessels)
→ coverage → optional uncertainty. Writing the outputs (plan.json, NIfTI, figures, report) is
`cryoplan.report.plan_report.write_plan_outputs`, called by the CLI and the service on the returned plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cryoplan.case import Case
from cryoplan.clinical import assess
from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import anatomy_from_labels, load_anatomy
from cryoplan.imaging.case_images import case_with_measured_lesions
from cryoplan.imaging.volume import Volume
from cryoplan.planning.anatomy import PlanningAnatomy, planning_anatomy, planning_units
from cryoplan.planning.coverage import Coverage, margin_shell
from cryoplan.planning.paths import PathMap, ranked_directions
from cryoplan.planning.search import Candidate, build_target, escalations, search_candidates
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.simulation import simulate_plan, unit_coverage
from cryoplan.planning.uncertainty import run_uncertainty
from cryoplan.progress import Progress
from cryoplan.thermal import ThermalResult, get_probe


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
    simulations: list[dict] = field(default_factory=list)
    uncertainty: object | None = None

    @property
    def grid_volume(self) -> Volume:
        return Volume(self.result.min_temperature_c, self.result.grid.affine)


@dataclass
class CasePlan:
    """Everything `cryoplan plan` reports."""

    settings: PlanSettings
    assessment: dict | None
    ct: Volume
    anatomy: PlanningAnatomy
    lesion_measurements: dict[str, dict]
    units: list[UnitPlan]
    timing_s: dict[str, float]
    source_dicom: Path | None = None
    notes: list[str] = field(default_factory=list)


def plan_unit(
    anatomy: PlanningAnatomy,
    path_map: PathMap,
    lesion_ids: list[str],
    settings: PlanSettings,
    unit_id: str,
    progress: Progress | None = None,
) -> UnitPlan:
    """Choose, simulate and (when it falls short) escalate the plan of one planning unit."""
    target = build_target(anatomy, lesion_ids, settings.margin_mm)
    thickest = max(get_probe(p).radius_mm for p in settings.probe_types)
    deepest = max(get_probe(p).active_length_mm / 2 + get_probe(p).tip_offset_mm for p in settings.probe_types)
    directions = ranked_directions(path_map, target.centre, settings, thickest, deepest)
    where = f"lesions.{','.join(lesion_ids)}"
    if not directions:
        raise InputError(
            where,
            "a straight probe path from the skin entry window that avoids vessels of "
            f"≥ {settings.min_vessel_calibre_mm:g} mm, bile ducts, gallbladder and bone",
            "none found",
        )
    if progress:
        progress(f"{unit_id}: searching layouts", 0.0)
    candidates = search_candidates(target, path_map, settings, directions)
    if not candidates:
        # Nothing meets the target even on estimates: take the best-covering feasible layout of the
        # most probes and let the full simulation report (and flag) the shortfall.
        candidates = search_candidates(
            target, path_map, replace(settings, coverage_target_pct=0.0), directions, min_probes=settings.max_probes
        )
        candidates.sort(key=lambda c: -c.estimated_margin_covered_pct)
    if not candidates:
        raise InputError(
            where,
            "probe layouts whose paths avoid vessels, bile ducts, gallbladder and bone",
            f"none feasible with {settings.paths} paths",
        )
    queue = [candidates[0]]
    simulations = []
    best = None
    while queue and len(simulations) < settings.max_full_simulations:
        candidate = queue.pop(0)
        if progress:
            progress(
                f"{unit_id}: full simulation {len(simulations) + 1} ({len(candidate.probes)} probes, "
                f"{candidate.freeze_minutes:g} min)",
                0.0,
            )
        started = time.perf_counter()
        simulated = simulate_plan(
            anatomy, lesion_ids, candidate, settings, progress=(lambda f: progress(None, f)) if progress else None
        )
        result, lesion_masks, structures, history_points = simulated
        covered = unit_coverage(result, lesion_masks, structures, anatomy, settings)
        worst = min(lesion.margin_covered_pct for lesion in covered.lesions)
        simulations.append(
            {
                "probes": len(candidate.probes),
                "freeze_minutes": candidate.freeze_minutes,
                "probe_type": candidate.probes[0].probe_id,
                "margin_covered_pct": round(worst, 2),
                "elapsed_s": round(time.perf_counter() - started, 2),
            }
        )
        if best is None or worst > best[0]:
            best = (worst, candidate, simulated, covered)
        if worst >= settings.coverage_target_pct:
            break
        if not queue:
            queue = escalations(candidate, target, path_map, settings, directions)
    _, candidate, (result, lesion_masks, structures, history_points), covered = best
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
    )


# ------------------------------------------------------------------------------------------ the case


def load_source(source, case=None):
    """(ct, anatomy, case, source_dicom) from a Case with imaging, or from a phantom."""
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
        )
        if anatomy is None:
            raise InputError("imaging.labels", "a segmentation with the liver and the tumour")
        dicom = Path(imaging.image) if Path(imaging.image).is_dir() else None
        return ct, anatomy, source, dicom
    if hasattr(source, "labels") and hasattr(source, "label_map"):
        anatomy = anatomy_from_labels(source.labels, None, source.label_map)
        return source.ct, anatomy, case, None
    raise InputError("case", "a case with imaging or a phantom", type(source).__name__)


def plan_case(
    source,
    uncertainty_samples: int = 0,
    scheduler: str | None = None,
    progress: Progress | None = None,
    *,
    settings: PlanSettings = PlanSettings(),
    case=None,
    seed: int = 0,
) -> CasePlan:
    """Plan a case: assessment, imaging, placement, full simulation, coverage and optional uncertainty.

    Nothing is written: `cryoplan.report.plan_report.write_plan_outputs` writes the returned plan.

    Parameters
    ----------
    source : Case or Phantom
        A case whose imaging section names an image and its segmentation, or a phantom
        (`cryoplan.imaging.phantom`).
    uncertainty_samples : int
        Monte Carlo samples of the uncertainty analysis (0: none).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://HOST:PORT``); None starts a LocalCluster.
    progress : callable, optional
        ``progress(label, fraction)``: a new stage when `label` is a string, progress within it otherwise.
    case : Case, optional
        The clinical case for the assessment when `source` is a phantom.
    seed : int
        Seed of every random choice (point sampling, Monte Carlo).
    """
    settings = settings.check()
    if uncertainty_samples < 0:
        raise InputError("uncertainty", "a number of samples ≥ 0", uncertainty_samples)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    ct, anatomy, case, dicom = load_source(source, case)
    assessment = None
    if case is not None:
        measured, flags = case_with_measured_lesions(case, anatomy=anatomy)
        assessment = assess(measured, imaging_flags=flags).to_dict()
    planning, measurements = planning_anatomy(ct, anatomy)
    timing["imaging_s"] = time.perf_counter() - started
    started = time.perf_counter()
    path_map = PathMap.build(planning, settings.min_vessel_calibre_mm)
    units = []
    for number, lesion_ids in enumerate(planning_units(planning, settings.margin_mm), start=1):
        units.append(plan_unit(planning, path_map, lesion_ids, settings, f"U{number}", progress))
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
        "Every voxel of the simulation grid outside the tumour is simulated as liver (surrounding organs "
        "and fat included), and the tumour takes the liver baseline properties (the tissue library "
        "has no tumour-specific values)."
    ]
    return CasePlan(settings, assessment, ct, planning, measurements, units, timing, dicom, notes)
