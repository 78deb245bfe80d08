"""`plan_case`: from a case (or a phantom) to a simulated, checked freeze plan.

Assessment → imaging → planning units → placement (fast candidates, then full simulations with vessels)
→ coverage → optional uncertainty. Writing the outputs (plan.json, NIfTI, figures, report) is
`cryoplan.report.plan_report.write_plan_outputs`; `plan_case` calls it when given a folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from cryoplan.errors import InputError
from cryoplan.imaging.anatomy import (
    VESSELS,
    Anatomy,
    anatomy_from_labels,
    lesion_components,
    load_anatomy,
    measure_lesions,
)
from cryoplan.imaging.volume import Volume
from cryoplan.planning.coverage import Coverage, RiskLimits, coverage, coverage_curve, margin_shell
from cryoplan.planning.placement import (
    Candidate,
    PathMap,
    PlanningAnatomy,
    PlanSettings,
    build_target,
    escalations,
    ranked_directions,
    search_candidates,
    vessel_components,
)
from cryoplan.progress import Progress
from cryoplan.thermal import TISSUES, Grid, ThermalResult, Vessel, get_probe, simulate

# Air and lung are below this on CT; the body is what is denser.
BODY_HU = -400.0
# A lesion with less than this share of its surroundings in the liver is not a liver lesion.
MIN_LIVER_CONTACT = 0.25
# Lesions whose tumour + margin regions come this close share one plan.
SHARED_PLAN_GAP_MM = 15.0
# The full simulation's grid reaches this far beyond the target and the probes' active zones.
SIMULATION_REACH_MM = 25.0


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


# ------------------------------------------------------------------------------------------ inputs


def body_mask(ct: Volume) -> np.ndarray:
    """The patient's body on CT: the largest connected region denser than air, holes filled."""
    dense = np.asarray(ct.array) > BODY_HU
    labels, count = ndimage.label(dense)
    if count == 0:
        raise InputError("image", "a CT with the patient's body in it (voxels above −400 HU)")
    largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    return ndimage.binary_fill_holes(labels == largest)


def planning_anatomy(ct: Volume, anatomy: Anatomy, min_voxels: int = 1) -> tuple[PlanningAnatomy, dict[str, dict]]:
    """The planner's masks and the imaging measurements of each lesion.

    Raises
    ------
    InputError
        No liver, no tumour, or a tumour outside the liver.
    """
    masks = anatomy.masks
    if "liver" not in masks or not masks["liver"].any():
        raise InputError("imaging.labels.liver", "a liver segmentation")
    components = lesion_components(anatomy, min_voxels)
    if not components:
        raise InputError("imaging.labels.tumour", "at least one tumour voxel")
    measurements = {m.id: m for m in measure_lesions(anatomy, min_voxels)}
    lesions = {f"L{n}": mask for n, mask in enumerate(components, start=1)}
    liver = masks["liver"]
    for lesion_id, mask in lesions.items():
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        contact = float(np.mean(liver[shell] | masks.get("tumour")[shell])) if shell.any() else 0.0
        if contact < MIN_LIVER_CONTACT:
            raise InputError(
                f"lesions.{lesion_id}",
                "a tumour inside the liver",
                f"{100 * (1 - contact):.0f} % of its surroundings outside the liver",
            )
    vessels = np.zeros(ct.shape, dtype=bool)
    for name in VESSELS:
        if name in masks:
            vessels |= masks[name]
    heat_sink = {
        m.id: f"{m.heat_sink_vessel.replace('_', ' ')} of {m.heat_sink_vessel_calibre_mm:.0f} mm within 10 mm"
        for m in measurements.values()
        if m.heat_sink and m.heat_sink_vessel
    }
    planning = PlanningAnatomy(
        grid=ct,
        liver=liver | masks["tumour"],
        body=body_mask(ct),
        lesions=lesions,
        vessels=vessels,
        bile_duct=masks.get("bile_duct"),
        gallbladder=masks.get("gallbladder"),
        bone=masks.get("bone"),
        heat_sink=heat_sink,
    )
    return planning, {k: m.to_json() for k, m in measurements.items()}


