"""Finished plans for the service tests: a plan.json in the layout `cryoplan.report.plan_report` writes, and
a case whose plan job is done, through the app's session or a live server's database."""

from __future__ import annotations

import sqlalchemy
from starlette.testclient import TestClient

from cryoplan.output import write_json
from cryoplan.service.models import Job
from support.service import browser_login

PROBE = {
    "type": "17g-rod",
    "tip_lps_mm": [-18.37, -0.09, 37.65],
    "direction": [0.9688, -0.2468, -0.0212],
    "entry_lps_mm": [-89.58, 18.04, 39.21],
    "path_length_mm": 73.5,
}
PATH = {
    "length_mm": 71.25,
    "angles_deg": {"cranio_caudal": 12.4, "lateral": 81.0},
    "approach": "intercostal",
    "crossed": ["skin", "intercostal_muscle", "liver"],
    "nearest": {"portal_vein": {"distance_mm": 8.2}},
}


def plan_document(probability: float | None, measured_vessel_mm: float) -> dict:
    """A plan.json in the layout cryoplan.report.plan_report writes, with the given outcome."""
    uncertainty = None
    if probability is not None:
        uncertainty = {
            "samples": 50,
            "seed": 7,
            "tip_sigma_mm": 2.0,
            "direction_sigma_deg": 3.0,
            "margin_mm": 5.0,
            "probability_of_success": probability,
            "probability_interval_95": [max(0.0, probability - 0.1), min(1.0, probability + 0.1)],
            "margin_covered_pct": {"median": 98.1, "p05": 93.0, "min": 90.2, "max": 99.9},
        }
    return {
        "schema_version": 1,
        "assessment": {"imaging_flags": []},
        "settings": {"lethal_isotherm_c": -20.0, "margin_mm": 5.0, "confidence": 0.9, "grid_mm": 1.0},
        "lesions": [
            {
                "id": "L1",
                "shared_with": [],
                "imaging": {"max_diameter_mm": 24.6, "distance_to_major_vessel_mm": measured_vessel_mm},
                "probes": [{**PROBE, "path": PATH}, PROBE],
                "probe_spacing_mm": 10.0,
                "protocol": [
                    {"phase": "freeze", "minutes": 15.0},
                    {"phase": "passive_thaw", "minutes": 5.0},
                    {"phase": "freeze", "minutes": 15.0},
                ],
                "coverage": {
                    "lethal_isotherm_c": -20.0,
                    "tumour_covered_pct": 100.0,
                    "margin_mm": 5.0,
                    "margin_covered_pct": 99.62,
                    "min_margin_mm": 3.86,
                    "mean_margin_mm": 7.07,
                    "ice_min_margin_mm": 5.16,
                    "ice_mean_margin_mm": 13.3,
                    "tumour_warmest_min_temperature_c": -42.2,
                    "by_isotherm": [
                        {"isotherm_c": 0.0, "tumour_covered_pct": 100.0, "margin_covered_pct": 100.0},
                        {"isotherm_c": -20.0, "tumour_covered_pct": 100.0, "margin_covered_pct": 99.62},
                        {"isotherm_c": -40.0, "tumour_covered_pct": 100.0, "margin_covered_pct": 61.84},
                    ],
                },
                "critical_structures": {"bile_duct_min_temperature_c": -20.4, "gallbladder_min_temperature_c": None},
                "risks": [{"code": "biloma", "lesion_id": None, "detail": "bile duct reaches -20.4 °C (limit -20 °C)"}],
                "uncertainty": uncertainty,
            }
        ],
        "liver_volume_ml": 1523.4,
        "frozen_volume_ml": 93.5,
        "frozen_liver_ml": 67.9,
        "frozen_liver_fraction": 0.0446,
        "notes": [],
        "outputs": {"figures": []},
    }


def case_with_plan(service, plan: dict) -> tuple[int, TestClient]:
    case = service.create_case()
    with service.client.app.state.sessions() as db:
        job = Job(case_id=case["id"], kind="plan", status="done", attempts=1, case_version=1, created_by=1)
        db.add(job)
        db.commit()
        job_id = job.id
    write_json(service.client.app.state.runner.output_dir(job_id) / "plan.json", plan)
    client = TestClient(service.client.app)
    browser_login(client, "clinician")
    return case["id"], client


def add_finished_plan(server, database_url: str, case_id: int, data_dir) -> int:
    """A finished plan job of the case, as the job runner leaves it (row done, plan.json in its folder)."""
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "INSERT INTO jobs (case_id, kind, status, attempts, progress_fraction, case_version, created_by,"
                " created_at) VALUES (:case, 'plan', 'done', 1, 1.0, 1, 1, CURRENT_TIMESTAMP)"
            ),
            {"case": case_id},
        )
        job_id = connection.execute(sqlalchemy.text("SELECT max(id) FROM jobs")).scalar()
    engine.dispose()
    write_json(data_dir / "jobs" / str(job_id) / "plan.json", plan_document(0.02, 26.9))
    return job_id
