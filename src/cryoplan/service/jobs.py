"""Background jobs on Dask: the assessment, the plan, its uncertainty analysis and the full plan of a probe
layout edited in the viewer (the work itself is `cryoplan.service.worker`, which only the workers import).

A job row is marked running (attempt n) before it is handed to Dask, outputs are written to a temporary
folder and renamed (so a stopped job leaves nothing half-written), and progress goes to a small JSON file
that the pages poll. At start, `JobRunner.recover` finds jobs a stopped server left queued or running and
resumes them (runs them again) while attempts remain, or marks them failed with the reason.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from distributed import Client, LocalCluster
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cryoplan.errors import InputError
from cryoplan.output import write_json
from cryoplan.service import store
from cryoplan.service.audit import Actor, audit
from cryoplan.service.deps import transaction
from cryoplan.service.models import PLAN_KINDS, Case, Job, JobStatus, utcnow

JOB_KINDS = ("assessment",) + PLAN_KINDS
# Kinds started from the job form; an edited plan starts from the viewer, with its probe layout.
FORM_JOB_KINDS = ("assessment", "plan", "uncertainty")
# An absolute path of two or more parts, as error messages of readers and writers quote them.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[^\s'\"/:,;()\[\]]+){2,}/?")
logger = logging.getLogger("cryoplan.service.jobs")


def public_error(error: BaseException) -> str:
    """A job's error as its users see it: the type and message with every absolute path cut to its last
    part, so that the server's folders and files are not disclosed (the full text goes to the log)."""
    text = f"{type(error).__name__}: {error}"
    return _ABSOLUTE_PATH.sub(lambda match: "…/" + PurePosixPath(match.group()).name, text)[:2000]


def job_kinds() -> list[str]:
    """The kinds of job the case page's job form offers."""
    return list(FORM_JOB_KINDS)


@dataclass(frozen=True)
class PlanOptions:
    """The installation's planning choices (`ServiceSettings.plan_options`), passed to every job.

    Attributes
    ----------
    grid_mm : float
        Grid spacing of the plan's final full simulation (`PlanSettings.grid_mm`).
    uncertainty_samples : int
        Monte Carlo samples of an uncertainty job.
    seed : int
        Seed of the plan's and the Monte Carlo's random choices, so a job rerun gives the same numbers.
    """

    grid_mm: float
    uncertainty_samples: int
    seed: int


def run_in_worker(*args: Any) -> str:
    """`cryoplan.service.worker.run_job`, imported here, in the Dask worker, and not at the top: the web
    server then never loads the planner, the thermal engine's planning side and the report writer (the
    server's idle memory; measured in docs/service.md)."""
    from cryoplan.service.worker import run_job  # heavy, and needed by the workers only

    return run_job(*args)


