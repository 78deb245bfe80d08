"""Every read and write of the service's data, in one place. Each function that touches patient data
appends an audit event in the same transaction, so a change is never stored without its record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Select, String, cast, delete, func, or_, select
from sqlalchemy.orm import Session

from cryoplan.case import parse_case
from cryoplan.clinical import assess
from cryoplan.errors import InputError
from cryoplan.service.auth import Actor, password_hasher
from cryoplan.service.db import discard_on_rollback
from cryoplan.service.models import (
    PLAN_KINDS,
    AuditEvent,
    AuthToken,
    BoardDecision,
    Case,
    CaseStatus,
    Document,
    Job,
    JobStatus,
    Message,
    Role,
    StatusChange,
    Task,
    User,
    utcnow,
)
from cryoplan.service.settings import ServiceSettings
from cryoplan.service.uploads import PURPOSES, receive

WORKFLOW = [
    CaseStatus.intake,
    CaseStatus.records_complete,
    CaseStatus.eligibility_reviewed,
    CaseStatus.planned,
    CaseStatus.board_decided,
    CaseStatus.referred,
    CaseStatus.treated,
    CaseStatus.follow_up,
]
# Steps that record a clinical judgement: only clinicians (and admins) take them.
CLINICAL_STEPS = {CaseStatus.eligibility_reviewed, CaseStatus.planned, CaseStatus.board_decided}
IMAGE_TYPES = ("nifti", "nifti_gz", "nrrd")
BOARD_DECISIONS = (
    "cryoablation",
    "other_ablation",
    "resection",
    "transplant_listing",
    "tace",
    "systemic_therapy",
    "best_supportive_care",
    "more_information_needed",
)


class NotFound(Exception):
    """The object asked for does not exist (the API answers 404)."""


class VersionConflict(Exception):
    """The case changed since the caller read it (optimistic locking; the API answers 409)."""

    def __init__(self, case: Case, expected: int):
        self.case_id, self.current, self.expected = case.id, case.version, expected
        super().__init__(
            f"case {case.id} was changed by someone else since you opened it (your version {expected}, "
            f"now {case.version}); reload it, reapply your edits and save again"
        )


class NotAllowed(Exception):
    """The workflow or the caller's role does not allow this step (the API answers 403 or 409)."""


def audit(
    db: Session,
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: object = None,
    case_id: int | None = None,
    detail: str = "",
    address: str | None = None,
) -> None:
    """Append one audit event: who (`actor`), what (`action` on `object_type`/`object_id`), from where."""
    db.add(
        AuditEvent(
            at=utcnow(),
            user_id=actor.user_id if actor else None,
            username=actor.username if actor else "system",
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            case_id=case_id,
            client_address=(actor.client_address if actor else address) or "server",
            detail=detail,
        )
    )


# --- users ---------------------------------------------------------------------------------------------


def create_user(
    db: Session, username: str, password: str, role: str, full_name: str = "", actor: Actor | None = None
) -> User:
    """Create a user with an Argon2-hashed password."""
    if not (1 <= len(username) <= 64) or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise InputError("username", "1–64 letters, digits, '.', '_' or '-'", username)
    if len(password) < 10:
        raise InputError("password", "at least 10 characters")
    if role not in {r.value for r in Role}:
        raise InputError("role", f"one of {[r.value for r in Role]}", role)
    if db.scalar(select(User).where(User.username == username)):
        raise InputError("username", "a name not already taken", username)
    user = User(
        username=username,
        password_hash=password_hasher.hash(password),
        role=role,
        full_name=full_name,
        active=True,
        created_at=utcnow(),
    )
    db.add(user)
    db.flush()
    audit(db, actor, "create", "user", user.id, detail=f"{username} as {role}")
    return user


def list_users(db: Session, actor: Actor) -> list[User]:
    """Every user, by name; the listing is recorded."""
    users = list(db.scalars(select(User).order_by(User.username)))
    audit(db, actor, "list", "user", detail=f"n={len(users)}")
    return users


