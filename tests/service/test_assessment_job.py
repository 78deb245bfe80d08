"""The service's assessment job measures the lesions on the case's images as ``cryoplan assess`` does, so the two
give the same assessment of the same case (set 02's CT and labels with a 22 mm tumour written into its liver,
whose measured vessel distance disagrees with the typed one)."""

from __future__ import annotations

import html
import json

import pytest
import yaml
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, browser_login
from support.set02_tumour import LABELS_MAP, labels_with_tumour

from cryoplan.cli.assess import assess_file
from cryoplan.service import store
from cryoplan.service.jobs import PlanOptions
from cryoplan.service.models import Case, Job
from cryoplan.service.worker import run_job

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_assessment_job_equals_cryoplan_assess(service, shared_data, tmp_path):
    data = shared_data / "02_totalseg_ct_sm_vessels"
    labels_path = tmp_path / "labels_with_tumour.nii.gz"
    labels_with_tumour(data / "example_seg.nii.gz", labels_path)
    document = {**CASE_DOCUMENT, "case_id": "set02", "imaging": {"labels_map": LABELS_MAP}}
    case = service.create_case("set 02", document=document, role="clinician")
    for purpose, path in (("ct", data / "example_ct_sm.nii.gz"), ("labels", labels_path)):
        uploaded = service.client.post(
            f"/api/cases/{case['id']}/documents",
            headers=service.headers("clinician"),
            files={"file": (path.name, path.read_bytes())},
            data={"purpose": purpose},
        )
        assert uploaded.status_code == 201, uploaded.text
    with service.client.app.state.sessions() as db:
        job_document = store.run_document(db, db.get_one(Case, case["id"]), service.data_dir)
    # The job's work, as a Dask worker runs it, into the output folder of a job row.
    with service.client.app.state.sessions() as db:
        job = Job(case_id=case["id"], kind="assessment", status="done", attempts=1, case_version=1, created_by=1)
        db.add(job)
        db.commit()
        job_id = job.id
    out = service.client.app.state.runner.output_dir(job_id)
    run_job("assessment", job_document, str(out), str(tmp_path / "progress.json"), PlanOptions(2.0, 1, 0))
    from_job = json.loads((out / "assessment.json").read_text(encoding="utf-8"))

    case_file = tmp_path / "set02.yaml"
    case_file.write_text(yaml.safe_dump(job_document), encoding="utf-8")
    from_cli = assess_file(case_file).assessment.to_dict()
    assert from_job == json.loads(json.dumps(from_cli))
    # The images measure the vessel distance at other than the typed 6 mm: the flag says so, which the
    # typed-only assessment of the case page (kept while a case is edited) cannot.
    assert any("vessel" in flag for flag in from_job["imaging_flags"]), from_job["imaging_flags"]
    typed, _ = store.assess_document(document)
    assert typed is not None and typed["imaging_flags"] == []

    # The case page shows the measured assessment, and says so, until the case file is edited.
    client = TestClient(service.client.app)
    browser_login(client, "clinician")
    page = client.get(f"/cases/{case['id']}").text
    assert f"(assessment job {job_id})" in page
    flag = html.escape(from_job["imaging_flags"][0], quote=False)
    assert flag in page, flag
    version = service.client.get(f"/api/cases/{case['id']}", headers=service.headers("clinician")).json()["version"]
    edited = service.client.put(
        f"/api/cases/{case['id']}",
        json={"version": version, "case_document": {**document, "patient": {**document["patient"], "age": 65}}},
        headers=service.headers("clinician"),
    )
    assert edited.status_code == 200, edited.text
    page = client.get(f"/cases/{case['id']}").text
    assert "From the typed values of the case file" in page and flag not in page
