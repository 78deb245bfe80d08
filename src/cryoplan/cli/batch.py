"""`cryoplan batch`: assess (and plan) a cohort of cases on Dask, past bad cases, with a summary table.

Each case runs as one Dask task (`run_case`) on a LocalCluster, or on the workers of an external
scheduler (``--scheduler tcp://HOST:PORT``) once every worker is checked to run this cryoplan version.
A case that cannot be read or planned gives an error row instead of outputs; the others go on. The
folder gets one sub-folder per case (``assessment.json``, and the plan's outputs under ``plan/``) and
``summary.json`` (schema: ``cryoplan schema batch``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from dask.distributed import Client, LocalCluster, as_completed, get_worker
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cryoplan import __version__
from cryoplan.cli.app import app
from cryoplan.cli.assess import assess_file
from cryoplan.cli.display import progress_display
from cryoplan.errors import InputError
from cryoplan.output import write_json
from cryoplan.planning import plan_case
from cryoplan.planning.settings import PlanSettings
from cryoplan.report.plan_report import write_plan_outputs

#: Workers of a LocalCluster when none is given: one process per core of a small machine, one thread each
#: (the kernels use the cores themselves).
DEFAULT_WORKERS = 2


def _worker_address() -> str | None:
    try:
        return get_worker().address
    except ValueError:  # not on a worker (run in the calling process)
        return None


def run_case(path: str, folder: str, plan: bool, settings: PlanSettings, seed: int) -> dict[str, Any]:
    """Assess one case, and plan it when `plan` is set and the case names images; write its outputs.

    Returns the case's row of the summary (`cryoplan.schemas.documents.BatchRow`); bad input and internal
    failures become an error row, so one case never stops the batch.
    """
    started = time.perf_counter()
    row: dict[str, Any] = {
        "case": path,
        "case_id": None,
        "task": "assess",
        "status": "ok",
        "verdict": None,
        "outputs": [],
    }
    error: str | None = None
    try:
        _run_case(Path(path), Path(folder), plan, settings, seed, row)
    except InputError as failure:  # bad input: the case file, its images, or what planning met
        error = str(failure)
    except Exception as failure:  # an internal failure of one case: reported in its row, the batch goes on
        error = f"internal error: {type(failure).__name__}: {failure}"
    if error is not None:
        row.update(status="error", verdict=None, outputs=[])
    row["error"] = error
    row["elapsed_s"] = round(time.perf_counter() - started, 3)
    row["worker"] = _worker_address()
    return row


def _run_case(path: Path, out: Path, plan: bool, settings: PlanSettings, seed: int, row: dict[str, Any]) -> None:
    """Fill `row` with the case's outcome and write its outputs."""
    outcome = assess_file(path)
    row["case_id"], row["verdict"] = outcome.assessment.case_id, outcome.assessment.verdict
    document = outcome.assessment.to_dict()
    if plan and outcome.case.imaging is not None:
        row["task"] = "plan"
        result = plan_case(outcome.record, settings=settings, seed=seed)
        write_plan_outputs(result, out / "plan")
        row["outputs"] = sorted(str(p.relative_to(out.parent)) for p in (out / "plan").rglob("*") if p.is_file())
        document = dict(result.assessment or {}, case_id=row["case_id"])
        row["verdict"] = document["verdict"]
    write_json(out / "assessment.json", [document])
    row["outputs"].insert(0, str((out / "assessment.json").relative_to(out.parent)))


def _cryoplan_version() -> str:
    return __version__


def check_worker_versions(client: Client) -> dict[str, str]:
    """Every worker's cryoplan version; raises `InputError` when one differs from this process's."""
    versions: dict[str, str] = client.run(_cryoplan_version)
    if not versions:
        raise InputError("--scheduler", "a scheduler with at least one worker", "no workers")
    wrong = {address: version for address, version in versions.items() if version != __version__}
    if wrong:
        listed = ", ".join(f"{address} runs {version}" for address, version in sorted(wrong.items()))
        raise InputError("--scheduler", f"workers running cryoplan {__version__}", listed)
    return versions