def deactivate_user(db: Session, actor: Actor, user_id: int) -> User:
    """Deactivate a user: their sessions and API tokens stop working at once and they cannot log in.
    The user row stays, so the audit trail keeps naming them; an admin cannot deactivate themselves (so
    the last admin cannot lock everyone out)."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    if user.id == actor.user_id:
        raise NotAllowed("you cannot deactivate your own account; ask another admin")
    if user.active:
        user.active = False
        db.execute(delete(AuthToken).where(AuthToken.user_id == user.id))
        audit(db, actor, "deactivate", "user", user.id, detail=user.username)
        db.flush()
    return user


# --- cases ---------------------------------------------------------------------------------------------


def check_case_document(document: object) -> dict:
    """A case document as the service stores it: a JSON object whose ``imaging`` section holds no file
    paths (images are attached as documents; the service fills the paths in, see `run_document`)."""
    if not isinstance(document, dict):
        raise InputError("case_document", "a JSON object (the case file)", type(document).__name__)
    imaging = document.get("imaging")
    if imaging is not None:
        if not isinstance(imaging, dict):
            raise InputError("case_document.imaging", "a mapping with label_preset or labels_map", imaging)
        for key in ("image", "labels", "masks"):
            if key in imaging:
                raise InputError(
                    f"case_document.imaging.{key}",
                    "no file path: attach the image as a document with purpose ct or labels",
                )
    return document


def assess_document(document: dict) -> tuple[dict | None, str | None]:
    """Run the eligibility assessment on a case document: (assessment JSON, None), or (None, the reason the
    document is not yet assessable, e.g. a missing diagnosis) so that incomplete records can still be saved.
    The images are not needed for the assessment, so the imaging section is left out."""
    without_images = {key: value for key, value in document.items() if key != "imaging"}
    try:
        return assess(parse_case(without_images, "case_document")).to_dict(), None
    except InputError as error:
        return None, str(error)


def run_document(db: Session, case: Case, data_dir: Path) -> dict:
    """The case document for a job: the stored one, with the imaging paths of the newest CT and label
    documents of the case filled in (and no imaging section when no CT is attached)."""
    document = {key: value for key, value in case.case_document.items() if key != "imaging"}
    newest = {}
    for row in documents(db, case.id):
        if row.file_type in IMAGE_TYPES:
            newest[row.purpose] = row
    if "ct" in newest:
        imaging = dict(case.case_document.get("imaging") or {})
        imaging["image"] = str(data_dir / "documents" / newest["ct"].stored_name)
        if "labels" in newest:
            imaging["labels"] = str(data_dir / "documents" / newest["labels"].stored_name)
        document["imaging"] = imaging
    return document


def _validated_label(label: str) -> str:
    label = label.strip()
    if not 1 <= len(label) <= 200:
        raise InputError("label", "1–200 characters", label)
    return label


def create_case(db: Session, actor: Actor, label: str, document: dict) -> Case:
    """Create a case in `intake` and assess it."""
    assessment, error = assess_document(check_case_document(document))
    now = utcnow()
    case = Case(
        label=_validated_label(label),
        status=CaseStatus.intake.value,
        case_document=document,
        assessment=assessment,
        assessment_error=error,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    db.add(case)
    db.flush()
    audit(db, actor, "create", "case", case.id, case.id)
    return case


def case_query(status: str | None = None, search: str | None = None) -> Select:
    """The cases matching a status and a search text (in the label or the case number)."""
    query = select(Case).order_by(Case.updated_at.desc(), Case.id.desc())
    if status:
        query = query.where(Case.status == status)
    if search:
        pattern = f"%{search.strip()}%"
        query = query.where(or_(Case.label.ilike(pattern), cast(Case.id, String).like(pattern)))
    return query


MAX_PAGE_SIZE = 200


def list_cases(
    db: Session, actor: Actor, status: str | None = None, search: str | None = None, page: int = 1, size: int = 50
) -> tuple[list[Case], int]:
    """One page of the cases the caller may see (every role sees every case; closed cases are hidden from
    viewers), newest first, and how many there are in all.

    Parameters
    ----------
    page : int
        1 for the first page.
    size : int
        Cases per page, 1 to `MAX_PAGE_SIZE`.
    """
    if page < 1:
        raise InputError("page", "a page number ≥ 1", page)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InputError("size", f"1 to {MAX_PAGE_SIZE} cases per page", size)
    query = case_query(status, search)
    if actor.role == Role.viewer:
        query = query.where(Case.status != CaseStatus.closed.value)
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    cases = list(db.scalars(query.offset((page - 1) * size).limit(size)))
    audit(
        db,
        actor,
        "list",
        "case",
        detail=f"status={status or ''} search={search or ''} page={page} size={size} n={len(cases)} of {total}",
    )
    return cases, total


def _visible(case: Case, actor: Actor) -> bool:
    """Whether the caller may see the case: every role sees every case, except that closed cases are
    hidden from viewers."""
    return not (actor.role == Role.viewer and case.status == CaseStatus.closed.value)


def get_case(db: Session, actor: Actor, case_id: int, action: str = "read") -> Case:
    """One case, recording the read."""
    case = db.get(Case, case_id)
    if case is None or not _visible(case, actor):
        raise NotFound(f"case {case_id}")
    audit(db, actor, action, "case", case.id, case.id)
    return case


def update_case(
    db: Session,
    actor: Actor,
    case_id: int,
    expected_version: int,
    label: str | None = None,
    document: dict | None = None,
    board_date: dt.date | None = None,
) -> Case:
    """Save edits made to version `expected_version`; raises `VersionConflict` if the case moved on since.

    The check is made twice: here, against the version the caller read, and by the database UPDATE itself
    (SQLAlchemy's version counter), so two saves racing each other cannot both succeed.
    """
    case = db.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id}")
    if case.version != expected_version:
        raise VersionConflict(case, expected_version)
    changed = []
    if label is not None:
        case.label = _validated_label(label)
        changed.append("label")
    if document is not None:
        case.case_document = check_case_document(document)
        case.assessment, case.assessment_error = assess_document(document)
        changed.append("case_document")
    if board_date is not None:
        case.board_date = board_date
        changed.append("board_date")
    case.updated_at = utcnow()
    audit(db, actor, "update", "case", case.id, case.id, detail=",".join(changed))
    db.flush()
    return case


def allowed_steps(case: Case, role: Role) -> list[CaseStatus]:
    """The statuses `role` may move `case` to: the next step of the workflow, or closed."""
    if role == Role.viewer or case.status == CaseStatus.closed.value:
        return []
    index = [s.value for s in WORKFLOW].index(case.status)
    steps = [WORKFLOW[index + 1]] if index + 1 < len(WORKFLOW) else []
    if role == Role.coordinator:
        steps = [s for s in steps if s not in CLINICAL_STEPS]
    return steps + [CaseStatus.closed]


def change_status(db: Session, actor: Actor, case_id: int, to_status: str, reason: str, expected_version: int) -> Case:
    """Move a case along its workflow, recording who moved it and why."""
    case = db.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id}")
    if case.version != expected_version:
        raise VersionConflict(case, expected_version)
    if to_status not in {s.value for s in CaseStatus}:
        raise InputError("to_status", f"one of {[s.value for s in CaseStatus]}", to_status)
    if not reason.strip():
        raise InputError("reason", "a reason for the change")
    if CaseStatus(to_status) not in allowed_steps(case, actor.role):
        raise NotAllowed(f"a {actor.role.value} cannot move case {case.id} from {case.status} to {to_status}")
    db.add(
        StatusChange(
            case_id=case.id,
            from_status=case.status,
            to_status=to_status,
            reason=reason.strip(),
            user_id=actor.user_id,
            at=utcnow(),
        )
    )
    audit(db, actor, "status", "case", case.id, case.id, detail=f"{case.status} -> {to_status}")
    case.status = to_status
    case.updated_at = utcnow()
    db.flush()
    return case


def status_history(db: Session, case_id: int) -> list[tuple[StatusChange, str]]:
    rows = db.execute(
        select(StatusChange, User.username)
        .join(User, User.id == StatusChange.user_id)
        .where(StatusChange.case_id == case_id)
        .order_by(StatusChange.id)
    )
    return [(change, name) for change, name in rows]


# --- tumour board --------------------------------------------------------------------------------------


def board_agenda(db: Session, actor: Actor, board_date: dt.date | None = None) -> list[Case]:
    """Cases awaiting the tumour board (reviewed or planned), optionally of one board date."""
    query = select(Case).where(Case.status.in_([CaseStatus.eligibility_reviewed.value, CaseStatus.planned.value]))
    if board_date:
        query = query.where(Case.board_date == board_date)
    cases = list(db.scalars(query.order_by(Case.board_date, Case.id)))
    audit(db, actor, "list", "board_agenda", detail=f"n={len(cases)}")
    return cases


def record_board_decision(
    db: Session, actor: Actor, case_id: int, decision: str, notes: str, expected_version: int
) -> BoardDecision:
    """Record the board's decision on a case and move it to board_decided."""
    if decision not in BOARD_DECISIONS:
        raise InputError("decision", f"one of {list(BOARD_DECISIONS)}", decision)
    case = db.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id}")
    if case.version != expected_version:
        raise VersionConflict(case, expected_version)
    if case.status not in (CaseStatus.eligibility_reviewed.value, CaseStatus.planned.value):
        raise NotAllowed(f"case {case.id} is {case.status}, not on the board's agenda")
    row = BoardDecision(case_id=case.id, decision=decision, notes=notes, user_id=actor.user_id, at=utcnow())
    db.add(row)
    db.add(
        StatusChange(
            case_id=case.id,
            from_status=case.status,
            to_status=CaseStatus.board_decided.value,
            reason=f"tumour board: {decision}",
            user_id=actor.user_id,
            at=utcnow(),
        )
    )
    audit(db, actor, "board_decision", "case", case.id, case.id, detail=decision)
    case.status = CaseStatus.board_decided.value
    case.updated_at = utcnow()
    db.flush()
    return row


