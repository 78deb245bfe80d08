"""A full plan of a probe layout given by hand: the probes stay where the user put them.

The optimiser (`cryoplan.planning.pipeline.plan_case`) chooses the probes; here they are given (a layout
edited in the service's viewer) and only judged: each path is checked against the clearances the optimiser
keeps, the layout is simulated on the patient's anatomy with its large vessels as heat sinks
(`cryoplan.planning.simulation.simulate_plan`), and coverage, margins and risks are computed as for an
optimised plan (`cryoplan.planning.simulation.unit_coverage`). What is not met is flagged, never moved.

Each probe belongs to the planning unit (`cryoplan.planning.anatomy.planning_units`) whose tumour is
nearest its tip; a unit left without a probe is an input error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cryoplan.case import Case
from cryoplan.clinical import assess
from cryoplan.errors import InputError
from cryoplan.imaging.body import field_of_view_warnings
from cryoplan.imaging.case_images import case_with_measured_lesions
from cryoplan.planning.anatomy import PlanningAnatomy, planning_anatomy, planning_units
from cryoplan.planning.coverage import Risk, margin_shell
from cryoplan.planning.organs import organ_exposure, organ_risks
from cryoplan.planning.paths import PathMap, describe_path
from cryoplan.planning.pipeline import CasePlan, UnitPlan, case_sessions, load_source
from cryoplan.planning.search import Candidate, ProbePlan
from cryoplan.planning.settings import PlanSettings
from cryoplan.planning.simulation import SIMULATION_REACH_MM, simulate_plan, unit_coverage
from cryoplan.planning.uncertainty import run_uncertainty
from cryoplan.progress import Progress
from cryoplan.thermal import get_probe

EDITED_LAYOUT_NOTE = (
    "The probes were placed by hand (an edited layout) and simulated where they were put: the planner judged "
    "this layout but did not choose or move it."
)


@dataclass(frozen=True)
class GivenProbe:
    """A probe placed by the user: its type, tip and skin entry (LPS mm)."""

    probe_id: str
    tip_lps_mm: tuple[float, float, float]
    entry_lps_mm: tuple[float, float, float]


def given_probes(document: Sequence[dict[str, Any]], field: str = "probes") -> list[GivenProbe]:
    """Probes from their JSON form (``type``, ``tip_lps_mm``, ``entry_lps_mm``), checked.

    Raises
    ------
    InputError
        An unknown probe type, a point that is not three finite numbers, or an entry within 1 mm of its tip.
    """
    if not document:
        raise InputError(field, "at least one probe (type, tip_lps_mm, entry_lps_mm)")
    probes = []
    for n, item in enumerate(document):
        where = f"{field}[{n}]"
        probe_id = str(item.get("type"))
        get_probe(probe_id, field=f"{where}.type")
        points = []
        for key in ("tip_lps_mm", "entry_lps_mm"):
            try:
                point = [float(v) for v in item.get(key) or []]
            except (TypeError, ValueError):
                point = []
            if len(point) != 3 or not all(math.isfinite(v) for v in point):
                raise InputError(f"{where}.{key}", "three finite numbers (LPS mm)", item.get(key))
            points.append((point[0], point[1], point[2]))
        if math.dist(points[0], points[1]) < 1.0:
            raise InputError(f"{where}.entry_lps_mm", "an entry at least 1 mm from the tip", list(points[1]))
        probes.append(GivenProbe(probe_id, points[0], points[1]))
    return probes


def probe_plan(probe: GivenProbe) -> ProbePlan:
    """The planner's form of a given probe: inserted from its entry towards its tip."""
    tip, entry = np.asarray(probe.tip_lps_mm, float), np.asarray(probe.entry_lps_mm, float)
    direction = (tip - entry) / np.linalg.norm(tip - entry)
    return ProbePlan(probe.probe_id, tip, direction, entry)


