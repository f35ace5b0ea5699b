"""The audit log: every decision a person or the scheduler makes, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from brandvoice.store.models import AuditLog


def record_audit(
    session: Session,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    row = AuditLog(actor=actor, action=action, target=target, details=details or {})
    session.add(row)
    return row