def _folders(paths: list[Path]) -> list[str]:
    """One output folder name per case: the file's stem, numbered when two files share one."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for path in paths:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def run_batch(
    paths: list[Path],
    out_dir: Path,
    *,
    scheduler: str | None = None,
    workers: int = DEFAULT_WORKERS,
    plan: bool = False,
    settings: PlanSettings | None = None,
    seed: int = 0,
    on_start: Callable[[], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every case on Dask and write ``summary.json``; returns the summary (`BatchSummary`).

    Parameters
    ----------
    paths : list of Path
        Case files or FHIR bundles (on an external cluster, paths every worker can read).
    out_dir : Path
        Folder for the per-case outputs and ``summary.json``.
    scheduler : str, optional
        Address of a Dask scheduler; None starts a LocalCluster of `workers` processes.
    plan : bool
        Plan the cases that name images (their assessment comes from the plan); assess the others.
    settings : PlanSettings, optional
        Planner settings for planned cases.
    seed : int
        Seed of every random choice of the plans.
    on_start, on_done : callable, optional
        ``on_start()`` once the workers are checked and the cases submitted; ``on_done(row)`` after each
        case, in the order they finish (a progress bar).
    """
    if workers < 1:
        raise InputError("--workers", "a number of workers ≥ 1", workers)
    settings = settings if settings is not None else PlanSettings()
    # Workers run in folders of their own: they get absolute paths (on a cluster, paths all workers share).
    out_dir = Path(out_dir).resolve()
    folders = _folders(paths)
    paths = [Path(path).resolve() for path in paths]
    cluster = None
    if scheduler is None:
        # The scheduler serves HTTP even without a dashboard; a free port, so a busy 8787 is no failure.
        # dask.distributed leaves LocalCluster, Client, as_completed and Client.close unannotated
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR
        )
        client = Client(cluster)  # type: ignore[no-untyped-call]
    else:
        try:
            client = Client(scheduler, timeout="10s")  # type: ignore[no-untyped-call]
        except OSError as error:
            raise InputError("--scheduler", "a reachable Dask scheduler address", f"{scheduler} ({error})") from None
    try:
        check_worker_versions(client)
        address = str(client.scheduler_info()["address"])
        futures = {
            client.submit(run_case, str(path), str(out_dir / folder), plan, settings, seed, pure=False): index
            for index, (path, folder) in enumerate(zip(paths, folders, strict=True))
        }
        rows: list[dict[str, Any]] = [{} for _ in paths]
        if on_start is not None:
            on_start()
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            row = future.result()
            rows[futures[future]] = row
            if on_done is not None:
                on_done(row)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()
    ok = sum(row["status"] == "ok" for row in rows)
    summary = {
        "schema_version": 1,
        "cryoplan_version": __version__,
        "scheduler": address,
        "cases": rows,
        "ok_count": ok,
        "error_count": len(rows) - ok,
    }
    write_json(out_dir / "summary.json", summary)
    return summary


@app.command("batch")
def batch_command(
    cases: list[Path] = typer.Argument(..., help="Case files (YAML or JSON) or FHIR R4 Bundles.", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for each case's outputs and summary.json."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a LocalCluster)."
    ),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Worker processes of the LocalCluster."),
    plan: bool = typer.Option(False, "--plan", help="Plan the cases that name images; assess the others."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice of the plans."),
) -> None:
    """Assess (and with --plan, plan) a cohort on Dask; a bad case is reported in the summary, not fatal.

    Exits 2 when any case failed, after every other case has run.
    """
    bar = progress_display(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task("cases", total=len(cases))
    try:
        summary = run_batch(
            cases,
            output,
            scheduler=scheduler,
            workers=workers,
            plan=plan,
            seed=seed,
            on_start=bar.start,  # once the cluster is up: a bad scheduler address stays a one-line error
            on_done=lambda row: bar.update(task, advance=1, description=row["case_id"] or Path(row["case"]).name),
        )
    finally:
        if bar.live.is_started:  # stopping a bar never started prints an empty line
            bar.stop()
    table = Table(
        "case", "task", "status", "verdict", "time", "error", title=f"cryoplan batch ({summary['scheduler']})"
    )
    for row in summary["cases"]:
        table.add_row(
            row["case_id"] or row["case"],
            row["task"],
            row["status"],
            row["verdict"] or "–",
            f"{row['elapsed_s']:.1f} s",
            row["error"] or "",
        )
    screen = Console(markup=False)
    (screen if screen.is_terminal else Console(markup=False, width=160)).print(table)
    typer.echo(f"{summary['ok_count']} ok, {summary['error_count']} failed; summary in {output / 'summary.json'}")
    if summary["error_count"]:
        raise typer.Exit(2)
