"""Server-rendered pages (Jinja2). Forms post with the session's CSRF token and redirect back (303)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoplan.errors import InputError
from cryoplan.service import reports, store
from cryoplan.service.audit import Actor, audit
from cryoplan.service.auth import (
    ADMIN,
    ALL_ROLES,
    CLINICAL,
    EDITORS,
    requires,
)
from cryoplan.service.deps import Id, transaction
from cryoplan.service.jobs import JobRunner, job_kinds, submit_job
from cryoplan.service.labels import label, status_reason
from cryoplan.service.models import (
    PLAN_KINDS,
    BoardDecision,
    Case,
    CaseStatus,
    Document,
    Job,
    JobStatus,
    Message,
    Role,
    StatusChange,
    User,
)
from cryoplan.service.routes import inbox
from cryoplan.service.routes.api import ReferralQuery
from cryoplan.service.routes.case_entry import lab_warnings
from cryoplan.service.routes.status import JOB_KIND_LABELS
from cryoplan.service.routes.viewer_config import viewer_config
from cryoplan.thermal import PROBES

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(requires(*ALL_ROLES, page=True))]
Editor = Annotated[Actor, Depends(requires(*EDITORS, page=True))]
Clinician = Annotated[Actor, Depends(requires(*CLINICAL, page=True))]
Admin = Annotated[Actor, Depends(requires(*ADMIN, page=True))]
AuditReader = Annotated[Actor, Depends(requires(Role.admin, Role.coordinator, Role.clinician, page=True))]


def render(request: Request, name: str, actor: Actor | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page, with the caller's count of unread messages for the header."""
    if actor is not None and "inbox_count" not in context:
        with transaction(request) as db:
            context["inbox_count"] = inbox.unread_count(db, actor.user_id)
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, name, {"actor": actor, **context}, status_code=status_code
    )
    return page


def back_to(case_id: int) -> RedirectResponse:
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", None)