def planning_units(anatomy: PlanningAnatomy, margin_mm: float) -> list[list[str]]:
    """Group lesions whose tumour + margin regions lie within `SHARED_PLAN_GAP_MM` of each other."""
    ids = list(anatomy.lesions)
    reach = (
        {i: ndimage.distance_transform_edt(~anatomy.lesions[i], sampling=anatomy.grid.spacing_mm) for i in ids}
        if len(ids) > 1
        else {}
    )
    parent = {i: i for i in ids}

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a in ids:
        for b in ids:
            if a < b and reach[a][anatomy.lesions[b]].min() <= 2 * margin_mm + SHARED_PLAN_GAP_MM:
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


# ------------------------------------------------------------------------------------------ simulation


def resample_mask(mask: np.ndarray, source: Volume, grid: Grid) -> np.ndarray:
    """A mask of `source`'s grid sampled (nearest voxel) at the centres of `grid`."""
    index = source.lps_to_index(grid.centres_mm())
    return ndimage.map_coordinates(
        mask.astype(np.uint8), np.moveaxis(index, -1, 0), order=0, mode="constant", cval=0
    ).astype(bool)


def simulation_grid(target_points: np.ndarray, candidate: Candidate, spacing_mm: float) -> Grid:
    ends = []
    for probe in candidate.probes:
        placement = probe.placement()
        ends += [placement.tip_mm, *placement.active_segment_mm()]
    return Grid.around(np.vstack([target_points, np.array(ends)]), SIMULATION_REACH_MM, spacing_mm)


def simulate_plan(
    anatomy: PlanningAnatomy,
    lesion_ids: list[str],
    candidate: Candidate,
    settings: PlanSettings,
    *,
    tissues=None,
    probes=None,
    progress=None,
    grid_mm: float | None = None,
):
    """Full simulation of a plan on the patient's anatomy, large vessels as heat sinks.

    Returns
    -------
    (ThermalResult, lesion_masks, structures, history_points)
    """
    target = build_target(anatomy, lesion_ids, settings.margin_mm)
    grid = simulation_grid(target.margin_points, candidate, grid_mm or settings.grid_mm)
    lesion_masks = {i: resample_mask(anatomy.lesions[i], anatomy.grid, grid) for i in lesion_ids}
    tumour = np.any(np.stack(list(lesion_masks.values())), axis=0)
    large = resample_mask(anatomy.large_vessels(settings.min_vessel_calibre_mm), anatomy.grid, grid)
    vessels = [Vessel(mask, calibre) for mask, calibre in vessel_components(large, [grid.spacing_mm] * 3)]
    structures = {"liver": resample_mask(anatomy.liver, anatomy.grid, grid), "large_vessels": large}
    for name in ("bile_duct", "gallbladder"):
        mask = getattr(anatomy, name)
        if mask is not None:
            structures[name] = resample_mask(mask, anatomy.grid, grid)
    # Temperature histories at the tumour edge facing the strongest heat sink (or farthest from the
    # probes) and at the bile duct voxel nearest the tumour.
    spacing = np.full(3, grid.spacing_mm)
    surface = tumour & ~ndimage.binary_erosion(tumour)
    surface_points = grid.origin_mm + np.argwhere(surface) * grid.spacing_mm
    if large.any():
        distance = ndimage.distance_transform_edt(~large, sampling=spacing)[surface]
        edge = surface_points[int(np.argmin(distance))]
    else:
        tips = np.array([p.tip_lps_mm for p in candidate.probes])
        edge = surface_points[
            int(np.argmax(np.min(np.linalg.norm(surface_points[:, None] - tips[None], axis=-1), axis=1)))
        ]
    history_points = {"tumour edge": edge}
    duct = structures.get("bile_duct")
    if duct is not None and duct.any():
        distance = ndimage.distance_transform_edt(~tumour, sampling=spacing)
        nearest = np.unravel_index(int(np.argmin(np.where(duct, distance, np.inf))), duct.shape)
        history_points["nearest bile duct"] = grid.origin_mm + np.array(nearest) * grid.spacing_mm
    result = simulate(
        grid,
        probes if probes is not None else [p.placement() for p in candidate.probes],
        settings.protocol(candidate.freeze_minutes),
        tissue_labels=tumour.astype(np.int32),
        tissues=tissues or {0: TISSUES["liver"], 1: TISSUES["tumour"]},
        vessels=vessels,
        record_points=history_points,
        isotherms_c=sorted({0.0, -20.0, -40.0, settings.lethal_isotherm_c}, reverse=True),
        progress=progress,
    )
    return result, lesion_masks, structures, {k: [float(x) for x in v] for k, v in history_points.items()}