def units_of_probes(anatomy: PlanningAnatomy, units: list[list[str]], probes: list[GivenProbe]) -> list[list[int]]:
    """For each planning unit, the indices of the probes whose tip is nearest one of its tumours.

    Raises
    ------
    InputError
        A planning unit that no probe is nearest to.
    """
    tips = np.array([p.tip_lps_mm for p in probes], dtype=float)
    nearest = np.full((len(units), len(probes)), np.inf)
    for u, lesion_ids in enumerate(units):
        for lesion_id in lesion_ids:
            points = anatomy.grid.index_to_lps(np.argwhere(anatomy.lesions[lesion_id]))
            distance = np.linalg.norm(points[None] - tips[:, None], axis=-1).min(axis=1)
            nearest[u] = np.minimum(nearest[u], distance)
    owner = np.argmin(nearest, axis=0)
    assigned = [[int(i) for i in np.flatnonzero(owner == u)] for u in range(len(units))]
    for lesion_ids, indices in zip(units, assigned, strict=True):
        if not indices:
            raise InputError("probes", f"at least one probe nearest lesion {', '.join(lesion_ids)}", "none")
    return assigned


def path_risks(path_map: PathMap, probes: list[ProbePlan], names: list[str]) -> list[Risk]:
    """The paths that break the clearances the optimiser keeps, or whose entry is not at the skin."""
    risks = []
    for name, probe in zip(names, probes, strict=True):
        radius = get_probe(probe.probe_id).radius_mm
        where = int(path_map.in_body(probe.entry_lps_mm[None])[0])
        if where != 0:
            risks.append(
                Risk(
                    "entry_not_at_skin",
                    f"{name}: the entry point lies {'inside the body' if where == 1 else 'beyond the image'}; "
                    "the path from the skin is not the one shown",
                )
            )
        slack = path_map.path_clearance_mm(probe.tip_lps_mm, probe.entry_lps_mm, need=radius)
        if slack < radius:
            blocking = path_map.blocking(probe.tip_lps_mm, probe.entry_lps_mm)
            what = blocking.replace("_", " ") if blocking else "an obstacle"
            clearance = path_map.clearances_mm.get(blocking, 0.0) if blocking else 0.0
            risks.append(
                Risk(
                    "unsafe_path",
                    f"{name}: the path comes closer to the {what} than its {clearance:g} mm clearance "
                    f"(short by {radius - slack:.1f} mm)",
                )
            )
    return risks


def plan_unit_as_given(
    anatomy: PlanningAnatomy,
    path_map: PathMap,
    lesion_ids: list[str],
    probes: list[ProbePlan],
    names: list[str],
    settings: PlanSettings,
    freeze_minutes: float,
    unit_id: str,
    progress: Progress | None = None,
) -> UnitPlan:
    """Simulate one planning unit's given probes on the anatomy and judge the result (nothing is moved)."""
    candidate = Candidate(
        probes=probes,
        freeze_minutes=freeze_minutes,
        spacing_mm=None,
        estimated_margin_covered_pct=math.nan,
        estimated_frozen_healthy_ml=math.nan,
        critical_ok=True,
    )
    if progress:
        progress(f"{unit_id}: full simulation of the edited layout ({len(probes)} probes, {freeze_minutes:g} min)", 0.0)
    result, lesion_masks, structures, histories, tissues = simulate_plan(
        anatomy, lesion_ids, candidate, settings, progress=(lambda f: progress(None, f)) if progress else None
    )
    covered = unit_coverage(result, lesion_masks, structures, anatomy, settings)
    covered.risks.extend(path_risks(path_map, probes, names))
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
    worst = min(lesion.min_margin_mm for lesion in covered.lesions)
    simulation = {
        "probes": len(probes),
        "freeze_minutes": freeze_minutes,
        "probe_type": probes[0].probe_id,
        "margin_covered_pct": round(min(lesion.margin_covered_pct for lesion in covered.lesions), 2),
        "min_margin_mm": round(worst, 2) if np.isfinite(worst) else None,
        "margin_met": all(lesion.margin_met for lesion in covered.lesions),
        "elapsed_s": round(result.elapsed_s, 2),
        "layout": "edited",
    }
    spacing = [result.grid.spacing_mm] * 3
    return UnitPlan(
        unit_id,
        lesion_ids,
        candidate,
        result,
        covered,
        lesion_masks,
        {i: margin_shell(m, settings.margin_mm, spacing, structures["liver"]) for i, m in lesion_masks.items()},
        structures,
        histories,
        [simulation],
        exposure=exposure,
        paths=[
            describe_path(path_map, anatomy, p.tip_lps_mm, p.entry_lps_mm, get_probe(p.probe_id).radius_mm)
            for p in probes
        ],
    )


