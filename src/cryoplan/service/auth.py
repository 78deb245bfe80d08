"""Who is calling: Argon2 password hashes, session cookies with CSRF tokens for pages, bearer tokens for the
API, throttled logins, and the role checks every route declares (refusals are audited)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cryoplan.service.audit import Actor, audit
from cryoplan.service.models import AuthToken, LoginFailure, Role, User, utcnow

SESSION_COOKIE = "cryoplan_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

password_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the user name is unknown, so that timing does not reveal which names exist.
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))


class LoginThrottled(Exception):
    """Too many failed logins from this address lately: it must wait `retry_after_s` before the next."""

    def __init__(self, retry_after_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(f"retry after {retry_after_s:.0f} s")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_address(request: Request) -> str:
    """The caller's address as the server saw it."""
    return request.client.host if request.client else "unknown"


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite returns naive datetimes


def login_delay(
    db: Session,
    username: str,
    address: str,
    max_failures: int,
    window_s: float,
    max_backoff_s: float,
    max_delay_s: float,
) -> float:
    """How long to hold this login attempt before checking its password, in seconds.

    Two brakes, neither of which locks the owner of an account out: an address with `max_failures` or more
    failures in the last `window_s` seconds must wait 1, 2, 4, … seconds (at most `max_backoff_s`) after
    its latest failure before it may try again (`LoginThrottled` is raised until then, the attempt not
    checked); and a user name with `max_failures` or more recent failures, from any address, has each
    attempt on it held 0.25, 0.5, 1, … seconds (at most `max_delay_s`), which slows guessing spread over
    many addresses while the owner, from an address of their own, still gets in.

    References
    ----------
    .. [1] OWASP Authentication Cheat Sheet, "Protect against automated attacks" (throttling by source and
       by account, without lock-out that attackers can trigger).
    .. [2] NIST SP 800-63B, §5.2.2 Rate Limiting (Throttling).
    """
    now = utcnow()
    since = now - dt.timedelta(seconds=window_s)
    from_address, latest = db.execute(
        select(func.count(LoginFailure.id), func.max(LoginFailure.at)).where(
            LoginFailure.client_address == address[:64], LoginFailure.at >= since
        )
    ).one()
    if from_address >= max_failures:
        wait_s = min(max_backoff_s, 2.0 ** (from_address - max_failures))
        remaining_s = (_aware(latest) + dt.timedelta(seconds=wait_s) - now).total_seconds()
        if remaining_s > 0:
            raise LoginThrottled(remaining_s)
    on_name = db.scalar(
        select(func.count(LoginFailure.id)).where(LoginFailure.username == username[:64], LoginFailure.at >= since)
    )
    assert on_name is not None  # COUNT always yields one row
    if on_name < max_failures:
        return 0.0
    return min(max_delay_s, 0.25 * 2.0 ** (on_name - max_failures))


def login(db: Session, username: str, password: str, address: str) -> User | None:
    """The active user of that name (compared in lower case) if the password is theirs, else None after
    recording the failure (in its own committed transaction, so that it counts whatever follows)."""
    username = username.strip().lower()
    user = db.scalar(select(User).where(func.lower(User.username) == username, User.active.is_(True)))
    valid = password_hasher.verify(password, user.password_hash if user else _DUMMY_HASH)
    if not (user and valid):
        db.add(LoginFailure(username=username[:64], client_address=address[:64], at=utcnow()))
        db.commit()
        return None
    # The owner got in from here: forget this address's failures on this name (not other addresses').
    db.execute(
        delete(LoginFailure).where(LoginFailure.username == username, LoginFailure.client_address == address[:64])
    )
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


def revoke_token(db: Session, actor: Actor) -> None:
    """End the session or API token the caller's request came with."""
    db.execute(delete(AuthToken).where(AuthToken.id == actor.token_id))


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
    if _aware(auth_token.expires_at) < utcnow():
        return None
    return Actor(
        user.id, user.username, Role(user.role), client_address(request), kind, auth_token.csrf_token, auth_token.id
    )


async def _check_csrf(request: Request, actor: Actor) -> None:
    """Cookie-authenticated requests that change state must carry the session's CSRF token (OWASP
    synchroniser-token pattern): in the X-CSRF-Token header, or in the form field csrf_token."""
    if actor.via != "session" or request.method in _SAFE_METHODS:
        return
    sent: object = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not (isinstance(sent, str) and actor.csrf_token and hmac.compare_digest(sent, actor.csrf_token)):
        raise HTTPException(403, "missing or wrong CSRF token")


class NotLoggedIn(Exception):
    """A page was requested without a session: the app redirects to the login page."""


def requires(*roles: Role, page: bool = False) -> Callable[[Request], Awaitable[Actor]]:
    """A FastAPI dependency giving the `Actor`, answering 401 (or a login redirect for pages) when there is
    no valid session or token, 403 when the role is not among `roles` or the CSRF token is missing."""

    async def dependency(request: Request) -> Actor:
        with request.app.state.sessions() as db:
            actor = _find_actor(db, request)
        if actor is None:
            if page:
                raise NotLoggedIn()
            raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
        try:
            await _check_csrf(request, actor)
            if actor.role not in roles:
                raise HTTPException(403, f"the {actor.role.value} role may not do this")
        except HTTPException as refusal:
            with request.app.state.sessions() as db:
                audit(
                    db, actor, "denied", "route", detail=f"{request.method} {request.url.path[:200]}: {refusal.detail}"
                )
                db.commit()
            raise
        return actor

    return dependency


ALL_ROLES = (Role.admin, Role.coordinator, Role.clinician, Role.viewer)
EDITORS = (Role.admin, Role.coordinator, Role.clinician)
CLINICAL = (Role.admin, Role.clinician)
ADMIN = (Role.admin,)
