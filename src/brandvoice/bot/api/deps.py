"""What API routes receive: the engine, the settings and the caller's verified identity."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from brandvoice.bot.settings import Settings
from brandvoice.store.db import session_scope

bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One transaction per request, committed when the route returns without error."""
    with session_scope(engine) as session:
        yield session


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The caller's identity for the audit log; 401 without the configured bearer token."""
    if not settings.api_token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "the API is disabled: set API_TOKEN to enable it"
        )
    if credentials is None or not hmac.compare_digest(
        credentials.credentials.encode(), settings.api_token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return "api"


SessionDep = Annotated[Session, Depends(get_session)]
Actor = Annotated[str, Depends(require_token)]
