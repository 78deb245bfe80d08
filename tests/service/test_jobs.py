"""Plan and uncertainty jobs on a real Dask LocalCluster through a live server: a phantom CT with one 20 mm
tumour (cryoplan.imaging.phantom) is uploaded and planned, then its uncertainty is analysed; the plan, its
Monte Carlo outcome and its figures are served and reported.

The server runs a local cluster of one single-threaded worker (CRYOPLAN_DASK_WORKERS=1; the default is one per
core), the case where an uncertainty driver
that waited on its own samples from inside a worker would starve them (see `cryoplan.service.jobs`). Plans
use a 2 mm final grid (CRYOPLAN_PLAN_GRID_MM) and 3 Monte Carlo samples to keep the test short.

The assessment job and the job machinery (resume or fail after a kill) are tested in test_reliability.py;
the pages showing plan and uncertainty in test_browser.py.
"""

from __future__ import annotations

import httpx
import pytest
from support.service import CASE_DOCUMENT, start_with_users, wait_for_job

SAMPLES = 3


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_plan_and_uncertainty_jobs_on_a_phantom(live_server, tmp_path):
    from cryoplan.imaging import write_nifti
    from cryoplan.imaging.phantom import TumourSpec, make_phantom

    phantom = make_phantom([TumourSpec((-40.0, -10.0, 0.0), 20.0)], spacing_mm=3.0, seed=0)
    write_nifti(phantom.ct, tmp_path / "ct.nii.gz")
    write_nifti(phantom.labels, tmp_path / "labels.nii.gz")

    server = start_with_users(
        live_server,
        CRYOPLAN_PLAN_GRID_MM="2",
        CRYOPLAN_UNCERTAINTY_SAMPLES=str(SAMPLES),
        CRYOPLAN_PLAN_SEED="7",
        CRYOPLAN_DASK_WORKERS="1",
    )
    headers = server.token("clinician")
    document = {**CASE_DOCUMENT, "imaging": {"labels_map": phantom.label_map}}
    case = httpx.post(
        f"{server.url}/api/cases", json={"label": "phantom plan", "case_document": document}, headers=headers
    ).json()
    for purpose in ("ct", "labels"):
        with open(tmp_path / f"{purpose}.nii.gz", "rb") as handle:
            uploaded = httpx.post(
                f"{server.url}/api/cases/{case['id']}/documents",
                headers=headers,
                data={"purpose": purpose},
                files={"file": (f"{purpose}.nii.gz", handle)},
            )
        assert uploaded.status_code == 201, uploaded.text

    def run(kind: str) -> dict:
        job = httpx.post(f"{server.url}/api/cases/{case['id']}/jobs", json={"kind": kind}, headers=headers, timeout=60)
        assert job.status_code == 202, job.text
        finished = wait_for_job(server, headers, job.json()["id"], timeout_s=900)
        assert finished["status"] == "done", finished
        return finished

    def output(job: dict, name: str) -> httpx.Response:
        response = httpx.get(f"{server.url}/api/jobs/{job['id']}/files/{name}", headers=headers)
        assert response.status_code == 200, (name, response.text)
        return response

    early = httpx.post(f"{server.url}/api/cases/{case['id']}/jobs", json={"kind": "uncertainty"}, headers=headers)
    assert early.status_code == 409 and "no finished plan" in early.json()["detail"]

    plan_job = run("plan")
    plan = output(plan_job, "plan.json").json()
    assert plan["schema_version"] == 1 and [lesion["id"] for lesion in plan["lesions"]] == ["L1"]
    assert plan["settings"]["grid_mm"] == 2.0 and plan["lesions"][0]["simulation_grid_mm"] == 2.0
    assert plan["lesions"][0]["uncertainty"] is None
    figure = output(plan_job, plan["outputs"]["figures"][0])
    assert figure.content.startswith(b"\x89PNG")

    uncertainty_job = run("uncertainty")
    analysed = output(uncertainty_job, "plan.json").json()
    lesion = analysed["lesions"][0]
    # The same case, settings and seed give the same plan: the uncertainty is that of the plan above.
    assert lesion["probes"] == plan["lesions"][0]["probes"]
    assert lesion["coverage"] == plan["lesions"][0]["coverage"]
    uncertainty = lesion["uncertainty"]
    assert uncertainty["samples"] == SAMPLES and uncertainty["seed"] == 7
    assert uncertainty["workers"] == 1  # the service's own one-worker cluster ran the samples
    # The probability is a share of the samples, inside its 95 % interval.
    probability = uncertainty["probability_of_success"]
    low, high = uncertainty["probability_interval_95"]
    assert any(abs(probability - k / SAMPLES) < 1e-3 for k in range(SAMPLES + 1)), probability
    assert low <= probability <= high
    probability_figure = "figures/U1_probability.png"
    assert probability_figure in analysed["outputs"]["figures"]
    assert output(uncertainty_job, probability_figure).content.startswith(b"\x89PNG")

    report = httpx.get(f"{server.url}/api/cases/{case['id']}/report.html", headers=headers).text
    assert f"{analysed['frozen_volume_ml']} ml" in report
    assert f"{uncertainty['samples']} Monte Carlo samples" in report
    progress = httpx.get(f"{server.url}/api/jobs/{uncertainty_job['id']}", headers=headers).json()["progress"]
    assert progress == {"fraction": 1.0, "message": "done"}
