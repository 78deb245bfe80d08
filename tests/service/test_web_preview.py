"""The probe-layout preview: an edited layout freezes on a 2 mm grid in liver; the answer's isotherm volumes
are those of the zones file it writes, the tumour's coverage is read from the case's segmentation, and each path
is re-checked on it (the structures it passes through, and those nearer than their clearance)."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from support.service import CASE_DOCUMENT

pytestmark = [pytest.mark.parametrize("database_url", ["sqlite"], indirect=True), pytest.mark.slow]
TUMOUR_RADIUS_MM = 5.0


def segmentation() -> bytes:
    """A 1 mm label image (RAS affine) with a 10 mm tumour (label 2) at LPS (0, 0, -20) inside liver (1) and a
    portal vein (3) below it."""
    shape = (60, 60, 60)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-30.0, -30.0, -50.0]
    ras = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)
    centre_ras = np.array([0.0, 0.0, -20.0])
    labels = np.ones(shape, dtype=np.uint8)
    labels.reshape(-1)[np.linalg.norm(ras - centre_ras, axis=1) <= TUMOUR_RADIUS_MM] = 2
    # A 4 mm vessel running left-right at LPS y = 20 mm (RAS y = -20), z = -40 mm: below the tumour.
    labels.reshape(-1)[np.linalg.norm((ras - [0.0, -20.0, -40.0])[:, 1:], axis=1) <= 2.0] = 3
    return gzip.compress(nib.Nifti1Image(labels, affine).to_bytes())


def probe(x: float, y: float, kind: str = "1.7mm") -> dict:
    """A probe along +S whose tip is 5 mm beyond the tumour's centre."""
    return {"type": kind, "tip_lps_mm": [x, y, -15.0], "entry_lps_mm": [x, y, -95.0]}


def test_the_preview_freezes_the_layout_and_reads_the_tumour(service):
    document = {**CASE_DOCUMENT, "imaging": {"labels_map": {"liver": 1, "tumour": 2, "portal_vein": 3}}}
    case = service.create_case(document=document, role="clinician")
    h = service.headers("clinician")
    uploaded = service.client.post(
        f"/api/cases/{case['id']}/documents",
        headers=h,
        files={"file": ("labels.nii.gz", segmentation())},
        data={"purpose": "labels"},
    )
    assert uploaded.status_code == 201, uploaded.text
    layout = [probe(6 * np.cos(a), 6 * np.sin(a)) for a in (0.0, 2.094, 4.189)]
    response = service.client.post(f"/api/cases/{case['id']}/preview", json={"probes": layout}, headers=h)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["schema_version"] == 1 and answer["grid_mm"] == 2.0
    zones_file = service.client.get(answer["isotherms_url"], headers=h)
    image = nib.Nifti1Image.from_bytes(gzip.decompress(zones_file.content))
    zones = np.asarray(image.dataobj)
    voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000
    for level, celsius in enumerate(("0", "-20", "-40"), start=1):
        assert answer["isotherm_volumes_ml"][celsius] == pytest.approx((zones >= level).sum() * voxel_ml, abs=0.06)
    assert (
        answer["isotherm_volumes_ml"]["0"] > answer["isotherm_volumes_ml"]["-20"] > answer["isotherm_volumes_ml"]["-40"]
    )
    # Three probes 6 mm around a 10 mm tumour freeze all of it below -20 °C ...
    assert answer["tumour_covered_pct"] == 100.0
    # ... a probe 40 mm away none of it.
    far = service.client.post(f"/api/cases/{case['id']}/preview", json={"probes": [probe(40.0, 0.0)]}, headers=h)
    assert far.json()["tumour_covered_pct"] == 0.0
    # The paths are re-checked on the segmentation: the three probes, within 6 mm of y = 0, pass the vessel by ...
    assert [p["crossed"] for p in answer["paths"]] == [[], [], []]
    assert answer["paths"][0]["length_mm"] == 80.0
    # ... a probe inserted along S at y = 20 mm goes through it.
    crossing = service.client.post(
        f"/api/cases/{case['id']}/preview", json={"probes": [probe(0.0, 20.0)]}, headers=h
    ).json()
    assert crossing["paths"][0]["crossed"] == ["portal vein"]
    # The clearances the planner keeps are checked too: 5 mm from the vessel's axis, its voxel centres are 3 mm
    # from the probe's, within the 3 mm clearance plus the probe's radius; 10 mm away they are not.
    assert [p["too_close"] for p in answer["paths"]] == [[], [], []]
    near = service.client.post(f"/api/cases/{case['id']}/preview", json={"probes": [probe(0.0, 15.0)]}, headers=h)
    assert near.json()["paths"][0]["crossed"] == []
    assert near.json()["paths"][0]["too_close"] == [
        {"structure": "portal vein", "distance_mm": 3.0, "clearance_mm": 3.0}
    ]
    clear = service.client.post(f"/api/cases/{case['id']}/preview", json={"probes": [probe(0.0, 10.0)]}, headers=h)
    assert clear.json()["paths"][0]["too_close"] == []

    refused = service.client.post(
        f"/api/cases/{case['id']}/preview", json={"probes": [probe(0, 0, kind="laser")]}, headers=h
    )
    assert refused.status_code == 422 and "probes[0].type" in refused.text
    viewer = service.client.post(
        f"/api/cases/{case['id']}/preview", json={"probes": layout}, headers=service.headers("viewer")
    )
    assert viewer.status_code == 403
    assert io.BytesIO(zones_file.content).read(2) == b"\x1f\x8b"
