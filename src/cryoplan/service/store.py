"""Every read and write of the service's data, in one place. Each function that touches patient data
appends an audit event in the same transaction, so a change is never stored without its record."""

from __future__ import annotations

import datetime as dt
import gzip
import math
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, String, cast, delete, func, or_, select
from sqlalchemy.orm import Session

from cryoplan.case import parse_case
from cryoplan.clinical import assess
from cryoplan.errors import InputError
from cryoplan.service.audit import Actor, audit
from cryoplan.service.auth import password_hasher
from cryoplan.service.db import discard_on_rollback
from cryoplan.service.labels import BOARD_REASON_PREFIX
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
from cryoplan.service.uploads import PURPOSES, extracted_series, receive

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
# Where a case goes when the board asked for more information: back on its agenda, reviewed or planned.
BACK_TO_BOARD = (CaseStatus.eligibility_reviewed, CaseStatus.planned)
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


# --- users ---------------------------------------------------------------------------------------------


USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 12


def normal_username(username: str) -> str:
    """A user name as stored and compared: ASCII, lower case, so that no two names look alike
    (``ADMIN1`` is ``admin1``, and ``admın1`` with a dotless ı is refused)."""
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InputError(
            "username", "1–64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit", username
        )
    return name


@cache
def common_passwords() -> frozenset[str]:
    """The 20,000 most common passwords (lower case), shipped with the package."""
    with resources.files("cryoplan.service").joinpath("data/common-passwords.txt.gz").open("rb") as handle:
        return frozenset(gzip.decompress(handle.read()).decode("utf-8").split())


def check_password_policy(password: str, username: str) -> None:
    """Refuse a password shorter than `MIN_PASSWORD_LENGTH` characters once runs of spaces count as one,
    one of the most common passwords, or one that is or contains the user name.

    References
    ----------
    .. [1] OWASP Application Security Verification Standard 4.0.3, V2.1.1 (at least 12 characters, runs of
       spaces counted once) and V2.1.7 (checked against a list of breached or common passwords).
    .. [2] NIST SP 800-63B, Digital Identity Guidelines: Authentication and Lifecycle Management, §5.1.1.2
       (compare against commonly used values and context-specific words such as the user name).
    .. [3] R. Williams, 20,000 most common passwords (the list Django ships as common-passwords.txt.gz).
    """
    if len(re.sub(r"\s+", " ", password.strip())) < MIN_PASSWORD_LENGTH:
        raise InputError("password", f"at least {MIN_PASSWORD_LENGTH} characters (runs of spaces count once)")
    folded = password.lower()
    if folded in common_passwords() or folded.strip() in common_passwords():
        raise InputError("password", "a password that is not among the 20,000 most common ones")
    if username.lower() in folded:
        raise InputError("password", "a password that does not contain the user name")


def create_user(
    db: Session, username: str, password: str, role: str, full_name: str = "", actor: Actor | None = None
) -> User:
    """Create a user with an Argon2-hashed password (`check_password_policy`); user names are ASCII and stored in
    lower case (`normal_username`)."""
    username = normal_username(username)
    check_password_policy(password, username)
    if role not in {r.value for r in Role}:
        raise InputError("role", f"one of {[r.value for r in Role]}", role)
    if db.scalar(select(User).where(func.lower(User.username) == username)):
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


# Bounds of a stored case document: a real case file nests 4 levels and holds numbers far below 1e6.
MAX_DOCUMENT_DEPTH = 16
MAX_DOCUMENT_NUMBER = 1e6
MAX_DOCUMENT_ITEMS = 20_000


def _check_values(value: object, path: str, depth: int, count: list[int]) -> None:
    """Walk a JSON value, refusing nesting deeper than `MAX_DOCUMENT_DEPTH`, more than `MAX_DOCUMENT_ITEMS`
    values in all, and numbers that are not finite or exceed `MAX_DOCUMENT_NUMBER` in magnitude."""
    count[0] += 1
    if count[0] > MAX_DOCUMENT_ITEMS:
        raise InputError("case_document", f"at most {MAX_DOCUMENT_ITEMS} values in all")
    if depth > MAX_DOCUMENT_DEPTH:
        raise InputError(path, f"nesting at most {MAX_DOCUMENT_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, f"{path}.{key}"[:200], depth + 1, count)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]"[:200], depth + 1, count)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (math.isfinite(value) and abs(value) <= MAX_DOCUMENT_NUMBER):
            raise InputError(path, f"a finite number of magnitude at most {MAX_DOCUMENT_NUMBER:g}", value)


