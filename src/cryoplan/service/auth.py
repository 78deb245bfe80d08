"""Who is calling: Argon2 password hashes, session cookies with CSRF tokens for pages, bearer tokens for the
API, rate-limited logins, and the role checks every route declares."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cryoplan.service.models import AuthToken, LoginFailure, Role, User, utcnow

SESSION_COOKIE = "cryoplan_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

password_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the user name is unknown, so that timing does not reveal which names exist.
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Actor:
    """The authenticated caller of one request."""

    user_id: int
    username: str
    role: Role
    client_address: str
    via: str  # "session" (cookie) or "api" (bearer token)
    csrf_token: str | None


class LoginLocked(Exception):
    """Too many failed logins for this user name or address in the window."""


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_address(request: Request) -> str:
    """The caller's address as the server saw it."""
    return request.client.host if request.client else "unknown"


def login(db: Session, username: str, password: str, address: str, max_failures: int, window_s: float) -> User | None:
    """Check a password; returns the user, or None after recording a failure.

    Raises `LoginLocked` without checking the password once `max_failures` failures of this user name, or
    four times as many from this address, fall inside the last `window_s` seconds (OWASP Authentication
    Cheat Sheet: throttle by account and by source).
    """
    since = utcnow() - dt.timedelta(seconds=window_s)
    by_name = db.scalar(select(func.count()).where(LoginFailure.username == username, LoginFailure.at >= since))
    by_address = db.scalar(select(func.count()).where(LoginFailure.client_address == address, LoginFailure.at >= since))
    if by_name >= max_failures or by_address >= 4 * max_failures:
        raise LoginLocked(username)
    user = db.scalar(select(User).where(User.username == username, User.active.is_(True)))
    valid = password_hasher.verify(password, user.password_hash if user else _DUMMY_HASH)
    if not (user and valid):
        db.add(LoginFailure(username=username[:64], client_address=address[:64]))
        db.commit()
        return None
    db.execute(delete(LoginFailure).where(LoginFailure.username == username))
    return user


def issue_token(db: Session, user: User, kind: str, max_age_s: int) -> tuple[str, str | None]:
    """Create a session (with a CSRF token) or an API token; returns (token, csrf token or None)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32) if kind == "session" else None
    db.add(
        AuthToken(
            token_sha256=_sha256(token),
            kind=kind,
            user_id=user.id,
            csrf_token=csrf,
            expires_at=utcnow() + dt.timedelta(seconds=max_age_s),
        )
    )
    return token, csrf


def revoke_token(db: Session, token: str) -> None:
    db.execute(delete(AuthToken).where(AuthToken.token_sha256 == _sha256(token)))


def _find_actor(db: Session, request: Request) -> Actor | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token, kind = header[7:].strip(), "api"
    elif SESSION_COOKIE in request.cookies:
        token, kind = request.cookies[SESSION_COOKIE], "session"
    else:
        return None
    row = db.execute(
        select(AuthToken, User)
        .join(User, User.id == AuthToken.user_id)
        .where(AuthToken.token_sha256 == _sha256(token), AuthToken.kind == kind, User.active.is_(True))
    ).first()
    if row is None:
        return None
    auth_token, user = row
    expires_at = auth_token.expires_at
    if expires_at.tzinfo is None:  # SQLite returns naive datetimes
        expires_at = expires_at.replace(tzinfo=dt.UTC)
    if expires_at < utcnow():
        return None
    return Actor(user.id, user.username, Role(user.role), client_address(request), kind, auth_token.csrf_token)


async def _check_csrf(request: Request, actor: Actor) -> None:
    """Cookie-authenticated requests that change state must carry the session's CSRF token (OWASP
    synchroniser-token pattern): in the X-CSRF-Token header, or in the form field csrf_token."""
    if actor.via != "session" or request.method in _SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not (isinstance(sent, str) and actor.csrf_token and hmac.compare_digest(sent, actor.csrf_token)):
        raise HTTPException(403, "missing or wrong CSRF token")


class NotLoggedIn(Exception):
    """A page was requested without a session: the app redirects to the login page."""


def requires(*roles: Role, page: bool = False):
    """A FastAPI dependency giving the `Actor`, answering 401 (or a login redirect for pages) when there is
    no valid session or token, 403 when the role is not among `roles` or the CSRF token is missing."""

    async def dependency(request: Request) -> Actor:
        with request.app.state.sessions() as db:
            actor = _find_actor(db, request)
        if actor is None:
            if page:
                raise NotLoggedIn()
            raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
        await _check_csrf(request, actor)
        if actor.role not in roles:
            raise HTTPException(403, f"the {actor.role.value} role may not do this")
        return actor

    return dependency


ALL_ROLES = (Role.admin, Role.coordinator, Role.clinician, Role.viewer)
EDITORS = (Role.admin, Role.coordinator, Role.clinician)
CLINICAL = (Role.admin, Role.clinician)
ADMIN = (Role.admin,)
