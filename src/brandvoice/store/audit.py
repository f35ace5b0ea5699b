"""The audit log: every decision a person or the scheduler makes, in the same transaction as the
change, and every refused attempt; read back with filters by the CLI and the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from brandvoice.store.models import AuditLog

REFUSED_SUFFIX = ".refused"


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


def record_refusal(
    session: Session, actor: str, action: str, target: str | None, reason: str
) -> AuditLog:
    """Audit an attempt that was refused, as ``<action>.refused`` with the reason.

    Record it in a transaction of its own (or after rolling the refused change back): the
    refused change itself must not be committed with it.
    """
    return record_audit(session, actor, action + REFUSED_SUFFIX, target, {"reason": reason})


def query_audit(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditLog]:
    """Audit rows, newest first, filtered by exact actor, action and target and a start time."""
    query = select(AuditLog)
    if actor is not None:
        query = query.where(AuditLog.actor == actor)
    if action is not None:
        query = query.where(AuditLog.action == action)
    if target is not None:
        query = query.where(AuditLog.target == target)
    if since is not None:
        query = query.where(col(AuditLog.created_at) >= since)
    query = query.order_by(col(AuditLog.id).desc()).offset(offset).limit(limit)
    return list(session.exec(query).all())
