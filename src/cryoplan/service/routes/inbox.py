"""Messages between the service's users: sent to a named user (optionally about a case), read in that user's
inbox, with the count of unread messages in every page's header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from cryoplan.errors import InputError
from cryoplan.service import store
from cryoplan.service.audit import Actor, audit
from cryoplan.service.auth import ALL_ROLES, EDITORS, requires
from cryoplan.service.deps import Id, transaction
from cryoplan.service.models import Case, TeamMessage, User, utcnow

router = APIRouter(include_in_schema=False)
PageReader = Annotated[Actor, Depends(requires(*ALL_ROLES, page=True))]
PageEditor = Annotated[Actor, Depends(requires(*EDITORS, page=True))]
MAX_BODY = 5000


def unread_count(db: Session, user_id: int) -> int:
    """How many messages addressed to the user are unread."""
    query = select(func.count()).where(TeamMessage.recipient_id == user_id, TeamMessage.read_at.is_(None))
    return db.scalar(query) or 0


def send(db: Session, actor: Actor, recipient: str, body: str, case_id: int | None) -> TeamMessage:
    """Address a message to an active user by user name; recorded in the audit log."""
    body = body.strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise InputError("body", f"the message, 1–{MAX_BODY} characters")
    user = db.scalar(select(User).where(User.username == recipient, User.active.is_(True)))
    if user is None:
        raise InputError("recipient", "the user name of an active user", recipient)
    if case_id is not None and db.get(Case, case_id) is None:
        raise store.NotFound(f"case {case_id}")
    message = TeamMessage(case_id=case_id, sender_id=actor.user_id, recipient_id=user.id, body=body, at=utcnow())
    db.add(message)
    db.flush()
    audit(db, actor, "send", "team_message", message.id, case_id, detail=f"to {user.username}")
    return message


def inbox(db: Session, actor: Actor) -> list[tuple[TeamMessage, str, Case | None]]:
    """The messages addressed to the caller, newest first, with their sender's name and case."""
    sender = aliased(User)
    rows = db.execute(
        select(TeamMessage, sender.username, Case)
        .join(sender, sender.id == TeamMessage.sender_id)
        .outerjoin(Case, Case.id == TeamMessage.case_id)
        .where(TeamMessage.recipient_id == actor.user_id)
        .order_by(TeamMessage.id.desc())
        .limit(500)
    )
    audit(db, actor, "list", "team_message")
    return [(message, username, case) for message, username, case in rows]


@router.get("/inbox")
def inbox_page(request: Request, actor: PageReader) -> HTMLResponse:
    with transaction(request) as db:
        messages = inbox(db, actor)
        users = [u.username for u in db.scalars(select(User).where(User.active.is_(True)).order_by(User.username))]
        count = unread_count(db, actor.user_id)
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "inbox.html", {"actor": actor, "messages": messages, "users": users, "inbox_count": count}
    )
    return page


@router.post("/inbox/send")
def send_message(
    request: Request,
    actor: PageEditor,
    recipient: Annotated[str, Form(max_length=64)],
    body: Annotated[str, Form(max_length=MAX_BODY + 100)],
) -> Response:
    with transaction(request) as db:
        send(db, actor, recipient, body, None)
    return RedirectResponse("/inbox", status_code=303)


@router.post("/inbox/{message_id}/read")
def mark_read(request: Request, message_id: Id, actor: PageReader) -> Response:
    with transaction(request) as db:
        db.execute(
            update(TeamMessage)
            .where(TeamMessage.id == message_id, TeamMessage.recipient_id == actor.user_id)
            .values(read_at=utcnow())
        )
    return RedirectResponse("/inbox", status_code=303)
