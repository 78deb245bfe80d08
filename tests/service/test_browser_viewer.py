"""The viewer on set 02's CT and labels (with a synthetic tumour) and a plan's isotherm masks: a legend entry
per structure that toggles it, the 0/−20/−40 °C isotherms loaded in their own colours, window presets, the
HU under the crosshair, and the crosshair on the tumour."""

from __future__ import annotations

import io

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


@pytest.fixture
def browser():
    yield from launch_browser()


def canvas_pixels(page) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(page.locator("canvas#viewer").screenshot()), format="png")[..., :3]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_viewer_shows_structures_isotherms_and_the_lesion(
    browser, live_server, database_url, shared_data, tmp_path
):
    data = shared_data / "02_totalseg_ct_sm_vessels"
    labels_path = tmp_path / "labels_with_tumour.nii.gz"
    labels_with_tumour(data / "example_seg.nii.gz", labels_path)
    server = live_server()
    assert server.cli("users", "create", "nora", "--role", "clinician", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    headers = server.token("nora")
    document = {**CASE_DOCUMENT, "imaging": {"labels_map": LABELS_MAP}}
    case = httpx.post(
        server.url + "/api/cases", json={"label": "Viewer", "case_document": document}, headers=headers
    ).json()
    for purpose, path in (("ct", data / "example_ct_sm.nii.gz"), ("labels", labels_path)):
        uploaded = httpx.post(
            server.url + f"/api/cases/{case['id']}/documents",
            headers=headers,
            files={"file": (path.name, path.read_bytes())},
            data={"purpose": purpose},
            timeout=60,
        )
        assert uploaded.status_code == 201, uploaded.text

    # A plan whose isotherms are spheres around the tumour on the CT's own grid, 0 °C the largest.
    image = nib.load(labels_path)
    tumour = np.asarray(image.dataobj) == TUMOUR_LABEL
    centre_vox = np.argwhere(tumour).mean(axis=0)
    spacing = np.asarray(image.header.get_zooms()[:3])
    distance = np.linalg.norm((np.indices(tumour.shape).T - centre_vox).T * spacing[:, None, None, None], axis=0)
    job_id = add_finished_plan(server, database_url, case["id"], tmp_path / "data")
    out = tmp_path / "data" / "jobs" / str(job_id)
    names = []
    for celsius, radius in ((0, 24.0), (-20, 18.0), (-40, 13.0)):
        name = f"isotherm_{abs(celsius)}c.nii.gz".replace("_", "_minus", 1) if celsius else "isotherm_0c.nii.gz"
        nib.save(nib.Nifti1Image((distance <= radius).astype(np.uint8), image.affine), out / name)
        names.append(name)
    plan = plan_document(None, 7.0)
    centre_ras = nib.affines.apply_affine(image.affine, centre_vox)
    plan["lesions"][0]["imaging"]["centroid_lps_mm"] = [-centre_ras[0], -centre_ras[1], centre_ras[2]]
    plan["outputs"] = {"figures": [], "isotherms": names}
    write_json(out / "plan.json", plan)

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    log_in(page, server.url, "nora")
    page.goto(f"{server.url}/cases/{case['id']}")
    page.wait_for_selector("canvas#viewer[data-loaded]", state="attached", timeout=90_000)
    assert page.get_attribute("canvas#viewer", "data-loaded") == "true", (page.inner_text("#viewer-status"), console)
    legend = page.locator("#viewer-legend li")
    assert legend.count() == len(LABELS_MAP) + 3 + 1  # structures, isotherms, probe paths
    assert page.locator("#viewer-legend").inner_text().count("isotherm") == 3
    loaded = page.evaluate("() => window.cryoplanViewer.volumes.map(v => [v.name, v.colormap])")
    assert [name for name, _ in loaded[2:]] == names and len({c for _, c in loaded[2:]}) == 3
    assert "red" not in {c for _, c in loaded[2:]}  # the crosshair's colour

    assert page.get_attribute("canvas#viewer", "data-centred") == "true"
    page.wait_for_function("() => document.getElementById('hu-readout').textContent.includes('tumour')")
    hu = page.inner_text("#hu-readout")
    assert hu.startswith("HU at the crosshair: ") and hu.endswith(", tumour"), hu
    ct_value = float(
        np.asarray(nib.load(data / "example_ct_sm.nii.gz").dataobj)[tuple(np.round(centre_vox).astype(int))]
    )
    assert abs(int(hu.split(": ")[1].split(",")[0]) - ct_value) <= 150  # the CT's HU near the tumour centre

    page.click("#probe-edit summary")  # the probe editor open too
    assert axe_violations(page) == []
    page.select_option("#window-preset", "1800,400")
    assert page.evaluate(
        "() => [window.cryoplanViewer.volumes[0].cal_min, window.cryoplanViewer.volumes[0].cal_max]"
    ) == [
        -500,
        1300,
    ]
    page.select_option("#window-preset", "150,30")
    page.wait_for_timeout(300)
    before = canvas_pixels(page)
    page.locator("#viewer-section").screenshot(path=str(artefacts_dir(tmp_path) / "viewer-desktop.png"))
    page.uncheck('#viewer-legend input[data-structure="tumour"]')
    for name in names:
        page.uncheck(f'#viewer-legend input[data-isotherm="{name}"]')
    page.wait_for_timeout(500)
    after = canvas_pixels(page)
    changed = (np.abs(after - before).max(axis=-1) > 0.05).mean()
    assert changed > 0.002, f"hiding the tumour and the isotherms changed {changed:.2%} of the pixels"

    # Move a probe's tip to the crosshair (on the tumour) and preview the freeze: the tip's fields follow the
    # crosshair, the zones are drawn over the CT and the numbers shown.
    page.click("#centre-lesion")
    page.click("#probe-1-tip-here")
    page.wait_for_function(
        "() => document.getElementById('preview-form').dataset.previewed === 'true'"
        " && window.cryoplanViewer.volumes.some(v => v.name === 'preview.nii.gz')",
        timeout=120_000,
    )
    tip = [float(page.input_value(f"#probe-1-tip-{axis}")) for axis in range(3)]
    centre_lps = plan["lesions"][0]["imaging"]["centroid_lps_mm"]
    assert np.abs(np.subtract(tip, centre_lps)).max() <= max(spacing) + 0.05, (tip, centre_lps)
    result = page.inner_text("#preview-result")
    assert result.startswith("Preview (2 mm grid, ") and "tumour covered" in result and "−20 °C" in result, result
    covered = float(result.split("tumour covered ")[1].split(" %")[0])
    assert covered > 0.0  # a probe's tip at the tumour's centre freezes some of it below the lethal isotherm
