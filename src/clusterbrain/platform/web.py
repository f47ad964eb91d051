"""FastAPI dependencies shared by every capability's routes: session and principal.

Objects built by the application factory live on ``app.state``; routes reach them through these
dependencies, so nothing is global and tests can build as many apps as they like.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import InvalidInput, Unauthenticated
from clusterbrain.platform.service import authenticate_token
from clusterbrain.platform.tenancy import Principal

bearer = HTTPBearer(
    auto_error=False, description="An API token (cbt_…), or for ingest a device secret (cbd_…)."
)


def get_session(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with session_scope(sessions) as session:
        yield session


# Commit when the route function returns, before the response is sent: a client that has its
# answer can rely on what it created being there, and a failed commit is an error response,
# not a success followed by lost data.
_session = Depends(get_session, scope="function")


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("an Authorization: Bearer token is required")
    return credentials.credentials


def get_principal(
    token: Annotated[str, Depends(bearer_token)],
    session: Annotated[Session, _session],
) -> Principal:
    return authenticate_token(session, token)


SessionDep = Annotated[Session, _session]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def checked_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """A ``from``/``to`` query range: both with a time zone, ``to`` after ``from``.

    Refusals name the query parameter.
    """
    for value, field in ((start, "from"), (end, "to")):
        if value.tzinfo is None:
            raise InvalidInput("timestamps need a time zone (e.g. Z or +08:00)", field=field)
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", field="to")
    return start, end
