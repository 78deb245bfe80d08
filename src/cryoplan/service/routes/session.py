"""Logging in and out: the login form (POST /login), API bearer tokens (POST and DELETE /api/auth/token)
and logout (POST /logout), for session cookies and bearer tokens alike.

A login attempt is first throttled (`cryoplan.service.auth.login_delay`: an address that keeps failing
waits, a user name under attack is answered slowly), then its password checked; each outcome is audited
under the real user, or "anonymous" when the password was wrong.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cryoplan.service.audit import Actor, audit
from cryoplan.service.auth import (
    ALL_ROLES,
    SESSION_COOKIE,
    LoginThrottled,
    client_address,
    issue_token,
    login,
    login_delay,
    requires,
    revoke_token,
)
from cryoplan.service.deps import Reader, transaction
from cryoplan.service.models import Role

router = APIRouter()
PageUser = Annotated[Actor, Depends(requires(*ALL_ROLES, page=True))]


class TokenRequest(BaseModel):
    username: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
    password: Annotated[str, Field(max_length=200)]


async def password_login(request: Request, username: str, password: str, kind: str) -> str | None:
    """Check a user name and password (after the throttle's delay); returns a new session or API token, or
    None when they are wrong. Raises `LoginThrottled` while the caller's address must wait."""
    settings = request.app.state.settings
    address = client_address(request)
    name = username.strip().lower()

    def delay() -> float:
        with request.app.state.sessions() as db:
            try:
                return login_delay(
                    db,
                    name,
                    address,
                    settings.login_max_failures,
                    settings.login_window_s,
                    settings.login_max_backoff_s,
                    settings.login_max_delay_s,
                )
            except LoginThrottled:
                audit(db, None, "login_throttled", "user", detail=name[:64], address=address, who="anonymous")
                db.commit()
                raise

    def check() -> str | None:
        with transaction(request) as db:
            user = login(db, name, password, address)
            if user is None:
                audit(db, None, "login_failed", "user", detail=name[:64], address=address, who="anonymous")
                return None
            token, _csrf = issue_token(db, user, kind, settings.session_max_age_s)
            actor = Actor(user.id, user.username, Role(user.role), address, kind, None)
            audit(db, actor, "login", "user", user.id, detail=kind)
            return token

    wait_s = await run_in_threadpool(delay)
    if wait_s > 0:
        await asyncio.sleep(wait_s)  # held without a thread, so slowed attempts cannot starve other requests
    return await run_in_threadpool(check)


@router.post("/login", include_in_schema=False)
async def login_submit(
    request: Request, username: Annotated[str, Form(max_length=200)], password: Annotated[str, Form(max_length=200)]
) -> Response:
    token = await password_login(request, username, password, "session")
    if token is None:
        page: Response = request.app.state.templates.TemplateResponse(
            request, "login.html", {"actor": None, "error": "Wrong user name or password."}, status_code=401
        )
        return page
    settings = request.app.state.settings
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, actor: PageUser) -> Response:
    """End the caller's session (cookie) or bearer token; a browser is sent back to the login page."""
    with transaction(request) as db:
        revoke_token(db, actor)
        audit(db, actor, "logout", "user", actor.user_id, detail=actor.via)
    if actor.via != "session":
        return Response(status_code=204)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.post("/api/auth/token", tags=["api"], summary="Exchange a user name and password for a bearer token")
async def create_token(request: Request, body: TokenRequest) -> Response:
    token = await password_login(request, body.username, body.password, "api")
    if token is None:
        return JSONResponse({"detail": "wrong user name or password"}, status_code=401)
    max_age_s = request.app.state.settings.session_max_age_s
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in_s": max_age_s})


@router.delete(
    "/api/auth/token", status_code=204, tags=["api"], summary="Revoke the bearer token (or session) of this request"
)
def delete_token(request: Request, actor: Reader) -> Response:
    with transaction(request) as db:
        revoke_token(db, actor)
        audit(db, actor, "revoke", "auth_token", actor.token_id, detail=actor.via)
    return Response(status_code=204)