class JobRunner:
    """Submits jobs to Dask (a LocalCluster started on first use, or the configured scheduler) and keeps
    the job rows up to date."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        data_dir: Path,
        scheduler: str | None,
        workers: int,
        max_attempts: int,
        prepare_document: Callable[[Session, Case], dict[str, Any]],
        plan_options: PlanOptions,
    ):
        self._sessions = sessions
        self._plan_options = plan_options
        self._jobs_dir = data_dir / "jobs"
        self._scheduler = scheduler
        self._workers = workers
        self._max_attempts = max_attempts
        self._prepare_document = prepare_document
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._lock = threading.Lock()
        self._futures: dict[int, object] = {}
        self._closing = False

    def output_dir(self, job_id: int) -> Path:
        return self._jobs_dir / str(job_id)

    def layout_path(self, job_id: int) -> Path:
        """The probe layout of an edited plan job (or of the uncertainty of one), kept beside its output so that
        a resumed job finds it."""
        return self._jobs_dir / f"{job_id}.layout.json"

    def progress(self, job: Job) -> dict[str, Any]:
        """The latest progress report of a job: {"fraction", "message"}."""
        if job.status == JobStatus.done.value:
            return {"fraction": 1.0, "message": "done"}
        path = self._jobs_dir / f"{job.id}.progress.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            return {"fraction": report["fraction"], "message": report["message"]}
        except (OSError, ValueError, KeyError):
            return {"fraction": 0.0, "message": job.status}

    def _dask_client(self) -> Client:
        with self._lock:
            if self._client is None:
                if self._scheduler:
                    self._client = Client(self._scheduler)  # type: ignore[no-untyped-call]  # distributed is untyped
                else:
                    self._cluster = LocalCluster(  # type: ignore[no-untyped-call]  # distributed is untyped
                        n_workers=self._workers, threads_per_worker=1, processes=True, dashboard_address=None
                    )
                    self._client = Client(self._cluster)  # type: ignore[no-untyped-call]  # distributed is untyped
            return self._client

    @staticmethod
    def start(job: Job) -> None:
        """Mark `job` running (one more attempt) in the caller's transaction; `dispatch` then hands it to Dask."""
        job.status = JobStatus.running.value
        job.attempts += 1
        job.error = None

    def dispatch(self, job_id: int) -> None:
        """Hand a job marked running to Dask from a background thread (starting the cluster can take seconds)."""
        threading.Thread(target=self._submit, args=(job_id,), daemon=True, name=f"job-{job_id}").start()

    def _submit(self, job_id: int) -> None:
        try:
            with self._sessions() as db:
                job = db.get_one(Job, job_id)
                case = db.get_one(Case, job.case_id)
                document = self._prepare_document(db, case)
                kind = job.kind
            self._jobs_dir.mkdir(parents=True, exist_ok=True)
            path = self.layout_path(job_id)
            layout = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
            future = self._dask_client().submit(
                run_in_worker,
                kind,
                document,
                str(self.output_dir(job_id)),
                str(self._jobs_dir / f"{job_id}.progress.json"),
                self._plan_options,
                layout,
                pure=False,
                key=f"cryoplan-job-{job_id}-{utcnow().timestamp()}",
            )
        except Exception as error:  # noqa: BLE001  (recorded on the job, never lost)
            self._finish(job_id, error)
            return
        self._futures[job_id] = future
        future.add_done_callback(  # type: ignore[no-untyped-call]  # distributed is untyped
            lambda f: self._finish(job_id, None if f.status == "finished" else f.exception())
        )

    def _finish(self, job_id: int, error: BaseException | None) -> None:
        self._futures.pop(job_id, None)
        if self._closing:  # the server is stopping: the job stays running, to be resumed at the next start
            return
        with self._sessions() as db:
            job = db.get(Job, job_id)
            if job is None or job.status != JobStatus.running.value:
                return
            job.status = JobStatus.failed.value if error else JobStatus.done.value
            if error:
                logger.warning("job %s failed: %s: %s", job_id, type(error).__name__, error)
            job.error = public_error(error) if error else None
            job.progress_fraction = 0.0 if error else 1.0
            job.finished_at = utcnow()
            audit(db, None, "job_" + job.status, "job", job.id, job.case_id, detail=job.error or job.kind)
            db.commit()

    def recover(self) -> None:
        """Resume jobs that a stopped server left queued or running, or mark them failed when their attempts
        are spent; each outcome is written to the audit log."""
        resumed = []
        with self._sessions() as db:
            stale = db.scalars(select(Job).where(Job.status.in_([JobStatus.queued.value, JobStatus.running.value])))
            for job in stale:
                if job.attempts >= self._max_attempts:
                    job.status = JobStatus.failed.value
                    job.error = (
                        f"the server stopped during the job; not resumed after {job.attempts} "
                        f"attempt(s) (CRYOPLAN_JOB_MAX_ATTEMPTS={self._max_attempts})"
                    )
                    job.finished_at = utcnow()
                    audit(db, None, "job_failed", "job", job.id, job.case_id, detail=job.error)
                else:
                    self.start(job)
                    audit(db, None, "job_resumed", "job", job.id, job.case_id, detail=f"attempt {job.attempts}")
                    resumed.append(job.id)
            db.commit()
        for job_id in resumed:
            self.dispatch(job_id)

    def close(self) -> None:
        self._closing = True
        with self._lock:
            if self._client is not None:
                self._client.close()  # type: ignore[no-untyped-call]  # distributed is untyped
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = None


def submit_job(request: Request, actor: Actor, case_id: int, kind: str, layout: dict[str, Any] | None = None) -> Job:
    """Record a job as running and hand it to Dask (shared by the API and the pages); an edited plan
    takes its probe layout (``{"probes": [...], "freeze_minutes": m}``), written beside the job's output,
    and the uncertainty analysis of an edited plan takes that plan's layout."""
    if kind not in JOB_KINDS:
        raise InputError("kind", f"one of {list(JOB_KINDS)}", kind)
    if (kind == "edited_plan") != (layout is not None):
        raise InputError("layout", "a probe layout for an edited plan, and for no other job", kind)
    runner = request.app.state.runner
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id, action="start_job")
        store.require_open_case(db, case.id)
        if kind == "uncertainty":
            plan_job = store.latest_plan_job(db, case.id)
            if plan_job is None:
                raise store.NotAllowed(
                    f"case {case.id} has no finished plan: run a plan before its uncertainty analysis"
                )
            if runner.layout_path(plan_job.id).is_file():  # the plan of an edited layout: the same probes again
                layout = json.loads(runner.layout_path(plan_job.id).read_text(encoding="utf-8"))
        job = Job(
            case_id=case.id,
            kind=kind,
            status=JobStatus.queued.value,
            attempts=0,
            progress_fraction=0.0,
            case_version=case.version,
            created_by=actor.user_id,
            created_at=utcnow(),
        )
        db.add(job)
        runner.start(job)
        db.flush()
        if layout is not None:
            runner.layout_path(job.id).parent.mkdir(parents=True, exist_ok=True)
            write_json(runner.layout_path(job.id), {"schema_version": 1, **layout})
        audit(db, actor, "job_started", "job", job.id, case.id, detail=kind)
    runner.dispatch(job.id)
    return job
