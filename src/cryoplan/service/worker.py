"""The work of a job, as a Dask worker runs it: the assessment, a plan, its uncertainty analysis, or the full
plan of a probe layout edited in the viewer.

Only the workers import this module (`cryoplan.service.jobs` hands them its name): the planner, the thermal
engine and the report writer it loads stay out of the web server's memory.
"""

from __future__ import annotations

from typing import Any

from distributed import get_worker, rejoin, secede

from cryoplan.case import parse_case
from cryoplan.clinical import assess
from cryoplan.errors import InputError
from cryoplan.imaging.case_images import case_with_measured_lesions
from cryoplan.output import atomic_directory, write_json
from cryoplan.planning import plan_case
from cryoplan.planning.fixed_layout import given_probes, plan_fixed_layout
from cryoplan.planning.settings import PlanSettings
from cryoplan.report.plan_report import write_plan_outputs
from cryoplan.service.jobs import JOB_KINDS, PlanOptions


def run_job(
    kind: str,
    case_document: dict[str, Any],
    out_dir: str,
    progress_path: str,
    options: PlanOptions,
    layout: dict[str, Any] | None = None,
) -> str:
    """Run one job in a Dask worker; writes its outputs into `out_dir` and returns its path.

    Parameters
    ----------
    kind : {"assessment", "plan", "uncertainty", "edited_plan"}
        An assessment measures the lesions on the case's images first, as ``cryoplan assess`` does
        (`cryoplan.imaging.case_images.case_with_measured_lesions`). An uncertainty job plans the case
        again (the plan is deterministic: same case, settings and seed give the same probes; with a
        `layout`, the plan of that edited layout) and adds `options.uncertainty_samples` Monte Carlo
        samples (`cryoplan.planning.uncertainty`); its output folder is a plan with its uncertainty
        section. An edited plan simulates the probes of `layout` where they were put
        (`cryoplan.planning.fixed_layout`).
    case_document : dict
        The case file as stored (image paths already pointing at the stored documents).
    out_dir : str
        Final output folder; written atomically.
    progress_path : str
        JSON file updated with {"fraction": 0–1, "message": str} as the job advances.
    options : PlanOptions
        Planning choices of plan and uncertainty jobs.
    layout : dict, optional
        Of an edited plan, and of the uncertainty of one: ``{"probes": [{"type", "tip_lps_mm",
        "entry_lps_mm"}, ...], "freeze_minutes"}``.
    """
    stage = {"label": "reading the case"}

    def progress(label: str | None, fraction: float) -> None:
        """The planning package's convention: a new stage when `label` is a string, progress within it
        otherwise; the page shows the stage and the fraction of it done."""
        if isinstance(label, str):
            stage["label"] = label
        write_json(progress_path, {"schema_version": 1, "fraction": float(fraction), "message": stage["label"]})

    progress("reading the case", 0.0)
    case = parse_case(case_document, "case_document")
    settings = PlanSettings(grid_mm=options.grid_mm)
    with atomic_directory(out_dir) as tmp:
        if kind == "assessment":
            progress("measuring the lesions and assessing eligibility", 0.5)
            measured, flags = case_with_measured_lesions(case)
            write_json(tmp / "assessment.json", assess(measured, imaging_flags=flags).to_dict())
        elif kind == "plan":
            plan = plan_case(case, progress=progress, settings=settings, seed=options.seed)
            write_plan_outputs(plan, tmp, progress=progress)
        elif kind == "edited_plan":
            if layout is None:
                raise InputError("layout", "the edited probe layout of the job")
            probes = given_probes(layout.get("probes") or [], "layout.probes")
            plan = plan_fixed_layout(
                case, probes, float(layout.get("freeze_minutes", 0)), settings=settings, progress=progress
            )
            write_plan_outputs(plan, tmp, progress=progress)
        elif kind == "uncertainty":
            # The Monte Carlo samples are tasks on this same cluster, submitted from here. Leaving the
            # worker's thread pool while this driver runs lets them use its slot: on a cluster of one
            # single-threaded worker, a driver that kept its slot would wait forever for its samples.
            scheduler = get_worker().scheduler.address
            secede()  # type: ignore[no-untyped-call]  # distributed is untyped
            try:
                if layout is None:
                    plan = plan_case(
                        case,
                        uncertainty_samples=options.uncertainty_samples,
                        scheduler=scheduler,
                        progress=progress,
                        settings=settings,
                        seed=options.seed,
                    )
                else:  # the uncertainty of an edited layout: the same probes, planned as they are
                    plan = plan_fixed_layout(
                        case,
                        given_probes(layout.get("probes") or [], "layout.probes"),
                        float(layout.get("freeze_minutes", 0)),
                        settings=settings,
                        progress=progress,
                        uncertainty_samples=options.uncertainty_samples,
                        scheduler=scheduler,
                        seed=options.seed,
                    )
            finally:
                rejoin()  # type: ignore[no-untyped-call]  # distributed is untyped
            write_plan_outputs(plan, tmp, progress=progress)
        else:
            raise InputError("kind", f"one of {list(JOB_KINDS)}", kind)
    progress("done", 1.0)
    return out_dir
