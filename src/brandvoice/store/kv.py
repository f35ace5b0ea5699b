"""Settings kept in the database so they can change at run time (schedule, guidelines)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from brandvoice.store.audit import record_audit
from brandvoice.store.db import insert_skipping_conflicts
from brandvoice.store.models import Setting, utcnow


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(Setting, key)
    return default if row is None else row.value


def set_setting(session: Session, key: str, value: Any, actor: str) -> None:
    """Store ``value`` under ``key`` and audit who changed it."""
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value, updated_by=actor))
    else:
        row.value, row.updated_by, row.updated_at = value, actor, utcnow()
        session.add(row)
    record_audit(session, actor, "setting.set", key, {"value": value})


def claim_setting(session: Session, key: str, value: Any, actor: str) -> bool:
    """Store ``value`` under ``key`` unless the key exists; True for the one caller, in any
    process, that stored it (a once-only marker, e.g. an alert already sent)."""
    table = Setting.__table__
    statement = (
        insert_skipping_conflicts(session, table, ["key"])
        .values(key=key, value=value, updated_by=actor, updated_at=utcnow())
        .returning(table.c.key)  # type: ignore[attr-defined]
    )
    return session.exec(statement).first() is not None  # type: ignore[call-overload]
