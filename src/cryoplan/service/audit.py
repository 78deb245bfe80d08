"""The audit trail: who (an `Actor`) did what, to which object, when and from where. Every function that
touches patient data, and every refusal, appends an event in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cryoplan.service.models import AuditEvent, Role, utcnow


@dataclass(frozen=True)
class Actor:
    """The authenticated caller of one request."""

    user_id: int
    username: str
    role: Role
    client_address: str
    via: str  # "session" (cookie) or "api" (bearer token)
    csrf_token: str | None
    token_id: int | None = None  # the session or API token the request came with


def audit(
    db: Session,
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: object = None,
    case_id: int | None = None,
    detail: str = "",
    address: str | None = None,
    who: str = "system",
) -> None:
    """Append one audit event: who (`actor`, else `who`: "system" for the server's own work, "anonymous"
    for a caller not logged in), what (`action` on `object_type`/`object_id`), from where."""
    db.add(
        AuditEvent(
            at=utcnow(),
            user_id=actor.user_id if actor else None,
            username=actor.username if actor else who,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            case_id=case_id,
            client_address=((actor.client_address if actor else address) or "server")[:64],
            detail=detail,
        )
    )
