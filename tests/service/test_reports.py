"""The case report (HTML and PDF) and the referral packet with de-identified DICOM."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pydicom
from starlette.testclient import TestClient
from support.service import CASE_DOCUMENT, browser_login

from cryoplan.imaging.deid import deidentify_dataset
from cryoplan.service import store
from cryoplan.service.models import Case


def test_report_html_and_pdf(service):
    case = service.create_case("Report patient")
    h = service.headers("viewer")
    page = service.client.get(f"/api/cases/{case['id']}/report.html", headers=h)
    assert page.status_code == 200
    assert "Report patient" in page.text
    assert f'data-verdict="{case["assessment"]["verdict"]}"' in page.text
    statuses = [f'<tr class="status-{criterion["status"]}">' for criterion in case["assessment"]["criteria"]]
    assert statuses and sum(page.text.count(row) for row in set(statuses)) == len(statuses)
    pdf = service.client.get(f"/api/cases/{case['id']}/report.pdf", headers=h)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"


def identified_series(shared_data, count: int = 3) -> bytes:
    """A zip of real CT slices (set 03) into which identifying attributes were written."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, path in enumerate(sorted((shared_data / "03_totalseg_dicom_ct_series" / "dicom").iterdir())[:count]):
            dataset = pydicom.dcmread(path)
            dataset.PatientName = "Doe^Jane"
            dataset.PatientID = "MRN-0042"
            dataset.PatientBirthDate = "19610203"
            dataset.InstitutionName = "Example General Hospital"
            dataset.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.4242.1"  # the fixture's UIDs are blank
            out = io.BytesIO()
            dataset.save_as(out)
            archive.writestr(f"slice{index}.dcm", out.getvalue())
    return buffer.getvalue()


def test_referral_packet_holds_the_report_and_deidentified_dicom(service, shared_data):
    case = service.create_case("Referral patient", document=CASE_DOCUMENT)
    h = service.headers("coordinator")
    original = identified_series(shared_data)
    uploaded = service.client.post(
        f"/api/cases/{case['id']}/documents",
        headers=h,
        data={"purpose": "ct"},
        files={"file": ("ct.zip", original, "application/zip")},
    )
    assert uploaded.status_code == 201, uploaded.text
    response = service.client.get(f"/api/cases/{case['id']}/referral.zip", headers=h)
    assert response.status_code == 200, response.text
    packet = zipfile.ZipFile(io.BytesIO(response.content))
    names = packet.namelist()
    assert names[0] == "report.pdf" and packet.read("report.pdf").startswith(b"%PDF")
    manifest = json.loads(packet.read("manifest.json"))
    assert manifest["schema_version"] == 1 and set(manifest["files"]) == set(names) - {"manifest.json"}
    dicom_files = [n for n in names if n.startswith("dicom/")]
    assert len(dicom_files) == 3
    originals = zipfile.ZipFile(io.BytesIO(original))
    source = pydicom.dcmread(io.BytesIO(originals.read("slice0.dcm")))
    for name in dicom_files:
        raw = packet.read(name)
        for identifying in (b"Doe^Jane", b"MRN-0042", b"19610203", b"Example General Hospital"):
            assert identifying not in raw, (name, identifying)
        dataset = pydicom.dcmread(io.BytesIO(raw))
        assert str(dataset.PatientName) == f"cryoplan-case-{case['id']}"
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.StudyInstanceUID not in ("", source.StudyInstanceUID)  # UIDs replaced
    first = pydicom.dcmread(io.BytesIO(packet.read(dicom_files[0])))
    # Geometry is kept so the receiving centre can plan on it.
    assert list(first.ImageOrientationPatient) == list(source.ImageOrientationPatient)
    assert list(first.PixelSpacing) == list(source.PixelSpacing)
    assert "referral_packet" in {
        e["action"] for e in service.client.get(f"/api/cases/{case['id']}/audit", headers=h).json()
    }


def test_a_job_names_the_plan_after_the_case(service):
    created = service.create_case(label="Patient 17 (right lobe)")
    with service.client.app.state.sessions() as db:
        case = db.get(Case, created["id"])
        document = store.run_document(db, case, service.data_dir)
    assert document["case_id"] == "Patient 17 (right lobe)"


def test_the_coordinator_chooses_what_the_referral_packet_holds(service, shared_data):
    case = service.create_case("Referral choice", document=CASE_DOCUMENT)
    h = service.headers("coordinator")
    letter = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    ids = {}
    for purpose, name, data in (("record", "letter.pdf", letter), ("ct", "ct.zip", identified_series(shared_data))):
        uploaded = service.client.post(
            f"/api/cases/{case['id']}/documents", headers=h, data={"purpose": purpose}, files={"file": (name, data)}
        )
        assert uploaded.status_code == 201, uploaded.text
        ids[purpose] = uploaded.json()["id"]
    client = TestClient(service.client.app)
    browser_login(client, "coordinator")
    # By default everything is in, and the preview lists it.
    page = client.get(f"/cases/{case['id']}/referral").text
    assert all(f'id="referral-document-{i}" checked' in page for i in ids.values())
    contents = re.findall(r'<td class="hash">([^<]+)</td>', page)
    assert contents[0] == "report.pdf" and contents[-1] == "manifest.json"
    assert f"dicom/document-{ids['ct']}/" in contents and any(
        c.startswith(f"documents/document-{ids['record']}-") for c in contents
    )
    # Only the letter, without the report: so the preview says, and so the packet holds.
    only_letter = {"choose": "true", "report": ["false"], "plan": ["false"], "document": [ids["record"]]}
    page = client.get(f"/cases/{case['id']}/referral", params=only_letter).text
    assert f'id="referral-document-{ids["ct"]}" checked' not in page and 'id="referral-report" checked' not in page
    listed = re.findall(r'<td class="hash">([^<]+)</td>', page)
    packet = zipfile.ZipFile(
        io.BytesIO(client.get(f"/api/cases/{case['id']}/referral.zip", params=only_letter).content)
    )
    assert sorted(packet.namelist()) == sorted(listed) and len(listed) == 2
    assert packet.read(listed[0]) == letter
    # Only the series: each file is the de-identified object of its source (`deidentify_dataset`, whose own
    # tests validate it), as a whole DICOM file.
    only_ct = {"choose": "true", "report": ["false"], "document": [ids["ct"]]}
    packet = zipfile.ZipFile(io.BytesIO(client.get(f"/api/cases/{case['id']}/referral.zip", params=only_ct).content))
    names = [n for n in packet.namelist() if n != "manifest.json"]
    assert len(names) == 3 and all(n.startswith(f"dicom/document-{ids['ct']}/") for n in names)
    originals = zipfile.ZipFile(io.BytesIO(identified_series(shared_data)))
    key = service.client.app.state.secret_key
    for name, original in zip(sorted(names), sorted(originals.namelist()), strict=True):
        raw = packet.read(name)
        assert b"Doe^Jane" not in raw and raw[128:132] == b"DICM"
        expected = deidentify_dataset(
            pydicom.dcmread(io.BytesIO(originals.read(original))), f"cryoplan-case-{case['id']}", key
        )
        assert pydicom.dcmread(io.BytesIO(raw)) == expected
    foreign = client.get(f"/api/cases/{case['id']}/referral.zip", params={"choose": "true", "document": [9999]})
    assert foreign.status_code == 422 and "document" in foreign.json()["detail"]