def check_case_document(document: object) -> dict[str, Any]:
    """A case document as the service stores it: a JSON object, bounded in depth, size and magnitude of
    its numbers, whose ``imaging`` section holds no file paths (images are attached as documents; the
    service fills the paths in, see `run_document`)."""
    if not isinstance(document, dict):
        raise InputError("case_document", "a JSON object (the case file)", type(document).__name__)
    _check_values(document, "case_document", 0, [0])
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


def assess_document(document: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Run the eligibility assessment on a case document: (assessment JSON, None), or (None, the reason the
    document is not yet assessable, e.g. a missing diagnosis) so that incomplete records can still be saved.
    The images are not needed for the assessment, so the imaging section is left out."""
    without_images = {key: value for key, value in document.items() if key != "imaging"}
    try:
        return assess(parse_case(without_images, "case_document")).to_dict(), None
    except InputError as error:
        return None, str(error)


def newest_images(db: Session, case_id: int) -> dict[str, Document]:
    """The case's newest CT (a NIfTI or NRRD volume, or a DICOM series uploaded as a zip) and newest label image,
    by purpose."""
    newest = {}
    for row in documents(db, case_id):
        if row.file_type in IMAGE_TYPES or (row.purpose == "ct" and row.file_type == "dicom_zip"):
            newest[row.purpose] = row
    return newest


def image_path(data_dir: Path, document: Document) -> Path:
    """Where the readers find a stored image: the file, or the extracted folder of a DICOM zip."""
    stored = data_dir / "documents" / document.stored_name
    return extracted_series(stored) if document.file_type == "dicom_zip" else stored


def run_document(db: Session, case: Case, data_dir: Path) -> dict[str, Any]:
    """The case document for a job: the stored one, with the imaging paths of the newest CT and label
    documents of the case filled in (and no imaging section when no CT is attached)."""
    document = {key: value for key, value in case.case_document.items() if key != "imaging"}
    document["case_id"] = document.get("case_id") or case.label  # names the plan and its report
    newest = newest_images(db, case.id)
    if "ct" in newest:
        imaging = dict(case.case_document.get("imaging") or {})
        imaging["image"] = str(image_path(data_dir, newest["ct"]))
        if "labels" in newest:
            imaging["labels"] = str(data_dir / "documents" / newest["labels"].stored_name)
        document["imaging"] = imaging
    return document


def _validated_label(label: str) -> str:
    label = label.strip()
    if not 1 <= len(label) <= 200:
        raise InputError("label", "1–200 characters", label)
    return label


def create_case(db: Session, actor: Actor, label: str, document: dict[str, Any]) -> Case:
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


def case_conditions(status: str | None = None, search: str | None = None) -> list[ColumnElement[bool]]:
    """The conditions of the cases matching a status and a search text (in the label or the case number)."""
    conditions = []
    if status:
        conditions.append(Case.status == status)
    if search:
        pattern = f"%{search.strip()}%"
        conditions.append(or_(Case.label.ilike(pattern), cast(Case.id, String).like(pattern)))
    return conditions


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
    conditions = case_conditions(status, search)
    if actor.role == Role.viewer:
        conditions.append(Case.status != CaseStatus.closed.value)
    # Counted by id alone: the count never reads the case documents.
    total = db.execute(select(func.count(Case.id)).where(*conditions)).scalar_one()
    query = select(Case).where(*conditions).order_by(Case.updated_at.desc(), Case.id.desc())
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


def peek_case(db: Session, actor: Actor, case_id: int) -> Case:
    """One case, if the caller may see it, without recording the read: for what an open page polls, which
    holds no patient data (job kinds, stages and fractions)."""
    case = db.get(Case, case_id)
    if case is None or not _visible(case, actor):
        raise NotFound(f"case {case_id}")
    return case


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
    document: dict[str, Any] | None = None,
    board_date: dt.date | None = None,
) -> Case:
    """Save edits made to version `expected_version`; raises `VersionConflict` if the case moved on since.

    The check is made twice: here, against the version the caller read, and by the database UPDATE itself
    (SQLAlchemy's version counter), so two saves racing each other cannot both succeed.
    """
    case = require_open_case(db, case_id)
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


def plan_stale_reasons(db: Session, case: Case, plan_job: Job) -> list[str]:
    """Why a plan no longer matches its case: the case file edited, or a CT or segmentation uploaded, after it."""
    reasons = []
    edits = db.scalars(
        select(AuditEvent).where(
            AuditEvent.case_id == case.id,
            AuditEvent.action == "update",
            AuditEvent.object_type == "case",
            AuditEvent.detail.contains("case_document"),
            AuditEvent.at > plan_job.created_at,
        )
    ).all()
    if edits:
        last = edits[-1]
        reasons.append(f"the case file was edited after the plan ({last.at:%Y-%m-%d %H:%M} by {last.username})")
    for document in documents(db, case.id):
        if document.purpose in ("ct", "labels") and aware(document.uploaded_at) > aware(plan_job.created_at):
            what = "a CT" if document.purpose == "ct" else "a segmentation"
            reasons.append(f"{what} was uploaded after the plan (“{document.original_name}”)")
    return reasons


def aware(at: dt.datetime) -> dt.datetime:
    """A stored time as an aware UTC datetime (SQLite returns naive UTC datetimes)."""
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def current_plan_problem(db: Session, case: Case) -> str | None:
    """Why the case may not be marked planned (no finished plan, or one the case has moved on from), or None."""
    plan_job = latest_plan_job(db, case.id)
    if plan_job is None:
        return "“Planned” needs a finished plan"
    stale = plan_stale_reasons(db, case, plan_job)
    if stale:
        return "“Planned” needs a finished plan that is up to date (" + "; ".join(stale) + ")"
    return None


def latest_board_decision(db: Session, case_id: int) -> BoardDecision | None:
    return db.scalar(
        select(BoardDecision).where(BoardDecision.case_id == case_id).order_by(BoardDecision.id.desc()).limit(1)
    )


def awaits_more_information(db: Session, case: Case) -> BoardDecision | None:
    """The board's decision asking for more information, while the case still stands at that decision."""
    if case.status != CaseStatus.board_decided.value:
        return None
    decision = latest_board_decision(db, case.id)
    return decision if decision is not None and decision.decision == "more_information_needed" else None


def allowed_steps(db: Session, case: Case, role: Role) -> list[CaseStatus]:
    """The statuses `role` may move `case` to: the next step of the workflow, or closed.

    "Planned" is offered only with a current plan (`current_plan_problem`); "board decided" never, as only
    a recorded board decision moves a case there. After the board asked for more information, the case goes
    back to the board (reviewed, or planned) instead of on to referral.
    """
    if role == Role.viewer or case.status == CaseStatus.closed.value:
        return []
    if awaits_more_information(db, case):
        steps = list(BACK_TO_BOARD)
    else:
        index = [s.value for s in WORKFLOW].index(case.status)
        steps = [WORKFLOW[index + 1]] if index + 1 < len(WORKFLOW) else []
    if CaseStatus.planned in steps and current_plan_problem(db, case):
        steps.remove(CaseStatus.planned)
    if CaseStatus.board_decided in steps:  # only a recorded decision (`record_board_decision`) moves it there
        steps.remove(CaseStatus.board_decided)
    if role == Role.coordinator:
        steps = [s for s in steps if s not in CLINICAL_STEPS]
    return steps + [CaseStatus.closed]


def change_status(db: Session, actor: Actor, case_id: int, to_status: str, reason: str, expected_version: int) -> Case:
    """Move a case along its workflow, recording who moved it and why; "planned" is refused, with the
    reason, without a current plan."""
    case = db.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id}")
    if case.version != expected_version:
        raise VersionConflict(case, expected_version)
    if to_status not in {s.value for s in CaseStatus}:
        raise InputError("to_status", f"one of {[s.value for s in CaseStatus]}", to_status)
    if not reason.strip():
        raise InputError("reason", "a reason for the change")
    if to_status == CaseStatus.planned.value:
        problem = current_plan_problem(db, case)
        if problem:
            raise NotAllowed(f"{problem}: run a plan first")
    if to_status == CaseStatus.board_decided.value:
        raise NotAllowed("“Board decided” comes only with the board's decision, chosen and confirmed on the board page")
    if CaseStatus(to_status) not in allowed_steps(db, case, actor.role):
        raise NotAllowed(f"a {actor.role.value} cannot move case {case.id} from {case.status} to {to_status}")
    return _move(db, actor, case, to_status, reason, "status")


def return_to_board(
    db: Session,
    actor: Actor,
    case_id: int,
    to_status: str,
    board_date: dt.date | None,
    reason: str,
    expected_version: int,
) -> Case:
    """Present a case again to the board that asked for more information: back to `to_status` (reviewed, or
    planned with a current plan) on the agenda of the meeting of `board_date`, with what came in as the
    reason."""
    case = require_open_case(db, case_id)
    if case.version != expected_version:
        raise VersionConflict(case, expected_version)
    if awaits_more_information(db, case) is None:
        raise NotAllowed(f"case {case.id} is {case.status}: the board has not asked for more information on it")
    if to_status not in {s.value for s in BACK_TO_BOARD}:
        raise InputError("to_status", " or ".join(s.value for s in BACK_TO_BOARD), to_status)
    if board_date is None:
        raise InputError("board_date", "the date of the board meeting to present the case at (YYYY-MM-DD)")
    if board_date < dt.date.today():
        raise InputError("board_date", "a meeting today or later", board_date.isoformat())
    if not reason.strip():
        raise InputError("reason", "what came in that the board asked for")
    if to_status == CaseStatus.planned.value and (problem := current_plan_problem(db, case)):
        raise NotAllowed(f"{problem}: run a plan first")
    if CaseStatus(to_status) not in allowed_steps(db, case, actor.role):
        raise NotAllowed(f"a {actor.role.value} cannot present case {case.id} to the board again")
    case.board_date = board_date
    return _move(db, actor, case, to_status, reason, "return_to_board")


def _move(db: Session, actor: Actor, case: Case, to_status: str, reason: str, action: str) -> Case:
    """Record a status change with its reason and audit event, and move the case."""
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
    audit(db, actor, action, "case", case.id, case.id, detail=f"{case.status} -> {to_status}")
    case.status = to_status
    case.updated_at = utcnow()
    db.flush()
    return case


def reopen_case(db: Session, actor: Actor, case_id: int, reason: str, expected_version: int) -> Case:
    """Reopen a closed case: it returns to the status it was closed from, and can be changed again."""
    case = _require_case(db, case_id)
    if case.version != expected_version:
        raise VersionConflict(case, expected_version)
    if case.status != CaseStatus.closed.value:
        raise NotAllowed(f"case {case.id} is {case.status}, not closed")
    if actor.role == Role.viewer:
        raise NotAllowed("a viewer cannot reopen a case")
    if not reason.strip():
        raise InputError("reason", "a reason for reopening the case")
    closing = db.scalar(
        select(StatusChange)
        .where(StatusChange.case_id == case.id, StatusChange.to_status == CaseStatus.closed.value)
        .order_by(StatusChange.id.desc())
        .limit(1)
    )
    to_status = closing.from_status if closing else CaseStatus.intake.value
    return _move(db, actor, case, to_status, reason, "reopen")


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
    db: Session, actor: Actor, case_id: int, decision: str, notes: str, expected_version: int, confirmed: bool
) -> BoardDecision:
    """Record the board's decision on a case and move it to board_decided: an explicit choice, confirmed."""
    if not decision:
        raise InputError("decision", "the board's decision, chosen from the list")
    if decision not in BOARD_DECISIONS:
        raise InputError("decision", f"one of {list(BOARD_DECISIONS)}", decision)
    if not confirmed:
        raise InputError("confirm", "the confirmation that this is the board's decision, ticked")
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
            reason=f"{BOARD_REASON_PREFIX}{decision}",
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
    require_open_case(db, case_id)
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
    require_open_case(db, case_id)
    assignee_id = None
    if assignee:
        user = db.scalar(select(User).where(func.lower(User.username) == assignee.strip().lower()))
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
    require_open_case(db, case_id)
    task.done = True
    audit(db, actor, "complete", "task", task.id, case_id)
    db.flush()
    return task