def unit_coverage(
    result: ThermalResult, lesion_masks, structures, anatomy: PlanningAnatomy, settings: PlanSettings
) -> Coverage:
    return coverage(
        result.min_temperature_c,
        [result.grid.spacing_mm] * 3,
        lesion_masks,
        liver=structures["liver"],
        bile_duct=structures.get("bile_duct"),
        vessels=structures["large_vessels"],
        gallbladder=structures.get("gallbladder"),
        lethal_isotherm_c=settings.lethal_isotherm_c,
        margin_mm=settings.margin_mm,
        heat_sink_lesions={k: v for k, v in anatomy.heat_sink.items() if k in lesion_masks},
        limits=RiskLimits(
            critical_temperature_c=settings.critical_temperature_c, coverage_target_pct=settings.coverage_target_pct
        ),
    )


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
    from cryoplan.case import Case

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
    out_dir: str | Path | None = None,
    uncertainty_samples: int = 0,
    scheduler: str | None = None,
    progress: Progress | None = None,
    *,
    settings: PlanSettings = PlanSettings(),
    case=None,
    seed: int = 0,
) -> CasePlan:
    """Plan a case: assessment, imaging, placement, full simulation, coverage and optional uncertainty.

    Parameters
    ----------
    source : Case or Phantom
        A case whose imaging section names an image and its segmentation, or a phantom
        (`cryoplan.imaging.phantom`).
    out_dir : path, optional
        When given, every output is written there (`write_plan_outputs`).
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
        from cryoplan.clinical import assess

        assessment = assess(case).to_dict()
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
        from cryoplan.planning.uncertainty import run_uncertainty

        started = time.perf_counter()
        for unit in units:
            unit.uncertainty = run_uncertainty(
                planning, unit, settings, samples=uncertainty_samples, scheduler=scheduler, seed=seed, progress=progress
            )
        timing["uncertainty_s"] = time.perf_counter() - started
    notes = [
        "Every voxel of the simulation grid outside the tumour is simulated as liver (surrounding organs "
        "and fat included), and the tumour takes the liver baseline properties (physics.md gives no "
        "tumour-specific values)."
    ]
    plan = CasePlan(settings, assessment, ct, planning, measurements, units, timing, dicom, notes)
    if out_dir is not None:
        from cryoplan.report.plan_report import write_plan_outputs

        started = time.perf_counter()
        write_plan_outputs(plan, Path(out_dir), progress=progress)
        timing["report_s"] = time.perf_counter() - started
    return plan


def coverage_curves(unit: UnitPlan) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Coverage curves of each lesion's tumour and tumour + margin in a unit."""
    curves = {}
    for lesion_id, mask in unit.lesion_masks.items():
        curves[f"{lesion_id} tumour"] = coverage_curve(unit.result.min_temperature_c, mask)
        curves[f"{lesion_id} tumour + margin"] = coverage_curve(
            unit.result.min_temperature_c, unit.margin_masks[lesion_id]
        )
    return curves