def board_decisions(db: Session, case_id: int) -> list[BoardDecision]:
    return list(db.scalars(select(BoardDecision).where(BoardDecision.case_id == case_id).order_by(BoardDecision.id)))


# --- messages and tasks --------------------------------------------------------------------------------


def add_message(db: Session, actor: Actor, case_id: int, direction: str, counterpart: str, body: str) -> Message:
    """Log a message sent to or received from a hospital, or a note."""
    if direction not in ("sent", "received", "note"):
        raise InputError("direction", "sent, received or note", direction)
    if not body.strip():
        raise InputError("body", "the message text")
    if len(counterpart) > 200:
        raise InputError("counterpart", "at most 200 characters")
    _require_case(db, case_id)
    message = Message(
        case_id=case_id, direction=direction, counterpart=counterpart, body=body, user_id=actor.user_id, at=utcnow()
    )
    db.add(message)
    db.flush()
    audit(db, actor, "create", "message", message.id, case_id)
    return message


def messages(db: Session, case_id: int) -> list[tuple[Message, str]]:
    rows = db.execute(
        select(Message, User.username)
        .join(User, User.id == Message.user_id)
        .where(Message.case_id == case_id)
        .order_by(Message.id)
    )
    return [(m, name) for m, name in rows]


def add_task(
    db: Session, actor: Actor, case_id: int, title: str, due_date: dt.date, assignee: str | None = None
) -> Task:
    """Add a task with a due date, optionally assigned to a user by name."""
    if not 1 <= len(title.strip()) <= 300:
        raise InputError("title", "1–300 characters")
    _require_case(db, case_id)
    assignee_id = None
    if assignee:
        user = db.scalar(select(User).where(User.username == assignee))
        if user is None:
            raise InputError("assignee", "the user name of an existing user", assignee)
        assignee_id = user.id
    task = Task(
        case_id=case_id,
        title=title.strip(),
        due_date=due_date,
        assignee_id=assignee_id,
        done=False,
        created_by=actor.user_id,
        created_at=utcnow(),
    )
    db.add(task)
    db.flush()
    audit(db, actor, "create", "task", task.id, case_id)
    return task


