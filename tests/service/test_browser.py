"""The pages in Debian's Chromium (Playwright): log in, create a case, upload set 02's CT and labels, run the
assessment, a plan and its uncertainty analysis and see their results on the page, see NiiVue draw the CT,
download the report.

Set 02 has no tumour. The test gives it one: a 22 mm sphere at the deepest point of set 02's liver label,
written into a copy of the label map on set 02's own grid (label 200), and the case's ``labels_map`` names
it ``tumour`` beside set 02's liver, vessels and gallbladder (TotalSegmentator numbers). The skeleton's
many TotalSegmentator labels are merged into one (25) because a ``labels_map`` takes one value per
structure; nothing else of the label map changes. The plan and the uncertainty run for real
(`cryoplan.planning.plan_case` in the server's Dask job), on a 2 mm final grid with 4 Monte Carlo samples
(CRYOPLAN_PLAN_GRID_MM, CRYOPLAN_UNCERTAINTY_SAMPLES) to keep the test short.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from support.browser import launch_browser
from support.service import CASE_DOCUMENT, PASSWORD
from support.set02_tumour import LABELS_MAP, TUMOUR_DIAMETER_MM, labels_with_tumour

SAMPLES = 4

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    yield from launch_browser()


def wait_for_jobs(page, timeout_s: float = 240) -> list[str]:
    """Wait until no job on the case page is queued or running (the page polls the job status and updates
    its job table in place); returns the progress messages the page showed meanwhile."""
    import time

    deadline = time.monotonic() + timeout_s
    seen = []
    while True:
        assert time.monotonic() < deadline, "jobs did not finish"
        page.wait_for_timeout(500)
        state = page.evaluate("""() => ({
            pending: document.querySelectorAll('[data-job-status="running"], [data-job-status="queued"]').length,
            polling: document.getElementById("jobs-panel").dataset.polling === "true",
            messages: [...document.querySelectorAll('[data-job-status="running"] .job-message')].map(e => e.textContent),
        })""")
        seen += state["messages"]
        if not state["pending"] and not state["polling"]:
            return seen


def run_job(page, kind: str, timeout_s: float = 240) -> list[str]:
    """Start a job from the case page, wait for it, and check it finished; returns its progress messages."""
    jobs_before = page.locator("#jobs tbody tr[data-job-id]").count()
    page.select_option("#job-kind", kind)
    page.click('#job-form button[type="submit"]')
    page.wait_for_function(
        f"() => document.querySelectorAll('#jobs tbody tr[data-job-id]').length === {jobs_before + 1}", timeout=30_000
    )
    seen = wait_for_jobs(page, timeout_s)
    newest = page.locator("#jobs tbody tr").first
    assert newest.locator(".job-kind").get_attribute("data-kind") == kind
    assert newest.locator(".job-status").inner_text() == "done", newest.inner_text()
    return seen


def figures_drawn(page) -> dict[str, int]:
    """The plan figures on the page with the width the browser decoded for each (0: not drawn), once each has
    finished loading (a plan panel swapped in when a job finishes loads its figures afterwards)."""
    page.wait_for_function("() => [...document.querySelectorAll('#plan img.figure')].every(i => i.complete)")
    return page.eval_on_selector_all(
        "#plan img.figure",
        "images => Object.fromEntries(images.map(i => [i.getAttribute('src'), i.complete ? i.naturalWidth : 0]))",
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_case_review_in_the_browser(browser, live_server, shared_data, tmp_path):
    data = shared_data / "02_totalseg_ct_sm_vessels"
    tumour_voxels = labels_with_tumour(data / "example_seg.nii.gz", tmp_path / "example_seg_with_tumour.nii.gz")
    server = live_server(CRYOPLAN_PLAN_GRID_MM="2", CRYOPLAN_UNCERTAINTY_SAMPLES=str(SAMPLES))
    assert server.cli("users", "create", "nora", "--role", "clinician", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    page = browser.new_page(viewport={"width": 1280, "height": 2000}, accept_downloads=True)
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    page.fill('input[name="username"]', "nora")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(server.url + "/")

    page.click("text=New case")
    page.click("details.advanced summary")  # the JSON view of the case form
    page.fill('#json-form input[name="label"]', "Browser test patient")
    lesion = {**CASE_DOCUMENT["lesions"][0], "diameter_mm": TUMOUR_DIAMETER_MM}
    document = {**CASE_DOCUMENT, "lesions": [lesion], "imaging": {"labels_map": LABELS_MAP}}
    page.fill('#json-form textarea[name="case_document"]', json.dumps(document))
    page.click('#json-form button[type="submit"]')
    page.wait_for_url("**/cases/*")
    assert page.locator("h1").inner_text().endswith("Browser test patient")
    assert "Verdict:" in page.locator("#assessment").inner_text()

    for purpose, path in (
        ("ct", data / "example_ct_sm.nii.gz"),
        ("labels", tmp_path / "example_seg_with_tumour.nii.gz"),
    ):
        page.select_option('#upload-form select[name="purpose"]', purpose)
        page.set_input_files('#upload-form input[type="file"]', str(path))
        page.click('#upload-form button[type="submit"]')
        page.wait_for_load_state()
        assert path.name in page.locator("#documents").inner_text()

    run_job(page, "assessment")
    assert page.locator("#plan").inner_text().count("No finished plan.") == 1

    progress = run_job(page, "plan", timeout_s=900)
    plan_text = page.locator("#plan").inner_text()
    assert "No finished plan." not in plan_text
    row = page.locator("#plan table.coverage tbody tr").first.locator("td")
    assert row.nth(0).inner_text() == "L1" and int(row.nth(1).inner_text()) >= 1
    margin_covered = page.locator("#plan table.coverage tbody tr").first.locator(".margin-covered").inner_text()
    assert margin_covered.endswith(" %") and 0.0 <= float(margin_covered[:-2]) <= 100.0, margin_covered
    assert "not analysed" in row.nth(4).inner_text()
    assert page.locator("#plan table.probes tbody tr").count() == int(row.nth(1).inner_text())
    plan_json = page.locator('#plan a:has-text("plan.json")').get_attribute("href")
    imaging = page.request.get(server.url + plan_json).json()["lesions"][0]["imaging"]
    assert imaging["voxel_count"] == tumour_voxels  # the tumour planned is the synthetic sphere
    assert abs(imaging["max_diameter_mm"] - TUMOUR_DIAMETER_MM) <= 3.0  # within a voxel of 3 mm
    drawn = figures_drawn(page)
    assert len(drawn) >= 4 and all(width > 0 for width in drawn.values()), drawn
    # The viewer is left as it is while jobs finish; opened again, it draws the new plan's isotherms.
    assert "newer plan" in page.inner_text("#viewer-status")
    page.reload()
    assert page.locator("canvas#viewer").get_attribute("data-isotherm-url").endswith("isotherm_minus20c.nii.gz")

    progress += run_job(page, "uncertainty", timeout_s=900)
    row = page.locator("#plan table.coverage tbody tr").first.locator("td")
    assert f"{SAMPLES} Monte Carlo samples" in row.nth(4).inner_text()
    probability = float(page.locator("#plan .probability-of-success").first.inner_text())
    assert probability in {k / SAMPLES for k in range(SAMPLES + 1)}
    drawn = figures_drawn(page)
    probability_maps = [src for src in drawn if src.endswith("_probability.png")]
    assert probability_maps and all(drawn[src] > 0 for src in probability_maps), drawn
    # The page showed each job's stage while it ran.
    assert any(message.startswith("U1:") for message in progress), progress

    canvas = page.locator("canvas#viewer")
    page.wait_for_selector("canvas#viewer[data-loaded]", state="attached", timeout=60_000)
    assert canvas.get_attribute("data-loaded") == "true", (page.locator("#viewer-status").inner_text(), console)
    page.wait_for_timeout(1000)
    from matplotlib.image import imread

    screenshot = canvas.screenshot(path=str(tmp_path / "viewer.png"))  # kept beside the test's files
    pixels = imread(io.BytesIO(screenshot), format="png")[..., :3]
    lit = (pixels.max(axis=-1) > 0.1).mean()
    assert lit > 0.05, f"only {lit:.1%} of the viewer's pixels are drawn"
    assert np.unique(pixels.reshape(-1, 3).round(2), axis=0).shape[0] > 50  # grey levels of a CT, not a flat fill

    with page.expect_download() as download_info:
        page.click("#report-pdf")
    report = tmp_path / "report.pdf"
    download_info.value.save_as(report)
    assert report.read_bytes().startswith(b"%PDF")
    assert report.stat().st_size > 5000
    report_html = page.request.get(server.url + page.locator('a:has-text("Report (HTML)")').get_attribute("href"))
    assert report_html.ok and f"{SAMPLES} Monte Carlo samples" in report_html.text()
