"""What API routes receive: the engine, the settings and the caller's verified identity."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from brandvoice.bot.settings import Settings
from brandvoice.store.db import MAX_ROW_ID, session_scope

bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One transaction per request, committed when the route returns without error."""
    with session_scope(engine) as session:
        yield session


def bearer_problem(settings: Settings, authorization: str | None) -> str | None:
    """Why an ``Authorization`` header does not open the API, or None when it does."""
    if not settings.api_token:
        return "the API is disabled: set API_TOKEN to enable it"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.api_token.encode()
    ):
        return "missing or wrong bearer token"
    return None


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The caller's identity for the audit log; 401 without the configured bearer token.

    ``RequestGuards`` already refused such requests before their body was read; this keeps each
    route safe on its own and documents the scheme in the OpenAPI schema.
    """
    header = f"Bearer {credentials.credentials}" if credentials is not None else None
    problem = bearer_problem(settings, header)
    if problem is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, problem, headers={"WWW-Authenticate": "Bearer"}
        )
    return "api"


RowId = Annotated[
    int, Path(ge=1, le=MAX_ROW_ID, description="A row id; ids outside 1..2^31-1 cannot exist.")
]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="Rows to skip.")]
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""Names and filters carry no control characters: none names a thing, and PostgreSQL cannot even
compare a string that holds NUL (it raises, which was a 500)."""
VersionName = Annotated[
    str,
    Path(min_length=1, max_length=100, pattern=PRINTABLE, description="Model version, e.g. v3."),
]


SessionDep = Annotated[Session, Depends(get_session)]
Actor = Annotated[str, Depends(require_token)]
