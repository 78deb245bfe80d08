"""Interactive planning in Chromium on set 02's CT and labels (with a 22 mm tumour written into its liver): a probe's
tip dragged on the axial view moves to the point under the pointer (NiiVue's own screen-to-mm mapping), keeps its
height, and the preview re-runs on release with new numbers and zones; "Run full plan" then plans those probes as
they are (an edited_plan job on the server's Dask worker) and the plan panel shows them; the uncertainty analysis
that follows is that of the same edited probes."""

from __future__ import annotations

import time

import httpx
import nibabel as nib
import numpy as np
import pytest
from support.browser import artefacts_dir, axe_violations, launch_browser, log_in
from support.plans import add_finished_plan, plan_document
from support.service import CASE_DOCUMENT, PASSWORD
from support.set02_tumour import LABELS_MAP, TUMOUR_LABEL, labels_with_tumour

from cryoplan.output import write_json

pytestmark = pytest.mark.browser
# Three 17G rods from the patient's right, a direction between the ribs that keeps every clearance.
INSERTION = np.array([0.9854, -0.083, 0.1487]) / np.linalg.norm([0.9854, -0.083, 0.1487])


@pytest.fixture
def browser():
    yield from launch_browser()


def triangle_probes(centre_lps: np.ndarray) -> list[dict]:
    across = [np.cross(INSERTION, [0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])]
    probes = []
    for angle in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
        offset = np.cos(angle) * across[0] / np.linalg.norm(across[0]) + np.sin(angle) * across[1]
        tip = centre_lps + 5.0 * INSERTION + 7.0 * offset
        entry = tip - 80.0 * INSERTION
        probes.append({"type": "17g-rod", "tip_lps_mm": tip.round(2).tolist(), "entry_lps_mm": entry.round(2).tolist()})
    return probes


def tip_inputs(page, n: int) -> list[float]:
    return [float(page.input_value(f"#probe-{n}-tip-{axis}")) for axis in range(3)]


