"""The planning job on a real Dask LocalCluster through a live server, once the planning package exports
`plan_case`: a phantom CT with one 20 mm tumour (cryoplan.imaging.phantom) is uploaded, planned, and the
plan, its figures and its lethal-isotherm overlay appear on the case page.

The assessment job and the job machinery (resume or fail after a kill) are tested in test_reliability.py.
"""

from __future__ import annotations

import httpx
import pytest
from service_support import CASE_DOCUMENT
from test_reliability import start_with_users, wait_for_job


@pytest.mark.slow  # a full plan: about 4–9 minutes on the 2-core machine (measured with the pipeline of 05:40)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_plan_job_on_a_phantom(live_server, tmp_path):
    from cryoplan.service.jobs import planning_available

    if not planning_available():
        pytest.skip("cryoplan.planning.plan_case is not exported yet (the planning package lands after the service)")
    from cryoplan.imaging import write_nifti
    from cryoplan.imaging.phantom import TumourSpec, make_phantom

    phantom = make_phantom([TumourSpec((-40.0, -10.0, 0.0), 20.0)], spacing_mm=3.0, seed=0)
    write_nifti(phantom.ct, tmp_path / "ct.nii.gz")
    write_nifti(phantom.labels, tmp_path / "labels.nii.gz")

    server = start_with_users(live_server)
    headers = server.token("clinician")
    document = {**CASE_DOCUMENT, "imaging": {"labels_map": phantom.label_map}}
    case = httpx.post(f"{server.url}/api/cases", json={"label": "phantom plan", "case_document": document},
                      headers=headers).json()
    for purpose in ("ct", "labels"):
        with open(tmp_path / f"{purpose}.nii.gz", "rb") as handle:
            uploaded = httpx.post(f"{server.url}/api/cases/{case['id']}/documents", headers=headers,
                                  data={"purpose": purpose}, files={"file": (f"{purpose}.nii.gz", handle)})
        assert uploaded.status_code == 201, uploaded.text
    job = httpx.post(f"{server.url}/api/cases/{case['id']}/jobs", json={"kind": "plan"}, headers=headers,
                     timeout=60).json()
    finished = wait_for_job(server, headers, job["id"], timeout_s=1500)
    assert finished["status"] == "done", finished
    plan = httpx.get(f"{server.url}/api/jobs/{job['id']}/files/plan.json", headers=headers).json()
    assert plan["schema_version"] == 1 and [lesion["id"] for lesion in plan["lesions"]] == ["L1"]
    report = httpx.get(f"{server.url}/api/cases/{case['id']}/report.html", headers=headers).text
    assert "No finished plan." not in report
    assert f"{plan['frozen_volume_ml']} ml" in report
    figure = httpx.get(f"{server.url}/api/jobs/{job['id']}/files/{plan['outputs']['figures'][0]}", headers=headers)
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
