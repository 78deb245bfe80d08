"""What every route shares: the request's database transaction, the id path parameter and the role aliases
that routes declare as their caller."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from cryoplan.service.audit import Actor
from cryoplan.service.auth import ADMIN, ALL_ROLES, CLINICAL, EDITORS, requires
from cryoplan.service.models import Role


@contextlib.contextmanager
def transaction(request: Request) -> Iterator[Session]:
    """A database session for one request, committed when the block succeeds, rolled back otherwise."""
    with request.app.state.sessions() as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


# Database ids: positive 32-bit integers (PostgreSQL's integer), so an out-of-range id is a 422, not a 500.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]

# The caller of an API route, by the roles it admits (401 without a valid token, 403 for another role).
Reader = Annotated[Actor, Depends(requires(*ALL_ROLES))]
Editor = Annotated[Actor, Depends(requires(*EDITORS))]
Clinician = Annotated[Actor, Depends(requires(*CLINICAL))]
Admin = Annotated[Actor, Depends(requires(*ADMIN))]
AuditReader = Annotated[Actor, Depends(requires(Role.admin, Role.coordinator, Role.clinician))]