def complete_task(db: Session, actor: Actor, case_id: int, task_id: int) -> Task:
    task = db.get(Task, task_id)
    if task is None or task.case_id != case_id:
        raise NotFound(f"task {task_id}")
    task.done = True
    audit(db, actor, "complete", "task", task.id, case_id)
    db.flush()
    return task


def tasks(db: Session, case_id: int | None = None, open_only: bool = False) -> list[tuple[Task, str | None]]:
    query = select(Task, User.username).outerjoin(User, User.id == Task.assignee_id).order_by(Task.due_date, Task.id)
    if case_id is not None:
        query = query.where(Task.case_id == case_id)
    if open_only:
        query = query.where(Task.done.is_(False))
    return [(t, name) for t, name in db.execute(query)]


# --- documents, jobs, audit ----------------------------------------------------------------------------


def _require_case(db: Session, case_id: int) -> Case:
    case = db.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id}")
    return case


def documents(db: Session, case_id: int) -> list[Document]:
    return list(db.scalars(select(Document).where(Document.case_id == case_id).order_by(Document.id)))


def add_document(
    db: Session, actor: Actor, case_id: int, purpose: str, source: BinaryIO, filename: str, settings: ServiceSettings
) -> Document:
    """Receive an upload (checked by content, stored under a generated name with its SHA-256) for a case."""
    if purpose not in PURPOSES:
        raise InputError("purpose", f"one of {list(PURPOSES)}", purpose)
    _require_case(db, case_id)
    stored_name, file_type, size, sha256 = receive(
        source,
        filename,
        settings.data_dir / "documents",
        int(settings.max_upload_mb * 2**20),
        int(settings.max_unzipped_mb * 2**20),
        settings.max_zip_ratio,
    )
    # The file belongs to the row: if the row is not committed (this refusal, a failed insert or commit,
    # any later error in the request), the file is removed with it.
    discard_on_rollback(db, settings.data_dir / "documents" / stored_name)
    if purpose in ("ct", "labels") and file_type not in IMAGE_TYPES + ("dicom_zip",):
        raise InputError("purpose", "a CT or label image (NIfTI, NRRD or a DICOM zip) for purpose ct/labels", file_type)
    document = Document(
        case_id=case_id,
        purpose=purpose,
        file_type=file_type,
        original_name=filename[:255],
        stored_name=stored_name,
        size_bytes=size,
        sha256=sha256,
        uploaded_by=actor.user_id,
        uploaded_at=utcnow(),
    )
    db.add(document)
    db.flush()
    audit(db, actor, "upload", "document", document.id, case_id, detail=f"{file_type} sha256={sha256}")
    return document


