"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from brandvoice.bot.api.deps import get_engine
from brandvoice.store.db import migrations_current

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(engine: Annotated[Engine, Depends(get_engine)]) -> JSONResponse:
    """Ready when the database answers and its schema is at the newest migration."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = migrations_current(engine)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": str(exc)}, status_code=503)
    if not current:
        return JSONResponse({"status": "unavailable", "migrations": "pending"}, status_code=503)
    return JSONResponse({"status": "ready"})
