"""The case report (HTML, and PDF through WeasyPrint) and the referral packet for the treating centre."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import markupsafe
import pydicom
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from cryoplan import __version__
from cryoplan.errors import InputError
from cryoplan.imaging.deid import deidentify_dataset
from cryoplan.service import store
from cryoplan.service.audit import Actor, audit
from cryoplan.service.jobs import JobRunner
from cryoplan.service.labels import TEMPLATE_GLOBALS
from cryoplan.service.models import Document, utcnow
from cryoplan.service.store import latest_plan_job

STATIC_DIR = Path(__file__).resolve().parent / "static"
_environment = Environment(loader=PackageLoader("cryoplan.service", "templates"), autoescape=select_autoescape())
_environment.globals.update(TEMPLATE_GLOBALS)
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


@dataclass(frozen=True)
class ReferralSelection:
    """What the coordinator puts in a referral packet: the case report, the plan, and which documents
    (None: every document of the case)."""

    report: bool = True
    plan: bool = True
    document_ids: frozenset[int] | None = None


def _document_entry(document: Document) -> dict[str, Any]:
    if document.file_type == "dicom_zip":
        folder, how = f"dicom/document-{document.id}/", "DICOM series, de-identified (PS3.15 Basic Profile)"
    else:
        folder, how = f"documents/document-{document.id}-", "as uploaded"
    return {
        "document_id": document.id,
        "purpose": document.purpose,
        "original_name": document.original_name,
        "size_bytes": document.size_bytes,
        "packet_path": folder if document.file_type == "dicom_zip" else f"{folder}{document.stored_name}",
        "content": how,
    }


def referral_contents(
    db: Session, case_id: int, runner: JobRunner, selection: ReferralSelection
) -> list[dict[str, Any]]:
    """What a referral packet with `selection` holds, item by item (the preview the coordinator checks).

    Raises
    ------
    InputError
        A selected document that is not one of the case's.
    """
    documents = {d.id: d for d in store.documents(db, case_id)}
    chosen = set(documents) if selection.document_ids is None else set(selection.document_ids)
    unknown = sorted(chosen - set(documents))
    if unknown:
        raise InputError("document", f"documents of case {case_id}, one of {sorted(documents)}", unknown[0])
    items: list[dict[str, Any]] = []
    if selection.report:
        items.append({"packet_path": "report.pdf", "content": "the case report (PDF)"})
    items += [_document_entry(documents[i]) for i in sorted(chosen)]
    plan_dir = latest_plan_dir(db, case_id, runner)
    if selection.plan and plan_dir is not None and (plan_dir / "plan.json").is_file():
        items.append({"packet_path": "plan/plan.json", "content": "the newest plan"})
        for path in sorted(plan_dir.glob("*.dcm")):
            items.append({"packet_path": f"plan/{path.name}", "content": "plan DICOM object, de-identified"})
    return items


def referral_packet(
    db: Session,
    actor: Actor,
    case_id: int,
    runner: JobRunner,
    data_dir: Path,
    deid_key: str,
    selection: ReferralSelection = ReferralSelection(),
) -> bytes:
    """The referral zip of what `selection` names (`referral_contents`): report.pdf; each chosen document, a
    DICOM-zip CT de-identified (PS3.15 Basic Profile, through `cryoplan.imaging.deid`, UIDs replaced under
    `deid_key`) and any other as uploaded; plan.json with the DICOM objects of the newest plan (SEGs,
    temperature map), de-identified the same way so that they still reference the de-identified series."""
    items = referral_contents(db, case_id, runner, selection)
    buffer = io.BytesIO()
    contents = []
    plan_dir = latest_plan_dir(db, case_id, runner)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as packet:
        for item in items:
            name = item["packet_path"]
            if name == "report.pdf":
                packet.writestr(name, html_to_pdf(case_report_html(db, actor, case_id, runner)))
            elif "document_id" in item:
                document = db.get_one(Document, item["document_id"])
                stored = data_dir / "documents" / document.stored_name
                if document.file_type == "dicom_zip":
                    for file_name, data in _deidentified_series(stored, case_id, deid_key):
                        packet.writestr(name + file_name, data)
                        contents.append(name + file_name)
                    continue
                packet.write(stored, name)
            elif name == "plan/plan.json":
                assert plan_dir is not None  # listed only with a plan
                packet.write(plan_dir / "plan.json", name)
            else:
                assert plan_dir is not None
                clean = deidentify_dataset(
                    pydicom.dcmread(plan_dir / name.removeprefix("plan/")), f"cryoplan-case-{case_id}", deid_key
                )
                out = io.BytesIO()
                clean.save_as(out, enforce_file_format=True)
                packet.writestr(name, out.getvalue())
            contents.append(name)
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