def plan_fixed_layout(
    case: Case,
    probes: Sequence[GivenProbe],
    freeze_minutes: float,
    *,
    settings: PlanSettings = PlanSettings(),
    progress: Progress | None = None,
    uncertainty_samples: int = 0,
    scheduler: str | None = None,
    seed: int = 0,
) -> CasePlan:
    """A full plan of a case with the probes where they were given: simulated, covered and judged.

    The result has the form of `cryoplan.planning.plan_case`'s (written by
    `cryoplan.report.plan_report.write_plan_outputs`); its notes say the layout was edited by hand, its
    risks name every path that breaks a clearance and every margin not met. The only random choices are
    those of the optional uncertainty analysis (`seed`).

    Parameters
    ----------
    case : Case
        A case whose imaging section names the image and its segmentation.
    probes : sequence of GivenProbe
        The layout (`given_probes` reads it from JSON).
    freeze_minutes : float
        Length of each freeze of the protocol (`PlanSettings.protocol`).
    settings : PlanSettings
        Lethal isotherm, margin, clearances, grid and protocol shape; the optimiser's choices are unused.
    progress : callable, optional
        ``progress(label, fraction)`` as in `plan_case`.
    uncertainty_samples : int
        Monte Carlo samples of the uncertainty of each unit's plan (`cryoplan.planning.uncertainty`; 0: none).
    scheduler : str, optional
        Address of the Dask scheduler of the samples; None starts a LocalCluster.
    seed : int
        Seed of the Monte Carlo samples.

    Raises
    ------
    InputError
        A case without imaging, a freeze outside 0–30 min, or a lesion that no probe is nearest to.
    """
    settings = settings.check()
    if uncertainty_samples < 0:
        raise InputError("uncertainty", "a number of samples ≥ 0", uncertainty_samples)
    if not 0 < freeze_minutes <= 30:
        raise InputError("freeze_minutes", "a freeze of more than 0 and at most 30 minutes", freeze_minutes)
    settings = replace(settings, freeze_minutes=(float(freeze_minutes),))
    if progress:
        progress("reading the images", 0.0)
    ct, anatomy, dicom = load_source(case)
    measured, flags = case_with_measured_lesions(case, anatomy=anatomy)
    assessment = assess(measured, imaging_flags=flags).to_dict()
    planning, measurements = planning_anatomy(ct, anatomy)
    path_map = PathMap.build(planning, settings)
    given = list(probes)
    plans = [probe_plan(p) for p in given]
    groups = planning_units(planning, settings.margin_mm)
    units = []
    for number, (lesion_ids, indices) in enumerate(
        zip(groups, units_of_probes(planning, groups, given), strict=True), start=1
    ):
        unit_probes = [plans[i] for i in indices]
        names = [f"P{i + 1}" for i in indices]
        units.append(
            plan_unit_as_given(
                planning, path_map, lesion_ids, unit_probes, names, settings, freeze_minutes, f"U{number}", progress
            )
        )
    sessions = case_sessions(planning, units)
    timing = {"final_simulation_s": float(sum(u.result.elapsed_s for u in units))}
    if uncertainty_samples:
        for unit in units:
            unit.uncertainty = run_uncertainty(
                planning, unit, settings, samples=uncertainty_samples, scheduler=scheduler, seed=seed, progress=progress
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
        [EDITED_LAYOUT_NOTE],
        [w.to_json() for w in warnings],
        sessions=sessions,
    )
