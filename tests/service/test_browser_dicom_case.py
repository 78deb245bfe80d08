"""The viewer in Chromium on a case whose CT was uploaded as a DICOM series (set 03, zipped): NiiVue loads the
series' volume with its label map, and the HU under the crosshair on the liver reads as liver."""

from __future__ import annotations

import zipfile

import httpx
import nibabel as nib
import numpy as np
import pytest
from support.browser import artefacts_dir, launch_browser, log_in
from support.service import CASE_DOCUMENT, PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    yield from launch_browser()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_viewer_draws_a_dicom_case(browser, live_server, shared_data, tmp_path):
    data = shared_data / "03_totalseg_dicom_ct_series"
    series_zip = tmp_path / "series.zip"
    with zipfile.ZipFile(series_zip, "w") as archive:
        for path in sorted((data / "dicom").iterdir()):
            archive.write(path, f"dicom/{path.name}")
    server = live_server(CRYOPLAN_MAX_UPLOAD_MB="20")
    assert server.cli("users", "create", "nora", "--role", "clinician", CRYOPLAN_NEW_PASSWORD=PASSWORD).returncode == 0
    server.start()
    headers = server.token("nora")
    document = {**CASE_DOCUMENT, "imaging": {"labels_map": {"liver": 5, "ivc": 63, "portal_vein": 64, "aorta": 52}}}
    case = httpx.post(server.url + "/api/cases", json={"label": "DICOM", "case_document": document}, headers=headers)
    case = case.json()
    for purpose, path in (("ct", series_zip), ("labels", data / "example_seg_dicom.nii.gz")):
        uploaded = httpx.post(
            server.url + f"/api/cases/{case['id']}/documents",
            headers=headers,
            files={"file": (path.name, path.read_bytes())},
            data={"purpose": purpose},
            timeout=60,
        )
        assert uploaded.status_code == 201, uploaded.text
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    log_in(page, server.url, "nora")
    page.goto(f"{server.url}/cases/{case['id']}")
    page.wait_for_selector("canvas#viewer[data-loaded]", state="attached", timeout=90_000)
    assert page.get_attribute("canvas#viewer", "data-loaded") == "true", page.inner_text("#viewer-status")
    assert page.evaluate("() => window.cryoplanViewer.volumes.length") == 2
    assert page.evaluate("() => Array.from(window.cryoplanViewer.volumes[0].dims.slice(1, 4))") == [512, 512, 20]
    # The crosshair on a liver voxel of the label map (its RAS position): the readout names the liver, at
    # liver HU (about 89–93 HU in this contrast CT; one voxel, so a wider band).
    labels = nib.load(data / "example_seg_dicom.nii.gz")
    liver = np.argwhere(np.asarray(labels.dataobj) == 5)
    point = nib.affines.apply_affine(labels.affine, liver[len(liver) // 2]).tolist()
    page.evaluate(
        "(ras) => { const nv = window.cryoplanViewer; nv.scene.crosshairPos = nv.mm2frac(ras); nv.drawScene();"
        " nv.createOnLocationChange(); }",
        point,
    )
    page.wait_for_function("() => document.getElementById('hu-readout').textContent.endsWith(', liver')")
    hu = int(page.inner_text("#hu-readout").split(": ")[1].split(",")[0])
    assert 0 <= hu <= 200, hu
    page.locator("#viewer-section").screenshot(path=str(artefacts_dir(tmp_path) / "viewer-dicom-case.png"))