def get_document(db: Session, actor: Actor, case_id: int, document_id: int) -> Document:
    document = db.get(Document, document_id)
    if document is None or document.case_id != case_id or not _visible(db.get(Case, case_id), actor):
        raise NotFound(f"document {document_id}")
    audit(db, actor, "download", "document", document.id, case_id)
    return document


def get_job(
    db: Session, actor: Actor, job_id: int, action: str = "read", object_type: str = "job", detail: str = ""
) -> Job:
    """One job, if the caller may see its case, recording the access."""
    job = db.get(Job, job_id)
    if job is None or not _visible(db.get(Case, job.case_id), actor):
        raise NotFound(f"job {job_id}")
    audit(db, actor, action, object_type, job.id, job.case_id, detail=detail)
    return job


def jobs(db: Session, case_id: int) -> list[Job]:
    return list(db.scalars(select(Job).where(Job.case_id == case_id).order_by(Job.id.desc())))


def latest_plan_job(db: Session, case_id: int) -> Job | None:
    """The newest finished plan or uncertainty job of a case (its output folder is the case's plan), if any."""
    for job in jobs(db, case_id):
        if job.kind in PLAN_KINDS and job.status == JobStatus.done.value:
            return job
    return None


def audit_events(db: Session, actor: Actor, case_id: int | None = None, limit: int = 500) -> list[AuditEvent]:
    """The audit trail, newest first (of one case, or all); reading it is itself recorded."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if case_id is not None:
        query = query.where(AuditEvent.case_id == case_id)
    events = list(db.scalars(query))
    audit(db, actor, "read", "audit_log", case_id=case_id)
    return events


def as_dict(row: Any, *fields: str) -> dict:
    """The named attributes of a row, with dates as ISO 8601 text."""
    out = {}
    for name in fields:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value
    return out
