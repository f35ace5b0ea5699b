"""The run queue: enqueue, claim atomically, heartbeat, cancel, finish and recover stale runs.

Claims are safe with any number of workers: PostgreSQL hands each queued row to one claimer
(``FOR UPDATE SKIP LOCKED``), SQLite serializes writers, and a partial unique index keeps at most
one run per workspace running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from brandvoice.store.audit import record_audit
from brandvoice.store.db import session_scope
from brandvoice.store.models import RunStatus, TrainingRun, utcnow

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED)


class RunCancelled(Exception):
    """Raised inside a run when someone asked to cancel it."""


class RunSkipped(Exception):
    """Raised inside a run that has nothing to do; the message is the stated reason."""


def enqueue_run(
    session: Session,
    requested_by: str,
    *,
    backend: str = "local",
    force: bool = False,
    config: dict[str, Any] | None = None,
    workspace: str = "default",
    scheduled_for: datetime | None = None,
) -> TrainingRun:
    run = TrainingRun(
        backend=backend,
        force=force,
        config=config or {},
        workspace=workspace,
        requested_by=requested_by,
        scheduled_for=scheduled_for,
    )
    session.add(run)
    session.flush()
    record_audit(session, requested_by, "run.enqueue", f"run:{run.id}", {"force": force})
    return run


def enqueue_scheduled_run(engine: Engine, fire_time: datetime, backend: str) -> TrainingRun | None:
    """Enqueue the run for one scheduled fire time; None when another worker already did."""
    try:
        with session_scope(engine) as session:
            return enqueue_run(session, "scheduler", backend=backend, scheduled_for=fire_time)
    except IntegrityError:
        return None


def claim_next_run(engine: Engine, worker: str, run_id: int | None = None) -> TrainingRun | None:
    """Take the oldest queued run (or run ``run_id`` if still queued) for ``worker``; None when
    there is none or its workspace is busy."""
    try:
        with session_scope(engine) as session:
            query = (
                select(TrainingRun)
                .where(TrainingRun.status == RunStatus.QUEUED)
                .order_by(col(TrainingRun.id))
                .limit(1)
            )
            if run_id is not None:
                query = query.where(TrainingRun.id == run_id)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            run = session.exec(query).first()
            if run is None:
                return None
            now = utcnow()
            run.status, run.worker, run.started_at, run.heartbeat_at = (
                RunStatus.RUNNING,
                worker,
                now,
                now,
            )
            run.attempts += 1
            session.add(run)
            session.flush()
            return run
    except IntegrityError:  # another run of this workspace is running
        return None


def heartbeat(
    engine: Engine,
    run_id: int,
    *,
    progress: float | None = None,
    stage: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> bool:
    """Record liveness (and progress); returns True when someone asked to cancel the run."""
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise LookupError(f"run {run_id} does not exist")
        run.heartbeat_at = utcnow()
        if progress is not None:
            run.progress = max(0.0, min(1.0, progress))
        if stage is not None:
            run.stage = stage
        if metrics:
            run.metrics = {**run.metrics, **metrics}
        session.add(run)
        return run.cancel_requested


def finish_run(
    engine: Engine,
    run_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> TrainingRun:
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise LookupError(f"run {run_id} does not exist")
        run.status, run.error, run.finished_at = status, error, utcnow()
        if status == RunStatus.SUCCEEDED:
            run.progress = 1.0
        if metrics:
            run.metrics = {**run.metrics, **metrics}
        session.add(run)
        return run


def requeue_run(session: Session, run_id: int, actor: str) -> TrainingRun:
    """Put a cancelled or failed run back in the queue; its checkpoints let it resume."""
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise LookupError(f"run {run_id} does not exist")
    if run.status not in (RunStatus.CANCELLED, RunStatus.FAILED):
        raise ValueError(
            f"run {run_id} is {run.status.value}; only cancelled or failed runs resume"
        )
    run.status, run.cancel_requested, run.error, run.finished_at = (
        RunStatus.QUEUED,
        False,
        None,
        None,
    )
    session.add(run)
    record_audit(session, actor, "run.resume", f"run:{run_id}")
    return run


def request_cancel(session: Session, run_id: int, actor: str) -> TrainingRun:
    """Cancel a queued run at once; ask a running one to stop at its next heartbeat."""
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise LookupError(f"run {run_id} does not exist")
    if run.status in FINISHED:
        raise ValueError(f"run {run_id} already {run.status.value}; nothing to cancel")
    if run.status == RunStatus.QUEUED:
        run.status, run.finished_at = RunStatus.CANCELLED, utcnow()
    run.cancel_requested = True
    session.add(run)
    record_audit(session, actor, "run.cancel", f"run:{run_id}")
    return run


def recover_stale_runs(engine: Engine, stale_after: timedelta, max_attempts: int = 2) -> list[int]:
    """Re-queue (once) or fail runs whose worker stopped heartbeating; returns their ids."""
    cutoff = utcnow() - stale_after
    recovered: list[int] = []
    with session_scope(engine) as session:
        stale = session.exec(
            select(TrainingRun).where(
                TrainingRun.status == RunStatus.RUNNING, col(TrainingRun.heartbeat_at) < cutoff
            )
        ).all()
        for run in stale:
            if run.attempts < max_attempts and not run.cancel_requested:
                run.status, run.worker, run.stage = RunStatus.QUEUED, None, "requeued"
            else:
                run.status, run.finished_at = RunStatus.FAILED, utcnow()
                run.error = f"worker {run.worker} stopped heartbeating at {run.heartbeat_at}"
            session.add(run)
            record_audit(
                session, "worker", "run.recover", f"run:{run.id}", {"to": run.status.value}
            )
            recovered.append(run.id or 0)
    return recovered


def latest_runs(session: Session, limit: int = 10) -> list[TrainingRun]:
    query = select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(limit)
    return list(session.exec(query).all())
