"""A case whose CT was uploaded as a DICOM series (set 03, JPEG 2000 lossless, zipped): the case page's viewer loads
it as one NIfTI volume on the grid of the series' label map, and jobs read it from the extracted series."""

from __future__ import annotations

import gzip
import re
import zipfile

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.service import CASE_DOCUMENT, Service, browser_login, create_users

from cryoplan.service.app import create_app
from cryoplan.service.models import Case
from cryoplan.service.settings import ServiceSettings
from cryoplan.service.store import run_document

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def service(tmp_path, database_url):
    """The app with upload limits a 20-slice series fits in."""
    settings = ServiceSettings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key="test-secret", max_upload_mb=20.0
    )
    app = create_app(settings)
    tokens = create_users(app)
    with TestClient(app) as client:
        yield Service(client, tokens, settings.data_dir)


def test_the_viewer_shows_a_dicom_case(service, shared_data, tmp_path):
    data = shared_data / "03_totalseg_dicom_ct_series"
    series_zip = tmp_path / "series.zip"
    with zipfile.ZipFile(series_zip, "w") as archive:
        for path in sorted((data / "dicom").rglob("*")):
            if path.is_file():
                archive.write(path, f"dicom/{path.name}")
    labels_map = {"liver": 5, "ivc": 63, "portal_vein": 64, "aorta": 52}
    case = service.create_case("set 03", {**CASE_DOCUMENT, "imaging": {"labels_map": labels_map}}, "clinician")
    h = service.headers("clinician")
    for purpose, path in (("ct", series_zip), ("labels", data / "example_seg_dicom.nii.gz")):
        uploaded = service.client.post(
            f"/api/cases/{case['id']}/documents",
            headers=h,
            files={"file": (path.name, path.read_bytes())},
            data={"purpose": purpose},
        )
        assert uploaded.status_code == 201, uploaded.text
    ct_id = service.client.get(f"/api/cases/{case['id']}/documents", headers=h).json()[0]["id"]

    client = TestClient(service.client.app)
    browser_login(client, "clinician")
    page = client.get(f"/cases/{case['id']}").text
    url = re.search(r'<canvas id="viewer"[^>]*data-ct-url="([^"]+)"', page, re.S).group(1)
    assert url == f"/api/cases/{case['id']}/documents/{ct_id}/volume.nii.gz"
    volume = client.get(url)
    assert volume.status_code == 200, volume.text
    image = nib.Nifti1Image.from_bytes(gzip.decompress(volume.content))
    labels = nib.load(data / "example_seg_dicom.nii.gz")
    # The series' volume and its label map sample the same points (the label map's j axis runs opposite to
    # the DICOM rows, so the grids agree in world space, not index by index) ...
    assert image.shape == labels.shape == (512, 512, 20)
    liver = np.argwhere(np.asarray(labels.dataobj) == 5)
    to_image = np.linalg.inv(image.affine) @ labels.affine
    index = nib.affines.apply_affine(to_image, liver)
    assert np.abs(index - np.round(index)).max() < 0.01
    index = np.round(index).astype(int)
    assert np.all((index >= 0) & (index < image.shape))
    # ... so the liver label reads liver HU on it (about 89–93 HU for this contrast CT).
    liver_hu = np.asarray(image.dataobj)[tuple(index.T)].mean()
    assert 85.0 <= liver_hu <= 97.0, liver_hu
    assert client.get(url).content == volume.content  # written once, then served from the cache

    # Jobs read the same series, from its extracted folder.
    with service.client.app.state.sessions() as db:
        document = run_document(db, db.get_one(Case, case["id"]), service.data_dir)
    folder = document["imaging"]["image"]
    assert folder.endswith(".series") and len(list((service.data_dir / "documents").glob("*.series/*.dcm"))) == 20
    labels_id = service.client.get(f"/api/cases/{case['id']}/documents", headers=h).json()[1]["id"]
    other = client.get(f"/api/cases/{case['id']}/documents/{labels_id}/volume.nii.gz")
    assert other.status_code == 404  # a NIfTI document is served as it is, not converted