def tasks(db: Session, case_id: int | None = None, open_only: bool = False) -> list[tuple[Task, str | None]]:
    """The tasks of one case, or of all cases; `open_only` gives the work still to do: tasks not done, of
    cases not closed (a closed case's tasks are nobody's work, and closed cases are hidden from viewers)."""
    query = select(Task, User.username).outerjoin(User, User.id == Task.assignee_id).order_by(Task.due_date, Task.id)
    if case_id is not None:
        query = query.where(Task.case_id == case_id)
    if open_only:
        query = (
            query.join(Case, Case.id == Task.case_id)
            .where(Task.done.is_(False))
            .where(Case.status != CaseStatus.closed.value)
        )
    return [(t, name) for t, name in db.execute(query)]


# --- documents, jobs, audit ----------------------------------------------------------------------------


def _require_case(db: Session, case_id: int) -> Case:
    case = db.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id}")
    return case


def require_open_case(db: Session, case_id: int) -> Case:
    """The case, if it exists and is not closed: a closed case is read-only until it is reopened."""
    case = _require_case(db, case_id)
    if case.status == CaseStatus.closed.value:
        raise NotAllowed(f"case {case.id} is closed and read-only; reopen it to change it")
    return case


def documents(db: Session, case_id: int) -> list[Document]:
    return list(db.scalars(select(Document).where(Document.case_id == case_id).order_by(Document.id)))


