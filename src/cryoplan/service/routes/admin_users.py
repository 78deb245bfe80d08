"""The admin's user page actions beyond creating and deactivating: change a role, reactivate a user, set a
new password. Each is written to the audit log; a new password or a lost role ends the user's sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete
from sqlalchemy.orm import Session

from cryoplan.errors import InputError
from cryoplan.service import store
from cryoplan.service.audit import Actor, audit
from cryoplan.service.auth import ADMIN, password_hasher, requires
from cryoplan.service.deps import Id, transaction
from cryoplan.service.models import AuthToken, Role, User
from cryoplan.service.routes.inbox import unread_count

router = APIRouter(include_in_schema=False)
PageAdmin = Annotated[Actor, Depends(requires(*ADMIN, page=True))]


def _user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise store.NotFound(f"user {user_id}")
    return user


def users_page(
    request: Request, actor: Actor, status_code: int = 200, problem: dict[str, Any] | None = None
) -> HTMLResponse:
    """The users page; after a refused action, with the reason beside that user's row."""
    with transaction(request) as db:
        users = store.list_users(db, actor)
        count = unread_count(db, actor.user_id)
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "users.html",
        {
            "actor": actor,
            "users": users,
            "roles": [r.value for r in Role],
            "problem": problem or {},
            "inbox_count": count,
        },
        status_code=status_code,
    )
    return page


@router.post("/users/{user_id}/role")
def change_role(request: Request, user_id: Id, actor: PageAdmin, role: Annotated[str, Form()]) -> Response:
    try:
        if role not in {r.value for r in Role}:
            raise InputError("role", f"one of {[r.value for r in Role]}", role)
        with transaction(request) as db:
            user = _user(db, user_id)
            if user.id == actor.user_id and role != Role.admin.value:
                raise store.NotAllowed("you cannot take the admin role from yourself; ask another admin")
            if user.role != role:
                audit(db, actor, "change_role", "user", user.id, detail=f"{user.username}: {user.role} -> {role}")
                user.role = role
    except (InputError, store.NotAllowed) as problem:
        return users_page(request, actor, 422, {"user_id": user_id, "message": str(problem)})
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/reactivate")
def reactivate(request: Request, user_id: Id, actor: PageAdmin) -> Response:
    with transaction(request) as db:
        user = _user(db, user_id)
        if not user.active:
            user.active = True
            audit(db, actor, "reactivate", "user", user.id, detail=user.username)
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/password")
def reset_password(
    request: Request, user_id: Id, actor: PageAdmin, password: Annotated[str, Form(max_length=200)]
) -> Response:
    """Set a new password (for the user to change at their next login); their sessions and tokens end."""
    try:
        with transaction(request) as db:
            user = _user(db, user_id)
            store.check_password_policy(password, user.username)
            user.password_hash = password_hasher.hash(password)
            db.execute(delete(AuthToken).where(AuthToken.user_id == user.id))
            audit(db, actor, "reset_password", "user", user.id, detail=user.username)
    except InputError as problem:
        return users_page(request, actor, 422, {"user_id": user_id, "message": str(problem)})
    return RedirectResponse("/users", status_code=303)
