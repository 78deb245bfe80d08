"""The case page shows a finished plan's numbers, figures and lethal-isotherm overlay, and a job's files are
served only from inside its output folder."""

from __future__ import annotations

import json

from starlette.testclient import TestClient
from support.service import browser_login

from cryoplan.output import write_json
from cryoplan.service.models import Job


def finished_plan_job(service, case_id: int) -> int:
    """A plan job row marked done, with outputs in the layout cryoplan.report.plan_report writes."""
    with service.client.app.state.sessions() as db:
        job = Job(
            case_id=case_id, kind="plan", status="done", attempts=1, progress_fraction=1.0, case_version=1, created_by=1
        )
        db.add(job)
        db.commit()
        job_id = job.id
    out = service.client.app.state.runner.output_dir(job_id)
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "coverage_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (out / "isotherm_minus40c.nii.gz").write_bytes(b"\x1f\x8b")
    write_json(
        out / "plan.json",
        {
            "schema_version": 1,
            "settings": {"lethal_isotherm_c": -40.0, "margin_mm": 5.0},
            "lesions": [
                {
                    "id": "L1",
                    "probes": [
                        {"type": "17g-rod", "tip_lps_mm": [1, 2, 3]},
                        {"type": "17g-rod", "tip_lps_mm": [4, 5, 6]},
                    ],
                    "coverage": {"tumour_covered_pct": 100.0, "margin_covered_pct": 98.7, "min_margin_mm": 4.2},
                }
            ],
            "liver_volume_ml": 1523.4,
            "frozen_volume_ml": 61.2,
            "frozen_liver_ml": 48.9,
            "frozen_liver_fraction": 0.0321,
            "notes": [],
            "outputs": {"figures": ["figures/coverage_curve.png"]},
        },
    )
    return job_id


def test_case_page_shows_the_plan(service):
    case = service.create_case()
    job_id = finished_plan_job(service, case["id"])
    client = TestClient(service.client.app)
    browser_login(client, "viewer")
    page = client.get(f"/cases/{case['id']}").text
    for shown in (
        "-40.0 °C",
        "61.2 ml",
        "3.2 %",  # the frozen liver fraction, 0.0321
        '<td class="margin-covered">98.7 %</td>',
        "<td>4.2 mm</td>",
        f'src="/api/jobs/{job_id}/files/figures/coverage_curve.png"',
    ):
        assert shown in page, shown
    report = client.get(f"/api/cases/{case['id']}/report.html").text
    assert '<td class="margin-covered">98.7 %</td>' in report
    figure = client.get(f"/api/jobs/{job_id}/files/figures/coverage_curve.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    plan = client.get(f"/api/jobs/{job_id}/files/plan.json")
    assert json.loads(plan.content)["frozen_volume_ml"] == 61.2


def test_case_page_overlays_the_lethal_isotherm_on_the_ct(service, shared_data):
    case = service.create_case()
    job_id = finished_plan_job(service, case["id"])
    ct = (shared_data / "02_totalseg_ct_sm_vessels" / "example_ct_sm.nii.gz").read_bytes()
    service.client.post(
        f"/api/cases/{case['id']}/documents",
        headers=service.headers("coordinator"),
        files={"file": ("ct.nii.gz", ct)},
        data={"purpose": "ct"},
    )
    client = TestClient(service.client.app)
    browser_login(client, "viewer")
    page = client.get(f"/cases/{case['id']}").text
    assert f'data-isotherm-url="/api/jobs/{job_id}/files/isotherm_minus40c.nii.gz"' in page
    assert 'data-ct-url="/api/cases/' in page


def test_job_files_outside_the_output_folder_are_not_served(service):
    case = service.create_case()
    job_id = finished_plan_job(service, case["id"])
    (service.data_dir / "secret.txt").write_text("secret")
    h = service.headers("admin")
    for name in (
        "../../secret.txt",
        "..%2F..%2Fsecret.txt",
        "figures/../../../secret.txt",
        "/etc/passwd",
        "a/b/c.png",
        "%2e%2e/%2e%2e/secret.txt",
    ):
        response = service.client.get(f"/api/jobs/{job_id}/files/{name}", headers=h)
        # Clients normalise some of these paths before sending, landing on other routes: never a 2xx.
        assert 400 <= response.status_code < 500, (name, response.status_code)
        assert response.content != b"secret"


def test_case_list_page_links_to_the_next_and_previous_pages(service):
    for n in range(5):
        service.create_case(f"Referral {n:04d} Tromsø")
    service.create_case("Referral 9999 Oslo")
    client = TestClient(service.client.app)
    browser_login(client, "viewer")
    first = client.get("/", params={"search": "Tromsø", "size": 2}).text
    assert "Page 1 of 3 (5 cases)" in first
    assert first.count('<a href="/cases/') == 2
    assert 'rel="prev"' not in first
    assert 'rel="next" href="/?status=&amp;search=Troms%C3%B8&amp;size=2&amp;page=2"' in first
    last = client.get("/", params={"search": "Tromsø", "size": 2, "page": 3}).text
    assert "Page 3 of 3 (5 cases)" in last and last.count('<a href="/cases/') == 1
    assert "Referral 0000 Tromsø" in last  # the oldest, alone on the last page
    assert 'rel="prev" href="/?status=&amp;search=Troms%C3%B8&amp;size=2&amp;page=2"' in last
    assert 'rel="next"' not in last
    assert client.get("/", params={"size": 500}).status_code == 422


def test_jobs_of_a_closed_case_are_hidden_from_viewers_like_the_case(service):
    case = service.create_case()
    job_id = finished_plan_job(service, case["id"])
    viewer, clinician = service.headers("viewer"), service.headers("clinician")
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/files/plan.json"):
        assert service.client.get(path, headers=viewer).status_code == 200, path
    closed = service.client.post(
        f"/api/cases/{case['id']}/status",
        headers=service.headers("coordinator"),
        json={"to_status": "closed", "reason": "withdrawn", "version": 1},
    )
    assert closed.status_code == 200
    for path in (f"/api/cases/{case['id']}", f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/files/plan.json"):
        assert service.client.get(path, headers=viewer).status_code == 404, path
        assert service.client.get(path, headers=clinician).status_code == 200, path
