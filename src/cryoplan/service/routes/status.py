"""Live job status of a case, as JSON: what the case page polls so that only its job panel changes while a
job runs (the page is never reloaded, so text being typed and the viewer stay as they are)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request

from cryoplan.service import store
from cryoplan.service.deps import Id, Reader, transaction
from cryoplan.service.models import Job, JobStatus, utcnow

router = APIRouter(prefix="/api")

JOB_KIND_LABELS = {
    "assessment": "Eligibility assessment",
    "plan": "Probe plan",
    "uncertainty": "Uncertainty analysis of the plan",
    "edited_plan": "Full plan of the edited probes",
}
JOB_STATUS_LABELS = {"queued": "Queued", "running": "Running", "done": "Done", "failed": "Failed"}


def _seconds_since(at: dt.datetime) -> float:
    if at.tzinfo is None:  # SQLite returns naive UTC datetimes
        at = at.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (utcnow() - at).total_seconds())


def job_status_json(job: Job, progress: dict[str, Any]) -> dict[str, Any]:
    """One job as the page shows it: kind, status, the stage it is in and how far through that stage."""
    active = job.status in (JobStatus.queued.value, JobStatus.running.value)
    return {
        "id": job.id,
        "kind": job.kind,
        "kind_label": JOB_KIND_LABELS.get(job.kind, job.kind),
        "status": job.status,
        "status_label": JOB_STATUS_LABELS.get(job.status, job.status),
        "stage": progress["message"],
        "stage_fraction": round(float(progress["fraction"]), 4),
        "elapsed_s": round(_seconds_since(job.created_at), 1) if active else None,
        "attempts": job.attempts,
        "error": job.error,
    }


@router.get("/cases/{case_id}/job-status", summary="The case's jobs with their stage and progress (polled)")
def case_job_status(request: Request, case_id: Id, actor: Reader) -> dict[str, Any]:
    """The jobs of a case, newest first, and the job whose output is the case's plan.

    Polled every few seconds by an open case page, so it is not written to the audit log (it holds no
    patient data: job kinds, stage names and fractions).
    """
    runner = request.app.state.runner
    with transaction(request) as db:
        case = store.peek_case(db, actor, case_id)
        jobs = store.jobs(db, case_id)
        plan_job = store.latest_plan_job(db, case_id)
        return {
            "schema_version": 1,
            "case_id": case_id,
            "case_version": case.version,
            "plan_job_id": None if plan_job is None else plan_job.id,
            "jobs": [job_status_json(job, runner.progress(job)) for job in jobs],
        }