def wait_for_job(page, kind: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert time.monotonic() < deadline, f"the {kind} job did not finish"
        page.wait_for_timeout(1000)
        state = page.evaluate(
            """() => [...document.querySelectorAll('#jobs tbody tr[data-job-id]')].map(r => [
                r.querySelector('.job-kind').dataset.kind, r.dataset.jobStatus,
                r.querySelector('.job-error').textContent])"""
        )
        edited = [s for s in state if s[0] == kind]
        if edited and edited[0][1] in ("done", "failed"):
            assert edited[0][1] == "done", edited[0]
            return


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_drag_a_probe_see_the_preview_and_run_the_full_plan(browser, live_server, database_url, shared_data, tmp_path):
    data = shared_data / "02_totalseg_ct_sm_vessels"
    labels_path = tmp_path / "labels_with_tumour.nii.gz"
    labels_with_tumour(data / "example_seg.nii.gz", labels_path)
    server = live_server(CRYOPLAN_PLAN_GRID_MM="2", CRYOPLAN_DASK_WORKERS="1", CRYOPLAN_UNCERTAINTY_SAMPLES="2")
    assert server.cli("users", "create", "nora", "--role", "clinician", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    headers = server.token("nora")
    document = {**CASE_DOCUMENT, "imaging": {"labels_map": LABELS_MAP}}
    case = httpx.post(server.url + "/api/cases", json={"label": "Drag", "case_document": document}, headers=headers)
    case = case.json()
    for purpose, path in (("ct", data / "example_ct_sm.nii.gz"), ("labels", labels_path)):
        uploaded = httpx.post(
            server.url + f"/api/cases/{case['id']}/documents",
            headers=headers,
            files={"file": (path.name, path.read_bytes())},
            data={"purpose": purpose},
            timeout=60,
        )
        assert uploaded.status_code == 201, uploaded.text
    # A finished plan whose probes surround the tumour: what the editor starts from.
    image = nib.load(labels_path)
    voxels = np.argwhere(np.asarray(image.dataobj) == TUMOUR_LABEL)
    centre_ras = nib.affines.apply_affine(image.affine, voxels.mean(axis=0))
    centre_lps = centre_ras * [-1.0, -1.0, 1.0]
    job_id = add_finished_plan(server, database_url, case["id"], tmp_path / "data")
    plan = plan_document(None, 7.0)
    plan["lesions"][0]["probes"] = triangle_probes(centre_lps)
    plan["lesions"][0]["imaging"]["centroid_lps_mm"] = centre_lps.tolist()
    plan["outputs"] = {"figures": [], "isotherms": []}
    write_json(tmp_path / "data" / "jobs" / str(job_id) / "plan.json", plan)

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    log_in(page, server.url, "nora")
    page.goto(f"{server.url}/cases/{case['id']}")
    page.wait_for_selector("canvas#viewer[data-loaded]", state="attached", timeout=90_000)
    assert page.get_attribute("canvas#viewer", "data-loaded") == "true", (page.inner_text("#viewer-status"), console)
    page.click("#probe-edit summary")
    page.wait_for_selector("#preview-form[data-draggable='true']", state="attached")
    page.click("#preview-form button[type=submit]")
    page.wait_for_function(
        "() => document.getElementById('preview-form').dataset.previewed === 'true'", timeout=120_000
    )
    before_text = page.inner_text("#preview-result")
    before_url = page.get_attribute("#preview-form", "data-preview-url")
    assert "tumour covered" in before_text and "Paths clear" in before_text, before_text

    # The crosshair on P1's tip, so that every slice view passes through it; where NiiVue draws it on the
    # axial view (device pixels) and the page coordinates of that point.
    tip_before = tip_inputs(page, 1)
    start = page.evaluate(
        """(ras) => {
            const nv = window.cryoplanViewer;
            nv.scene.crosshairPos = nv.mm2frac(ras);
            nv.drawScene();
            const at = nv.frac2canvasPosWithTile(nv.mm2frac(ras), nv.sliceTypeAxial);
            const box = nv.canvas.getBoundingClientRect(), dpr = nv.uiData.dpr || 1;
            return {x: box.left + at.pos[0] / dpr, y: box.top + at.pos[1] / dpr,
                    axial: nv.screenSlices[at.tileIndex].axCorSag === 0};
        }""",
        [-tip_before[0], -tip_before[1], tip_before[2]],
    )
    assert start["axial"]
    end = {"x": start["x"] + 30, "y": start["y"] + 12}
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(end["x"], end["y"], steps=6)
    page.mouse.up()
    page.wait_for_function(
        "(old) => { const f = document.getElementById('preview-form');"
        " return f.dataset.previewed === 'true' && f.dataset.previewUrl !== old; }",
        arg=before_url,
        timeout=120_000,
    )
    tip_after = tip_inputs(page, 1)
    # The tip went to the point under the pointer, by NiiVue's own mapping of that canvas position to mm ...
    dropped_ras = page.evaluate(
        """([x, y]) => {
            const nv = window.cryoplanViewer;
            const box = nv.canvas.getBoundingClientRect(), dpr = nv.uiData.dpr || 1;
            return Array.from(nv.frac2mm(nv.canvasPos2frac([(x - box.left) * dpr, (y - box.top) * dpr]))).slice(0, 3);
        }""",
        [end["x"], end["y"]],
    )
    assert abs(tip_after[0] - -dropped_ras[0]) <= 0.6 and abs(tip_after[1] - -dropped_ras[1]) <= 0.6, (
        tip_after,
        dropped_ras,
    )
    # ... keeping its height (the axial view's out-of-plane axis), and it moved by several mm.
    assert tip_after[2] == tip_before[2]
    assert np.hypot(tip_after[0] - tip_before[0], tip_after[1] - tip_before[1]) > 3.0
    assert tip_inputs(page, 2) == [float(v) for v in np.round(plan["lesions"][0]["probes"][1]["tip_lps_mm"], 1)]
    # The crosshair stayed where it was (NiiVue did not take the drag as a click).
    crosshair = page.evaluate(
        "() => Array.from(window.cryoplanViewer.frac2mm(window.cryoplanViewer.scene.crosshairPos))"
    )
    assert np.allclose(crosshair[:3], [-tip_before[0], -tip_before[1], tip_before[2]], atol=1.0)
    after_text = page.inner_text("#preview-result")
    assert after_text != before_text and "tumour covered" in after_text, after_text
    assert page.evaluate("() => window.cryoplanViewer.volumes.some(v => v.name === 'preview.nii.gz')")
    page.locator("#viewer-section").screenshot(path=str(artefacts_dir(tmp_path) / "viewer-dragged-probe.png"))
    assert axe_violations(page) == []

    # The edited layout as a full plan: the job runs, the plan panel swaps in, its probes are the edited ones.
    page.fill("#probe-2-tip-0", "not a number")  # refused with the field named, and nothing started
    page.click("#run-edited-plan")
    page.wait_for_function("() => document.getElementById('edited-plan-result').textContent.includes('could not')")
    assert "probes" in page.inner_text("#edited-plan-result")
    page.fill("#probe-2-tip-0", f"{plan['lesions'][0]['probes'][1]['tip_lps_mm'][0]:.1f}")
    page.click("#run-edited-plan")
    page.wait_for_function("() => document.getElementById('edited-plan-result').textContent.includes('started')")
    wait_for_job(page, "edited_plan")
    page.wait_for_function(
        "() => document.querySelector('#plan-results')?.textContent.includes('placed by hand')", timeout=60_000
    )
    rows = page.locator("#plan table.probes tbody tr")
    assert rows.count() == 3
    shown_tip = [float(v) for v in rows.nth(0).locator("td").nth(3).inner_text().split(",")]
    assert np.allclose(shown_tip, tip_after, atol=0.051), (shown_tip, tip_after)

    # Its uncertainty analysis samples around the same probes (not the optimiser's).
    page.select_option("#job-kind", "uncertainty")
    page.click('#job-form button[type="submit"]')
    page.wait_for_function("() => document.querySelector('#jobs tbody tr .job-kind')?.dataset.kind === 'uncertainty'")
    wait_for_job(page, "uncertainty")
    page.wait_for_selector("#plan .probability-of-success", timeout=60_000)
    rows = page.locator("#plan table.probes tbody tr")
    shown_tip = [float(v) for v in rows.nth(0).locator("td").nth(3).inner_text().split(",")]
    assert np.allclose(shown_tip, tip_after, atol=0.051) and "placed by hand" in page.inner_text("#plan-results")
