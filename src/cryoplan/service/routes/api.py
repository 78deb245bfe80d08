"""The JSON API under /api/: everything the pages do. Authenticate with a bearer token from
POST /api/auth/token (or the page session cookie plus its X-CSRF-Token header)."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from cryoplan.imaging.io import ImagingWarning, read_volume, write_nifti
from cryoplan.service import reports, store
from cryoplan.service.audit import Actor
from cryoplan.service.deps import Admin, AuditReader, Clinician, Editor, Id, Reader, transaction
from cryoplan.service.jobs import submit_job
from cryoplan.service.models import AuditEvent, Case, CaseStatus, Job, Role, User

router = APIRouter(prefix="/api", tags=["api"])

# No NUL characters in any text (PostgreSQL cannot store them) and bounded lengths.
Text = Annotated[str, Field(max_length=20000, pattern=r"^[^\x00]*$")]
ShortText = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]


class UserCreate(BaseModel):
    username: ShortText
    password: Annotated[str, Field(max_length=200)]
    role: Role
    full_name: ShortText = ""


class CaseCreate(BaseModel):
    label: ShortText
    case_document: dict[str, Any] = Field(description="The case file (schema_version 1); imaging holds no file paths.")


class CaseUpdate(BaseModel):
    version: VersionNumber = Field(description="The version you edited; a newer one on the server gives 409.")
    label: ShortText | None = None
    case_document: dict[str, Any] | None = None
    board_date: dt.date | None = None


class StatusChangeRequest(BaseModel):
    to_status: CaseStatus
    reason: Text
    version: VersionNumber


class ReturnToBoardRequest(BaseModel):
    to_status: Literal["eligibility_reviewed", "planned"]
    board_date: dt.date = Field(description="The board meeting to present the case at (today or later).")
    reason: Text = Field(description="What came in that the board asked for.")
    version: VersionNumber


class ReopenRequest(BaseModel):
    reason: Text
    version: VersionNumber


class BoardDecisionRequest(BaseModel):
    decision: Literal[store.BOARD_DECISIONS]  # type: ignore[valid-type]
    notes: Text = ""
    version: VersionNumber
    confirmed: bool = Field(False, description="True: the caller confirms this is the board's decision.")


class MessageCreate(BaseModel):
    direction: Literal["sent", "received", "note"]
    counterpart: ShortText = ""
    body: Text


class TaskCreate(BaseModel):
    title: ShortText
    due_date: dt.date
    assignee: ShortText | None = None


class JobCreate(BaseModel):
    kind: ShortText


def case_json(case: Case) -> dict[str, Any]:
    return store.as_dict(
        case,
        "id",
        "label",
        "status",
        "version",
        "case_document",
        "assessment",
        "assessment_error",
        "board_date",
        "created_at",
        "updated_at",
    )


def job_json(request: Request, job: Job) -> dict[str, Any]:
    return {
        **store.as_dict(
            job, "id", "case_id", "kind", "status", "attempts", "error", "case_version", "created_at", "finished_at"
        ),
        "progress": request.app.state.runner.progress(job),
    }


@router.get("/me")
def me(actor: Reader) -> dict[str, Any]:
    return {"username": actor.username, "role": actor.role.value}


def user_json(user: User) -> dict[str, Any]:
    return store.as_dict(user, "id", "username", "full_name", "role", "active", "created_at")


@router.get("/users")
def users(request: Request, actor: Admin) -> list[dict[str, Any]]:
    with transaction(request) as db:
        return [user_json(u) for u in store.list_users(db, actor)]


@router.post("/users", status_code=201)
def create_user(request: Request, body: UserCreate, actor: Admin) -> dict[str, Any]:
    with transaction(request) as db:
        return user_json(store.create_user(db, body.username, body.password, body.role.value, body.full_name, actor))


@router.post("/users/{user_id}/deactivate", summary="Deactivate a user (their sessions and tokens end at once)")
def deactivate_user(request: Request, user_id: Id, actor: Admin) -> dict[str, Any]:
    with transaction(request) as db:
        return user_json(store.deactivate_user(db, actor, user_id))


@router.get("/cases", summary="One page of the cases the caller may see (newest first; X-Total-Count: all of them)")
def cases(
    request: Request,
    response: Response,
    actor: Reader,
    status: CaseStatus | None = None,
    search: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    page: Annotated[int, Query(ge=1, le=2**31 - 1, description="Page number, from 1.")] = 1,
    size: Annotated[int, Query(ge=1, le=store.MAX_PAGE_SIZE, description="Cases per page.")] = 50,
) -> list[dict[str, Any]]:
    with transaction(request) as db:
        found, total = store.list_cases(db, actor, status.value if status else None, search, page, size)
    response.headers["X-Total-Count"] = str(total)
    return [store.as_dict(c, "id", "label", "status", "version", "board_date", "updated_at") for c in found]


@router.post("/cases", status_code=201)
def create_case(request: Request, body: CaseCreate, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        return case_json(store.create_case(db, actor, body.label, body.case_document))


@router.get("/cases/{case_id}")
def case(request: Request, case_id: Id, actor: Reader) -> dict[str, Any]:
    with transaction(request) as db:
        found = store.get_case(db, actor, case_id)
        history = [
            {**store.as_dict(change, "from_status", "to_status", "reason", "at"), "username": name}
            for change, name in store.status_history(db, case_id)
        ]
        return {
            **case_json(found),
            "status_history": history,
            "allowed_steps": [s.value for s in store.allowed_steps(db, found, actor.role)],
        }


@router.put("/cases/{case_id}", summary="Save edits (optimistic locking: 409 when the case changed since)")
def update_case(request: Request, case_id: Id, body: CaseUpdate, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        return case_json(
            store.update_case(db, actor, case_id, body.version, body.label, body.case_document, body.board_date)
        )


@router.post("/cases/{case_id}/status")
def change_status(request: Request, case_id: Id, body: StatusChangeRequest, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        return case_json(store.change_status(db, actor, case_id, body.to_status.value, body.reason, body.version))


@router.post(
    "/cases/{case_id}/return-to-board",
    summary="Present a case the board asked more information on to a board meeting again",
)
def return_to_board(request: Request, case_id: Id, body: ReturnToBoardRequest, actor: Clinician) -> dict[str, Any]:
    with transaction(request) as db:
        return case_json(
            store.return_to_board(db, actor, case_id, body.to_status, body.board_date, body.reason, body.version)
        )


@router.post("/cases/{case_id}/reopen", summary="Reopen a closed case (back to the status it was closed from)")
def reopen_case(request: Request, case_id: Id, body: ReopenRequest, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        return case_json(store.reopen_case(db, actor, case_id, body.reason, body.version))


@router.get("/board", summary="The tumour board agenda")
def board(request: Request, actor: Reader, board_date: dt.date | None = None) -> list[dict[str, Any]]:
    with transaction(request) as db:
        return [
            store.as_dict(c, "id", "label", "status", "version", "board_date", "assessment")
            for c in store.board_agenda(db, actor, board_date)
        ]


@router.post("/cases/{case_id}/board-decision", status_code=201)
def board_decision(request: Request, case_id: Id, body: BoardDecisionRequest, actor: Clinician) -> dict[str, Any]:
    with transaction(request) as db:
        row = store.record_board_decision(db, actor, case_id, body.decision, body.notes, body.version, body.confirmed)
        return store.as_dict(row, "id", "case_id", "decision", "notes", "at")


@router.get("/cases/{case_id}/documents")
def documents(request: Request, case_id: Id, actor: Reader) -> list[dict[str, Any]]:
    with transaction(request) as db:
        store.get_case(db, actor, case_id, action="list_documents")
        return [
            store.as_dict(d, "id", "purpose", "file_type", "original_name", "size_bytes", "sha256", "uploaded_at")
            for d in store.documents(db, case_id)
        ]


@router.post("/cases/{case_id}/documents", status_code=201, summary="Upload a document (checked by content)")
def upload(
    request: Request,
    case_id: Id,
    actor: Editor,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[Literal["ct", "labels", "record"], Form()] = "record",
) -> dict[str, Any]:
    with transaction(request) as db:
        row = store.add_document(
            db, actor, case_id, purpose, file.file, file.filename or "", request.app.state.settings
        )
        return store.as_dict(row, "id", "purpose", "file_type", "original_name", "size_bytes", "sha256")


@router.get("/cases/{case_id}/documents/{document_id}/content", response_class=FileResponse)
def document_content(request: Request, case_id: Id, document_id: Id, actor: Reader) -> FileResponse:
    with transaction(request) as db:
        row = store.get_document(db, actor, case_id, document_id)
    media = {"pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg"}.get(
        row.file_type, "application/octet-stream"
    )
    # Served as a download under its generated name, so no uploaded markup is ever rendered by the browser.
    return FileResponse(
        request.app.state.settings.data_dir / "documents" / row.stored_name,
        media_type=media,
        filename=row.stored_name,
        content_disposition_type="attachment",
    )


@router.get(
    "/cases/{case_id}/documents/{document_id}/volume.nii.gz",
    response_class=FileResponse,
    summary="A CT uploaded as a DICOM series, as one NIfTI volume (what the viewer loads)",
)
def document_volume(request: Request, case_id: Id, document_id: Id, actor: Reader) -> FileResponse:
    """The series read as the planner reads it (`cryoplan.imaging.io.read_volume`: series chosen, UIDs
    repaired, geometry checked), written once as NIfTI (RAS at the file boundary) beside the stored zip."""
    data_dir = request.app.state.settings.data_dir
    with transaction(request) as db:
        row = store.get_document(db, actor, case_id, document_id)
    if row.file_type != "dicom_zip":
        raise store.NotFound(f"DICOM series {document_id} of case {case_id}")
    cached = data_dir / "documents" / f"{row.stored_name}.viewer.nii.gz"
    if not cached.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImagingWarning)  # the plan reports them; the viewer shows the image
            volume = read_volume(store.image_path(data_dir, row))
        write_nifti(volume, cached)  # atomic
    return FileResponse(cached, media_type="application/gzip", filename=f"ct-series-{row.id}.nii.gz")


@router.get("/cases/{case_id}/messages")
def messages(request: Request, case_id: Id, actor: Reader) -> list[dict[str, Any]]:
    with transaction(request) as db:
        store.get_case(db, actor, case_id, action="read_messages")
        return [
            {**store.as_dict(m, "id", "direction", "counterpart", "body", "at"), "username": name}
            for m, name in store.messages(db, case_id)
        ]


@router.post("/cases/{case_id}/messages", status_code=201)
def add_message(request: Request, case_id: Id, body: MessageCreate, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        row = store.add_message(db, actor, case_id, body.direction, body.counterpart, body.body)
        return store.as_dict(row, "id", "direction", "counterpart", "body", "at")


@router.get("/cases/{case_id}/tasks")
def tasks(request: Request, case_id: Id, actor: Reader) -> list[dict[str, Any]]:
    with transaction(request) as db:
        store.get_case(db, actor, case_id, action="read_tasks")
        return [
            {**store.as_dict(t, "id", "title", "due_date", "done"), "assignee": name}
            for t, name in store.tasks(db, case_id)
        ]


@router.post("/cases/{case_id}/tasks", status_code=201)
def add_task(request: Request, case_id: Id, body: TaskCreate, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        row = store.add_task(db, actor, case_id, body.title, body.due_date, body.assignee)
        return store.as_dict(row, "id", "title", "due_date", "done")


@router.post("/cases/{case_id}/tasks/{task_id}/done")
def complete_task(request: Request, case_id: Id, task_id: Id, actor: Editor) -> dict[str, Any]:
    with transaction(request) as db:
        return store.as_dict(store.complete_task(db, actor, case_id, task_id), "id", "title", "due_date", "done")


@router.get("/cases/{case_id}/jobs")
def jobs(request: Request, case_id: Id, actor: Reader) -> list[dict[str, Any]]:
    with transaction(request) as db:
        store.get_case(db, actor, case_id, action="read_jobs")
        return [job_json(request, job) for job in store.jobs(db, case_id)]


@router.post(
    "/cases/{case_id}/jobs",
    status_code=202,
    summary="Start a background job (assessment, plan, or the uncertainty of a planned case)",
)
def start_job(request: Request, case_id: Id, body: JobCreate, actor: Editor) -> dict[str, Any]:
    return job_json(request, submit_job(request, actor, case_id, body.kind))


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: Id, actor: Reader) -> dict[str, Any]:
    with transaction(request) as db:
        return job_json(request, store.get_job(db, actor, job_id))


class AuditFilters(BaseModel):
    """Which audit events to list, one page at a time (newest first; X-Total-Count: all that match)."""

    username: Annotated[str | None, Field(max_length=64, pattern=r"^[^\x00]*$")] = None
    action: Annotated[str | None, Field(max_length=40, pattern=r"^[^\x00]*$")] = None
    since: dt.datetime | None = Field(None, description="Events at or after this time (ISO 8601).")
    until: dt.datetime | None = Field(None, description="Events before this time (ISO 8601).")
    page: Annotated[int, Field(ge=1, le=2**31 - 1)] = 1
    size: Annotated[int, Field(ge=1, le=store.MAX_AUDIT_PAGE_SIZE)] = 500


def audit_listing(
    request: Request, response: Response, actor: Actor, case_id: int | None, filters: AuditFilters
) -> list[dict[str, Any]]:
    with transaction(request) as db:
        events, total = store.audit_page(db, actor, case_id, **filters.model_dump())
    response.headers["X-Total-Count"] = str(total)
    return [audit_json(e) for e in events]


@router.get("/cases/{case_id}/audit", summary="The audit trail of one case (read-only, paged, filtered)")
def case_audit(
    request: Request, response: Response, case_id: Id, actor: AuditReader, filters: Annotated[AuditFilters, Query()]
) -> list[dict[str, Any]]:
    return audit_listing(request, response, actor, case_id, filters)


@router.get("/audit", summary="The whole audit log (read-only, paged, filtered)")
def audit_log(
    request: Request, response: Response, actor: Admin, filters: Annotated[AuditFilters, Query()]
) -> list[dict[str, Any]]:
    return audit_listing(request, response, actor, None, filters)


def audit_json(event: AuditEvent) -> dict[str, Any]:
    return store.as_dict(
        event, "id", "at", "username", "action", "object_type", "object_id", "case_id", "client_address", "detail"
    )


@router.get("/cases/{case_id}/report.html", response_class=HTMLResponse)
def report_html(request: Request, case_id: Id, actor: Reader) -> HTMLResponse:
    with transaction(request) as db:
        html = reports.case_report_html(db, actor, case_id, request.app.state.runner)
    return HTMLResponse(html, headers={"Content-Security-Policy": reports.REPORT_CONTENT_SECURITY_POLICY})


@router.get("/cases/{case_id}/report.pdf", response_class=Response)
def report_pdf(request: Request, case_id: Id, actor: Reader) -> Response:
    with transaction(request) as db:
        html = reports.case_report_html(db, actor, case_id, request.app.state.runner)
    return Response(
        reports.html_to_pdf(html),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-report.pdf"'},
    )


class ReferralQuery(BaseModel):
    """What a referral packet holds: everything by default; with ``choose``, exactly the documents listed."""

    report: bool = True
    plan: bool = True
    choose: bool = False
    document: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(default_factory=list, max_length=1000)

    def selection(self) -> reports.ReferralSelection:
        chosen = frozenset(self.document) if self.choose else None
        return reports.ReferralSelection(report=self.report, plan=self.plan, document_ids=chosen)


@router.get(
    "/cases/{case_id}/referral.zip",
    response_class=Response,
    summary="Referral packet: report PDF, documents (DICOM de-identified), plan.json and its DICOM objects",
)
def referral(request: Request, case_id: Id, actor: Editor, query: Annotated[ReferralQuery, Query()]) -> Response:
    with transaction(request) as db:
        store.get_case(db, actor, case_id, action="referral")
        packet = reports.referral_packet(
            db,
            actor,
            case_id,
            request.app.state.runner,
            request.app.state.settings.data_dir,
            request.app.state.secret_key,
            query.selection(),
        )
    return Response(
        packet,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-referral.zip"'},
    )


SAFE_OUTPUT_PATH = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]{0,100}/)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}")


@router.get(
    "/jobs/{job_id}/files/{name:path}",
    response_class=FileResponse,
    summary="A file a finished job wrote (plan.json, figures/…, isotherm masks, report.pdf)",
)
def job_file(request: Request, job_id: Id, name: str, actor: Reader) -> FileResponse:
    if not SAFE_OUTPUT_PATH.fullmatch(name):  # no "..", no absolute paths: only what the job wrote
        raise store.NotFound(f"file {name[:100]!r} of job {job_id}")
    with transaction(request) as db:
        row = store.get_job(db, actor, job_id, "download", "job_file", detail=name)
        if row.status != "done":
            raise store.NotFound(f"job {job_id}")
    path = request.app.state.runner.output_dir(job_id) / name
    if not path.is_file():
        raise store.NotFound(f"file {name} of job {job_id}")
    return FileResponse(path, filename=path.name)
