"""The case report (HTML, and PDF through WeasyPrint) and the referral packet for the treating centre."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import markupsafe
import pydicom
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from cryoplan import __version__
from cryoplan.imaging.deid import deidentify_dataset
from cryoplan.service import store
from cryoplan.service.audit import Actor, audit
from cryoplan.service.jobs import JobRunner
from cryoplan.service.models import utcnow
from cryoplan.service.store import latest_plan_job

STATIC_DIR = Path(__file__).resolve().parent / "static"
_environment = Environment(loader=PackageLoader("cryoplan.service", "templates"), autoescape=select_autoescape())
# The report carries its stylesheet inside it, so that it is styled wherever it is opened (a browser, a saved
# file, WeasyPrint) and names no path of the server; the policy admits that one stylesheet and nothing else.
REPORT_CSS = (STATIC_DIR / "report.css").read_text(encoding="utf-8")
REPORT_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(REPORT_CSS.encode()).digest()).decode()
    + "'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class RefusedURL(Exception):
    """WeasyPrint asked for a resource outside the app's own static files."""


def latest_plan_dir(db: Session, case_id: int, runner: JobRunner) -> Path | None:
    """Output folder of the case's plan (`latest_plan_job`), if any."""
    job = latest_plan_job(db, case_id)
    return None if job is None else runner.output_dir(job.id)


def plan_summary(plan_dir: Path | None) -> dict[str, Any] | None:
    """plan.json of a finished plan (its coverage numbers are shown as they are)."""
    if plan_dir is None or not (plan_dir / "plan.json").exists():
        return None
    summary: dict[str, Any] = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    return summary


def lethal_isotherm_mask(plan: dict[str, Any] | None, plan_dir: Path | None) -> str | None:
    """File name of the plan's lethal-isotherm mask (NIfTI), for the viewer overlay, if the plan wrote one."""
    if plan is None or plan_dir is None:
        return None
    lethal_c = plan.get("settings", {}).get("lethal_isotherm_c")
    if lethal_c is None:
        return None
    name = f"isotherm_{int(lethal_c)}c.nii.gz".replace("-", "minus")
    return name if (plan_dir / name).is_file() else None


def case_report_html(db: Session, actor: Actor, case_id: int, runner: JobRunner) -> str:
    """The case report as a standalone HTML document, its stylesheet (the app's report.css) inlined."""
    case = store.get_case(db, actor, case_id, action="report")
    return _environment.get_template("report.html").render(
        case=case,
        document=case.case_document,
        assessment=case.assessment,
        history=store.status_history(db, case.id),
        decisions=store.board_decisions(db, case.id),
        plan=plan_summary(latest_plan_dir(db, case.id, runner)),
        stylesheet=markupsafe.Markup(REPORT_CSS),
        generated_at=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )


def _app_files_fetcher() -> Any:
    """A WeasyPrint URL fetcher that serves the app's own static files and refuses everything else (no
    network, no other local file), so a report can never be made to read or send data elsewhere."""
    from weasyprint import URLFetcher  # see html_to_pdf

    class AppFilesOnly(URLFetcher):  # type: ignore[misc]  # WeasyPrint is untyped
        def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
            if url.startswith("file://"):
                path = Path(unquote(urlparse(url).path)).resolve()
                if path.is_relative_to(STATIC_DIR) and path.is_file():
                    return super().fetch(url, headers)
            raise RefusedURL(f"refused to fetch {url[:100]}")

    return AppFilesOnly(allowed_protocols={"file"}, allow_redirects=False)


def html_to_pdf(html: str) -> bytes:
    """Render report HTML to PDF with WeasyPrint, fetching nothing outside the app's static files."""
    # WeasyPrint (Pango, its fonts: some 20 MB) loads with the first PDF, not with every server process.
    from weasyprint import HTML

    pdf: bytes = HTML(string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=_app_files_fetcher()).write_pdf()
    return pdf


def referral_packet(db: Session, actor: Actor, case_id: int, runner: JobRunner, data_dir: Path, deid_key: str) -> bytes:
    """The referral zip: report.pdf, the de-identified DICOM of the case's DICOM-zip CTs (PS3.15 Basic
    Profile, through `cryoplan.imaging.deid`, UIDs replaced under `deid_key`), and plan.json with the
    DICOM objects of the newest plan (SEGs, temperature map), de-identified the same way."""
    report = html_to_pdf(case_report_html(db, actor, case_id, runner))
    buffer = io.BytesIO()
    contents = ["report.pdf"]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as packet:
        packet.writestr("report.pdf", report)
        for document in store.documents(db, case_id):
            if document.purpose == "ct" and document.file_type == "dicom_zip":
                for name, data in _deidentified_series(
                    data_dir / "documents" / document.stored_name, case_id, deid_key
                ):
                    arcname = f"dicom/document-{document.id}/{name}"
                    packet.writestr(arcname, data)
                    contents.append(arcname)
        plan_dir = latest_plan_dir(db, case_id, runner)
        if plan_dir is not None:
            for path in sorted(plan_dir.iterdir()):
                if path.name == "plan.json":
                    packet.write(path, "plan/plan.json")
                elif path.suffix == ".dcm":
                    # the plan's SEGs and temperature map copy the patient module of the CT: de-identified
                    # with the same key, they still reference the de-identified series
                    clean = deidentify_dataset(pydicom.dcmread(path), f"cryoplan-case-{case_id}", deid_key)
                    out = io.BytesIO()
                    clean.save_as(out, enforce_file_format=True)
                    packet.writestr(f"plan/{path.name}", out.getvalue())
                else:
                    continue
                contents.append(f"plan/{path.name}")
        packet.writestr(
            "manifest.json",
            json.dumps(
                {"schema_version": 1, "case_id": case_id, "generated_at": utcnow().isoformat(), "files": contents},
                indent=2,
            ),
        )
    audit(db, actor, "referral_packet", "case", case_id, case_id, detail=f"{len(contents)} files")
    return buffer.getvalue()


def _deidentified_series(zip_path: Path, case_id: int, key: str) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, bytes) of each DICOM file of a stored zip after de-identification."""
    with zipfile.ZipFile(zip_path) as archive:
        for index, entry in enumerate(e for e in archive.infolist() if not e.is_dir()):
            dataset = pydicom.dcmread(io.BytesIO(archive.read(entry)))
            clean = deidentify_dataset(dataset, f"cryoplan-case-{case_id}", key)
            out = io.BytesIO()
            clean.save_as(out)
            yield f"{index:05d}.dcm", out.getvalue()