def add_document(
    db: Session, actor: Actor, case_id: int, purpose: str, source: BinaryIO, filename: str, settings: ServiceSettings
) -> Document:
    """Receive an upload (checked by content, stored under a generated name with its SHA-256) for a case."""
    if purpose not in PURPOSES:
        raise InputError("purpose", f"one of {list(PURPOSES)}", purpose)
    require_open_case(db, case_id)
    stored_name, file_type, size, sha256 = receive(
        source,
        filename,
        settings.data_dir / "documents",
        int(settings.max_upload_mb * 2**20),
        int(settings.max_unzipped_mb * 2**20),
        settings.max_zip_ratio,
        int(settings.max_image_mb * 2**20),
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
    if document is None or document.case_id != case_id or not _visible(db.get_one(Case, case_id), actor):
        raise NotFound(f"document {document_id}")
    audit(db, actor, "download", "document", document.id, case_id)
    return document


def get_job(
    db: Session, actor: Actor, job_id: int, action: str = "read", object_type: str = "job", detail: str = ""
) -> Job:
    """One job, if the caller may see its case, recording the access."""
    job = db.get(Job, job_id)
    if job is None or not _visible(db.get_one(Case, job.case_id), actor):
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


MAX_AUDIT_PAGE_SIZE = 1000


def audit_page(
    db: Session,
    actor: Actor,
    case_id: int | None = None,
    *,
    username: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    page: int = 1,
    size: int = 500,
) -> tuple[list[AuditEvent], int]:
    """One page of the audit trail, newest first (of one case, or all), filtered by user name, action and
    time (`since` inclusive, `until` exclusive), and how many events match in all; reading it is itself
    recorded."""
    if page < 1:
        raise InputError("page", "a page number ≥ 1", page)
    if not 1 <= size <= MAX_AUDIT_PAGE_SIZE:
        raise InputError("size", f"1 to {MAX_AUDIT_PAGE_SIZE} events per page", size)
    conditions = []
    if case_id is not None:
        conditions.append(AuditEvent.case_id == case_id)
    if username:
        conditions.append(AuditEvent.username == username.strip().lower())
    if action:
        conditions.append(AuditEvent.action == action)
    if since is not None:
        conditions.append(AuditEvent.at >= since)
    if until is not None:
        conditions.append(AuditEvent.at < until)
    total = db.execute(select(func.count(AuditEvent.id)).where(*conditions)).scalar_one()
    query = select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
    events = list(db.scalars(query.offset((page - 1) * size).limit(size)))
    filters = f"user={username or ''} action={action or ''} page={page} size={size}"
    audit(db, actor, "read", "audit_log", case_id=case_id, detail=filters)
    return events, total


def as_dict(row: Any, *fields: str) -> dict[str, Any]:
    """The named attributes of a row, with dates as ISO 8601 text."""
    out = {}
    for name in fields:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value
    return out