@router.get("/")
def case_list(
    request: Request,
    actor: Reader,
    status: str | None = None,
    search: str | None = None,
    page: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1,
    size: Annotated[int, Query(ge=1, le=store.MAX_PAGE_SIZE)] = 50,
) -> HTMLResponse:
    status = status if status in {s.value for s in CaseStatus} else None
    search = (search or "").replace("\x00", "")[:100] or None
    with transaction(request) as db:
        cases, total = store.list_cases(db, actor, status, search, page, size)
    pages = max(1, -(-total // size))
    return render(
        request,
        "cases.html",
        actor,
        cases=cases,
        statuses=[s.value for s in CaseStatus],
        status=status,
        search=search,
        can_edit=actor.role in EDITORS,
        page=page,
        size=size,
        pages=pages,
        total=total,
        filters={"status": status or "", "search": search or "", "size": size},
    )


# Typed and measured lesion sizes and distances disagree when they differ by more than this many mm or this
# fraction of the measured value, whichever is larger (about two voxels of a 1.5 mm CT, or a fifth).
DISCREPANCY_MM = 3.0
DISCREPANCY_FRACTION = 0.2
MEASURED = (
    ("diameter_mm", "max_diameter_mm", "largest diameter"),
    ("distance_to_major_vessel_mm", "distance_to_major_vessel_mm", "distance to the nearest major vessel"),
    ("distance_to_bile_duct_mm", "distance_to_bile_duct_mm", "distance to the nearest bile duct"),
)


def discrepancies(document: dict[str, Any], plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Where a typed lesion value (the case document) and the images' measurement (the plan) disagree."""
    if plan is None:
        return []
    typed = {lesion.get("id"): lesion for lesion in document.get("lesions") or [] if isinstance(lesion, dict)}
    found = []
    for lesion in plan.get("lesions") or []:
        measured, entered = lesion.get("imaging") or {}, typed.get(lesion.get("id"))
        if not entered:
            continue
        for typed_key, measured_key, quantity in MEASURED:
            a, b = entered.get(typed_key), measured.get(measured_key)
            if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
                continue
            if abs(a - b) > max(DISCREPANCY_MM, DISCREPANCY_FRACTION * abs(b)):
                found.append(
                    {
                        "lesion_id": lesion["id"],
                        "quantity": quantity,
                        "typed_mm": a,
                        "measured_mm": b,
                        "used": "The plan and its assessment use the measured value; the eligibility assessment "
                        "of the case (above) uses the typed one.",
                    }
                )
    return found


def plan_context(db: Session, runner: JobRunner, case: Case) -> dict[str, Any]:
    """What the plan panel shows: the case's newest finished plan, its figures, its isotherm masks, and
    whether it is out of date or disagrees with the typed values."""
    plan_job = store.latest_plan_job(db, case.id)
    plan_dir = None if plan_job is None else runner.output_dir(plan_job.id)
    plan = reports.plan_summary(plan_dir)
    return dict(
        plan=plan,
        plan_job=plan_job,
        figures=(plan or {}).get("outputs", {}).get("figures", []),
        isotherm=reports.lethal_isotherm_mask(plan, plan_dir),
        plan_status={
            "stale": store.plan_stale_reasons(db, case, plan_job) if plan and plan_job else [],
            "discrepancies": discrepancies(case.case_document, plan),
        },
    )


@router.get("/cases/{case_id}/plan-panel")
def plan_panel(request: Request, case_id: Id, actor: Reader) -> HTMLResponse:
    """The plan results alone, for the case page to swap in when a job finishes."""
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id)
        context = plan_context(db, request.app.state.runner, case)
    return render(request, "_plan_panel.html", actor, case=case, **context)


def timeline(
    history: Sequence[tuple[StatusChange, str]],
    decisions: Sequence[BoardDecision],
    messages: Sequence[tuple[Message, str]],
    documents: Sequence[Document],
    jobs: Sequence[Job],
) -> list[dict[str, Any]]:
    """Everything that happened to a case, newest first: workflow steps, board decisions, messages,
    documents and jobs."""
    events = [
        {
            "at": c.at,
            "kind": "Workflow",
            "who": name,
            "text": f"{label(c.from_status)} → {label(c.to_status)}: {status_reason(c.reason)}",
        }
        for c, name in history
    ]
    events += [
        {"at": d.at, "kind": "Board", "who": "", "text": f"decision: {label(d.decision)}. {d.notes}".strip()}
        for d in decisions
    ]
    events += [
        {"at": m.at, "kind": "Message", "who": name, "text": f"{label(m.direction)}: {m.body[:120]}"}
        for m, name in messages
    ]
    events += [
        {"at": d.uploaded_at, "kind": "Document", "who": "", "text": f"{label(d.purpose)}: {d.original_name}"}
        for d in documents
    ]
    events += [
        {
            "at": j.finished_at or j.created_at,
            "kind": "Job",
            "who": "",
            "text": f"{JOB_KIND_LABELS.get(j.kind, j.kind)}: {label(j.status)}",
        }
        for j in jobs
    ]
    return sorted(events, key=lambda e: store.aware(e["at"]), reverse=True)


def steps_for(db: Session, case: Case, role: Role) -> tuple[list[CaseStatus], list[CaseStatus], str | None]:
    """The workflow steps the page offers, those that put the case back on the board's agenda after it asked
    for more information (a form of their own), and why "planned" is withheld when it would be next."""
    steps = store.allowed_steps(db, case, role)
    back_to_board = store.awaits_more_information(db, case) is not None
    withheld = None
    clinical = role in (Role.clinician, Role.admin)
    if (
        clinical
        and CaseStatus.planned not in steps
        and (case.status == CaseStatus.eligibility_reviewed.value or back_to_board)
    ):
        withheld = store.current_plan_problem(db, case)
    board_steps = [s for s in steps if back_to_board and s in store.BACK_TO_BOARD]
    return [s for s in steps if s not in board_steps], board_steps, withheld


def measured_assessment(db: Session, runner: JobRunner, case: Case) -> tuple[dict[str, Any] | None, Job | None]:
    """The newest finished assessment job's result (lesions measured on the images, as ``cryoplan assess``),
    unless the case file was edited or an image uploaded after it."""
    for job in store.jobs(db, case.id):
        if job.kind == "assessment" and job.status == JobStatus.done.value:
            path = runner.output_dir(job.id) / "assessment.json"
            if store.plan_stale_reasons(db, case, job) or not path.is_file():
                return None, None
            found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return found, job
    return None, None


def case_page_response(
    request: Request,
    case_id: int,
    actor: Actor,
    status_code: int = 200,
    form_errors: dict[str, str] | None = None,
    kept: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The case page; after a refused form, with the problem beside that form and what was typed kept."""
    runner = request.app.state.runner
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id)
        documents = store.documents(db, case_id)
        images = store.newest_images(db, case_id)
        jobs = store.jobs(db, case_id)
        plan = plan_context(db, runner, case)
        steps, board_steps, planned_withheld = steps_for(db, case, actor.role)
        more_information = store.awaits_more_information(db, case)
        measured, assessment_job = measured_assessment(db, runner, case)
        history = store.status_history(db, case_id)
        decisions = store.board_decisions(db, case_id)
        messages = store.messages(db, case_id)
        context = dict(
            **plan,
            case=case,
            document=case.case_document,
            assessment=measured or case.assessment,
            assessment_job=assessment_job,
            documents=documents,
            ct=images.get("ct"),
            labels=images.get("labels"),
            jobs=jobs,
            progress={j.id: runner.progress(j) for j in jobs},
            job_kinds=job_kinds(),
            uncertainty_samples=request.app.state.settings.uncertainty_samples,
            job_kind_labels=JOB_KIND_LABELS,
            lab_warnings=lab_warnings(case.case_document),
            history=history,
            decisions=decisions,
            messages=messages,
            tasks=store.tasks(db, case_id),
            users=active_users(db),
            timeline=timeline(history, decisions, messages, documents, jobs),
            probe_types=sorted(PROBES),
            viewer=viewer_config(
                case.case_document, plan["plan"], plan["plan_job"].id if plan["plan_job"] is not None else None
            ),
            steps=steps,
            board_steps=board_steps,
            more_information=more_information,
            planned_withheld=planned_withheld,
            can_edit=actor.role in EDITORS,
            can_audit=actor.role != Role.viewer,
            form_errors=form_errors or {},
            kept=kept or {},
        )
    return render(request, "case.html", actor, status_code=status_code, **context)


def active_users(db: Session) -> list[tuple[str, str]]:
    """(user name, full name) of every active user, for the pickers."""
    return [
        (u.username, u.full_name) for u in db.scalars(select(User).where(User.active.is_(True)).order_by(User.username))
    ]


def refused_form(
    request: Request, case_id: int, actor: Actor, form: str, problem: Exception, kept: dict[str, Any]
) -> HTMLResponse:
    status = 422 if isinstance(problem, InputError) else 409
    return case_page_response(request, case_id, actor, status, {form: str(problem)}, {form: kept})


def finished_plans(db: Session, case_id: int) -> list[Job]:
    """The case's finished plan and uncertainty jobs, newest first."""
    return [j for j in store.jobs(db, case_id) if j.kind in PLAN_KINDS and j.status == JobStatus.done.value]


@router.get("/cases/{case_id}/referral")
def referral_page(
    request: Request, case_id: Id, actor: Editor, query: Annotated[ReferralQuery, Query()]
) -> HTMLResponse:
    """The coordinator chooses what the referral packet holds and sees the list of its files before
    downloading it."""
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id, action="referral_preview")
        documents = store.documents(db, case_id)
        selection = query.selection()
        contents = reports.referral_contents(db, case_id, request.app.state.runner, selection)
        has_plan = store.latest_plan_job(db, case_id) is not None
    chosen = {d.id for d in documents} if selection.document_ids is None else selection.document_ids
    return render(
        request,
        "referral.html",
        actor,
        case=case,
        documents=documents,
        chosen=chosen,
        selection=selection,
        contents=contents,
        has_plan=has_plan,
    )


@router.get("/cases/{case_id}/compare")
def compare_plans(
    request: Request,
    case_id: Id,
    actor: Reader,
    a: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    b: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    """Two plans of a case side by side (the newest two unless chosen): coverage, margins, probes, risks."""
    runner = request.app.state.runner
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id, action="compare_plans")
        jobs = finished_plans(db, case_id)
        by_id: dict[int | None, Job] = {job.id: job for job in jobs}  # looked up with the optional a and b
        chosen = [by_id.get(a) or (jobs[0] if jobs else None), by_id.get(b) or (jobs[1] if len(jobs) > 1 else None)]
        if a is not None and a not in by_id or b is not None and b not in by_id:
            raise store.NotFound(f"finished plan {a if a not in by_id else b} of case {case_id}")
        columns = [
            {"job": job, "plan": reports.plan_summary(runner.output_dir(job.id))} for job in chosen if job is not None
        ]
    return render(request, "compare.html", actor, case=case, jobs=jobs, columns=columns)


@router.get("/cases/{case_id}/summary")
def case_summary(request: Request, case_id: Id, actor: Reader) -> HTMLResponse:
    """A one-page summary of the case for the tumour board (prints on one A4 page)."""
    with transaction(request) as db:
        case = store.get_case(db, actor, case_id, action="summary")
        plan = plan_context(db, request.app.state.runner, case)
        decisions = store.board_decisions(db, case_id)
    return render(
        request,
        "summary.html",
        actor,
        case=case,
        document=case.case_document,
        assessment=case.assessment,
        decisions=decisions,
        **plan,
    )


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: Id, actor: Reader) -> HTMLResponse:
    return case_page_response(request, case_id, actor)


@router.post("/cases/{case_id}/status")
def change_status(
    request: Request,
    case_id: Id,
    actor: Editor,
    version: Annotated[int, Form()],
    to_status: Annotated[str, Form()],
    reason: Annotated[str, Form()],
) -> Response:
    kept = {"to_status": to_status, "reason": reason}
    try:
        with transaction(request) as db:
            store.change_status(db, actor, case_id, to_status, reason, version)
    except (InputError, store.NotAllowed, store.VersionConflict) as problem:
        return refused_form(request, case_id, actor, "workflow", problem, kept)
    return back_to(case_id)


@router.post("/cases/{case_id}/return-to-board")
def return_to_board(
    request: Request,
    case_id: Id,
    actor: Clinician,
    version: Annotated[int, Form()],
    to_status: Annotated[str, Form(max_length=32)],
    board_date: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Present a case the board asked more information on to a board meeting again."""
    kept = {"to_status": to_status, "board_date": board_date, "reason": reason}
    try:
        try:
            date = dt.date.fromisoformat(board_date.strip()) if board_date.strip() else None
        except ValueError:
            raise InputError("board_date", "a date YYYY-MM-DD", board_date) from None
        with transaction(request) as db:
            store.return_to_board(db, actor, case_id, to_status, date, reason, version)
    except (InputError, store.NotAllowed, store.VersionConflict) as problem:
        return refused_form(request, case_id, actor, "board_return", problem, kept)
    return back_to(case_id)


@router.post("/cases/{case_id}/reopen")
def reopen_case(
    request: Request,
    case_id: Id,
    actor: Editor,
    version: Annotated[int, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Reopen a closed case: it returns to the status it was closed from."""
    try:
        with transaction(request) as db:
            store.reopen_case(db, actor, case_id, reason, version)
    except (InputError, store.NotAllowed, store.VersionConflict) as problem:
        return refused_form(request, case_id, actor, "reopen", problem, {"reason": reason})
    return back_to(case_id)


@router.post("/cases/{case_id}/documents")
def upload(
    request: Request,
    case_id: Id,
    actor: Editor,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()] = "record",
) -> Response:
    try:
        with transaction(request) as db:
            settings = request.app.state.settings
            store.add_document(db, actor, case_id, purpose, file.file, file.filename or "", settings)
    except InputError as problem:
        return refused_form(request, case_id, actor, "documents", problem, {"purpose": purpose})
    return back_to(case_id)


@router.post("/cases/{case_id}/messages")
def add_message(
    request: Request,
    case_id: Id,
    actor: Editor,
    direction: Annotated[str, Form()],
    body: Annotated[str, Form()],
    counterpart: Annotated[str, Form()] = "",
) -> Response:
    try:
        with transaction(request) as db:
            store.add_message(db, actor, case_id, direction, counterpart, body)
    except InputError as problem:
        kept = {"direction": direction, "body": body, "counterpart": counterpart}
        return refused_form(request, case_id, actor, "messages", problem, kept)
    return back_to(case_id)


@router.post("/cases/{case_id}/team-messages")
def send_team_message(
    request: Request,
    case_id: Id,
    actor: Editor,
    recipient: Annotated[str, Form(max_length=64)],
    body: Annotated[str, Form(max_length=inbox.MAX_BODY + 100)],
) -> Response:
    """Address a message about this case to a user of the service (it lands in their inbox)."""
    try:
        with transaction(request) as db:
            inbox.send(db, actor, recipient, body, case_id)
    except InputError as problem:
        return refused_form(request, case_id, actor, "team", problem, {"recipient": recipient, "body": body})
    return back_to(case_id)


@router.post("/cases/{case_id}/tasks")
def add_task(
    request: Request,
    case_id: Id,
    actor: Editor,
    title: Annotated[str, Form()],
    due_date: Annotated[str, Form()] = "",
    assignee: Annotated[str, Form()] = "",
) -> Response:
    kept = {"title": title, "due_date": due_date, "assignee": assignee}
    try:
        try:
            due = dt.date.fromisoformat(due_date)
        except ValueError:
            raise InputError("due_date", "a date YYYY-MM-DD", due_date) from None
        with transaction(request) as db:
            store.add_task(db, actor, case_id, title, due, assignee or None)
    except InputError as problem:
        return refused_form(request, case_id, actor, "tasks", problem, kept)
    return back_to(case_id)


@router.post("/cases/{case_id}/tasks/{task_id}/done")
def complete_task(request: Request, case_id: Id, task_id: Id, actor: Editor) -> Response:
    with transaction(request) as db:
        store.complete_task(db, actor, case_id, task_id)
    return back_to(case_id)


@router.post("/cases/{case_id}/jobs")
def start_job(request: Request, case_id: Id, actor: Editor, kind: Annotated[str, Form()]) -> Response:
    submit_job(request, actor, case_id, kind)
    return back_to(case_id)


@router.post("/cases/{case_id}/board-decision")
def board_decision(
    request: Request,
    case_id: Id,
    actor: Clinician,
    version: Annotated[int, Form()],
    decision: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Record a board decision: it takes an explicit choice (no default) and a ticked confirmation."""
    kept = {"case_id": case_id, "decision": decision, "notes": notes}
    try:
        with transaction(request) as db:
            store.record_board_decision(db, actor, case_id, decision, notes, version, confirm == "yes")
    except (InputError, store.NotAllowed, store.VersionConflict) as problem:
        return board_page(
            request,
            actor,
            status_code=422 if isinstance(problem, InputError) else 409,
            problem={"case_id": case_id, "message": str(problem)},
            kept=kept,
        )
    return RedirectResponse("/board", status_code=303)


def decided_cases(db: Session, limit: int = 200) -> list[tuple[BoardDecision, Case, str]]:
    """The board's decisions, newest first, with their case and who recorded them."""
    rows = db.execute(
        select(BoardDecision, Case, User.username)
        .join(Case, Case.id == BoardDecision.case_id)
        .join(User, User.id == BoardDecision.user_id)
        .order_by(BoardDecision.id.desc())
        .limit(limit)
    )
    return [(decision, case, username) for decision, case, username in rows]


def board_page(
    request: Request,
    actor: Actor,
    board_date: str = "",
    status_code: int = 200,
    problem: dict[str, Any] | None = None,
    kept: dict[str, Any] | None = None,
) -> HTMLResponse:
    try:
        date = dt.date.fromisoformat(board_date) if board_date else None
    except ValueError:
        date = None
    with transaction(request) as db:
        cases = store.board_agenda(db, actor, date)
        dates = sorted({c.board_date for c in store.board_agenda(db, actor) if c.board_date})
        history = decided_cases(db)
        audit(db, actor, "list", "board_history", detail=f"n={len(history)}")
    return render(
        request,
        "board.html",
        actor,
        status_code=status_code,
        cases=cases,
        board_date=date,
        board_dates=dates,
        history=history,
        decisions=store.BOARD_DECISIONS,
        can_decide=actor.role in CLINICAL,
        problem=problem or {},
        kept=kept or {},
    )


@router.get("/board")
def board(request: Request, actor: Reader, board_date: Annotated[str, Query(max_length=10)] = "") -> HTMLResponse:
    return board_page(request, actor, board_date)


@router.get("/tasks")
def open_tasks(request: Request, actor: Reader, mine: bool = False) -> HTMLResponse:
    with transaction(request) as db:
        rows = store.tasks(db, open_only=True)
        if mine:
            rows = [(task, assignee) for task, assignee in rows if assignee == actor.username]
        audit(db, actor, "list", "task", detail=f"mine={mine} n={len(rows)}")
    return render(request, "tasks.html", actor, tasks=rows, today=dt.date.today(), mine=mine)


AUDIT_PAGE_SIZE = 100


def audit_page_response(request: Request, actor: Actor, case_id: int | None, page: int) -> HTMLResponse:
    """One page of the audit trail (newest first) with links to the pages before and after it."""
    with transaction(request) as db:
        if case_id is not None:
            store.get_case(db, actor, case_id, action="read_audit")
        events, total = store.audit_page(db, actor, case_id, page=page, size=AUDIT_PAGE_SIZE)
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    return render(request, "audit.html", actor, events=events, case_id=case_id, page=page, pages=pages, total=total)


@router.get("/cases/{case_id}/audit")
def case_audit(
    request: Request, case_id: Id, actor: AuditReader, page: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1
) -> HTMLResponse:
    return audit_page_response(request, actor, case_id, page)


@router.get("/audit")
def audit_log(request: Request, actor: Admin, page: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1) -> HTMLResponse:
    return audit_page_response(request, actor, None, page)


@router.get("/users")
def users_page(request: Request, actor: Admin) -> HTMLResponse:
    with transaction(request) as db:
        users = store.list_users(db, actor)
    return render(request, "users.html", actor, users=users, roles=[r.value for r in Role])


@router.post("/users")
def create_user(
    request: Request,
    actor: Admin,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form()],
    full_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with transaction(request) as db:
            store.create_user(db, username, password, role, full_name, actor)
    except InputError as error:
        with transaction(request) as db:
            users = store.list_users(db, actor)
        return render(
            request,
            "users.html",
            actor,
            422,
            users=users,
            roles=[r.value for r in Role],
            error=str(error),
            username=username,
            full_name=full_name,
        )
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/deactivate")
def deactivate_user(request: Request, user_id: Id, actor: Admin) -> Response:
    with transaction(request) as db:
        store.deactivate_user(db, actor, user_id)
    return RedirectResponse("/users", status_code=303)
