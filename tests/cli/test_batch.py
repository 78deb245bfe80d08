"""`cryoplan batch` over 20 cases (the examples and synthetic variants, one bad case in the middle) on a
LocalCluster and on an external `dask scheduler` with two `dask worker`s on loopback; one case is planned
on the phantom at a coarse grid to keep it quick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dask.distributed import Client
from pydantic import TypeAdapter

from cryoplan import __version__
from cryoplan.case import load_case
from cryoplan.cli.app import main
from cryoplan.cli.assess import assess_file, bundled_example_cases
from cryoplan.cli.batch import check_worker_versions, run_batch
from cryoplan.errors import InputError
from cryoplan.imaging import write_nifti
from cryoplan.imaging.phantom import demo_phantom
from cryoplan.planning.settings import PlanSettings
from cryoplan.schemas.documents import AssessmentDocument, BatchSummary
from cryoplan.schemas.planning import PlanDocument

BAD_INDEX = 10
BIN = Path(sys.executable).parent
QUICK_PLAN = PlanSettings(grid_mm=2.0, max_full_simulations=1)  # about 10 s on the phantom
LABEL_MAP = {
    "liver": 1,
    "tumour": 2,
    "hepatic_vein": 3,
    "portal_vein": 4,
    "ivc": 5,
    "aorta": 6,
    "bile_duct": 7,
    "gallbladder": 8,
    "bone": 9,
}


def case_document(**changes) -> dict:
    """The eligible HCC example with top-level fields or dotted paths (``patient.ecog``) changed."""
    source = next(p for p in bundled_example_cases() if p.name == "hcc_eligible.yaml")
    document = yaml.safe_load(source.read_text())
    for path, value in changes.items():
        *parents, last = path.replace("__", ".").split(".")
        node = document
        for part in parents:
            node = node[part]
        node[last] = value
    return document


def _synthetic(folder: Path, count: int) -> list[Path]:
    """Variants of the baseline case: lesion sizes and counts, platelets, ECOG and Child-Pugh inputs."""
    paths = []
    for number in range(count):
        document = case_document(
            **{
                "case_id": f"synthetic-{number:02d}",
                "patient.ecog": number % 3,
                "labs.platelets": {"value": 30 + 15 * number, "unit": "10^9/L"},
                "labs.bilirubin": {"value": 0.8 + 0.3 * (number % 5), "unit": "mg/dL"},
                "lesions": [
                    {"id": f"L{k + 1}", "diameter_mm": 12 + 4 * number + k, "distance_to_bile_duct_mm": 3 + number}
                    for k in range(1 + number % 4)
                ],
            }
        )
        path = folder / f"synthetic-{number:02d}.yaml"
        path.write_text(yaml.safe_dump(document))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[Path]:
    """20 case files: 6 examples, 13 synthetic variants, and a bad one (ECOG 9) in the middle."""
    folder = tmp_path_factory.mktemp("cohort")
    cases = [*bundled_example_cases(), *_synthetic(folder, 13)]
    bad = folder / "bad.yaml"
    bad.write_text(yaml.safe_dump(case_document(patient__ecog=9)))
    cases.insert(BAD_INDEX, bad)
    assert len(cases) == 20
    return cases


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("phantom")
    phantom = demo_phantom(seed=1, spacing_mm=2.0)
    write_nifti(phantom.ct, folder / "ct.nii.gz")
    write_nifti(phantom.labels, folder / "labels.nii.gz")
    document = case_document(
        case_id="phantom",
        lesions=[],
        imaging={"image": "ct.nii.gz", "labels": "labels.nii.gz", "labels_map": LABEL_MAP},
    )
    path = folder / "phantom.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _check_summary(summary: dict, cases: list[Path], out: Path) -> None:
    BatchSummary.model_validate(summary)
    assert json.loads((out / "summary.json").read_text()) == summary
    rows = summary["cases"]
    assert [row["case"] for row in rows] == [str(p.resolve()) for p in cases]  # in the order given
    assert (summary["ok_count"], summary["error_count"]) == (19, 1), [r["error"] for r in rows if r["error"]]
    bad = rows[BAD_INDEX]
    assert bad["status"] == "error" and "patient.ecog: expected less than or equal to 5, got 9" in bad["error"]
    assert bad["outputs"] == [] and not (out / "bad").exists()
    for path, row in zip(cases, rows, strict=True):
        if row is bad:
            continue
        written = TypeAdapter(list[AssessmentDocument]).validate_json((out / row["outputs"][0]).read_text())
        if row["task"] == "assess":  # the same assessment `cryoplan assess` gives
            assert [written[0].model_dump(by_alias=True)] == [assess_file(path).assessment.to_dict()]
        assert row["verdict"] == written[0].verdict and row["worker"].startswith("tcp://127.0.0.1:")


@pytest.mark.slow
def test_batch_on_a_local_cluster_with_one_plan(cohort, phantom_case, tmp_path):
    cases = [*cohort[:-1], phantom_case]  # the last synthetic case gives way to the phantom, planned
    out = tmp_path / "out"
    done = []
    summary = run_batch(cases, out, plan=True, settings=QUICK_PLAN, on_done=done.append)
    assert len(done) == 20 and summary["scheduler"].startswith("tcp://127.0.0.1:")
    _check_summary(summary, cases, out)
    planned = [row for row in summary["cases"] if row["task"] == "plan"]
    assert [row["case_id"] for row in planned] == ["phantom"]
    assert "phantom/plan/plan.json" in planned[0]["outputs"]
    plan = json.loads((out / "phantom" / "plan" / "plan.json").read_text())
    assessment = json.loads((out / "phantom" / "assessment.json").read_text())[0]
    assert plan["assessment"]["verdict"] == assessment["verdict"]
    PlanDocument.model_validate(plan)  # a batch's plan has the one published shape
    # The plan's assessment measures the lesions as `cryoplan assess` does.
    expected = assess_file(phantom_case).assessment.to_dict()
    assert assessment == expected and expected["criteria"][0]["value"] == 1
    assert load_case(phantom_case).lesions == []


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.2)


@pytest.fixture
def external_cluster(tmp_path):
    """A `dask scheduler` and two `dask worker`s on 127.0.0.1, stopped afterwards."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    processes = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0"]
            + ["--scheduler-file", str(scheduler_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        _wait_for(scheduler_file, 60)
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1"]
                    + ["--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp_path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
def test_batch_cli_on_an_external_scheduler(cohort, external_cluster, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    argv = ["cryoplan", "batch", *map(str, cohort), "-o", str(out), "--scheduler", external_cluster]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    assert exited.value.code == 2  # after every other case ran
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scheduler"] == external_cluster
    _check_summary(summary, cohort, out)
    assert len({row["worker"] for row in summary["cases"]}) == 2  # both workers took cases
    assert "19 ok, 1 failed" in captured.out and "patient.ecog" in captured.out


@pytest.mark.slow
def test_workers_on_another_version_are_refused(external_cluster, monkeypatch):
    monkeypatch.setattr("cryoplan.cli.batch.__version__", __version__ + "-other")
    with Client(external_cluster) as client, pytest.raises(InputError) as raised:
        check_worker_versions(client)
    assert raised.value.field == "--scheduler" and f"runs {__version__}" in str(raised.value)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_bad_input(tmp_path, monkeypatch, capsys):
    case = bundled_example_cases()[0]
    argv = ["cryoplan", "batch", str(case), "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "--scheduler" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [(["--workers", "0"], "--workers"), (["--workers", "-2"], "--workers")],
)
def test_bad_batch_options_are_one_line_exit_2_before_anything_runs(tmp_path, cryoplan_cli, options, field):
    out = tmp_path / "out"
    done = cryoplan_cli("batch", bundled_example_cases()[0], "-o", out, *options)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cryoplan: error: {field}:") and "Traceback" not in done.stderr
    assert done.stdout == "" and not out.exists()
