"""The run queue: enqueue, claim atomically, fenced writes by the claimant, cancel, finish and
recover stale runs.

Claims are safe with any number of workers: PostgreSQL hands each queued row to one claimer
(``FOR UPDATE SKIP LOCKED``), SQLite serializes writers, and a partial unique index keeps at most
one run per workspace running. Every claim increments ``attempts``; a claim is the pair (worker,
attempt), and every write of a running run is fenced by it, so a worker that was paused past the
stale timeout (and whose run another worker took over) stops at its next write and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from brandvoice.store.audit import record_audit
from brandvoice.store.db import session_scope
from brandvoice.store.models import RunKind, RunStatus, TrainingRun, as_utc, utcnow

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED)
_ENQUEUE_LOCK = 0x62765F72756E  # PostgreSQL advisory lock key that serializes exclusive enqueues


class RunCancelled(Exception):
    """Raised inside a run when someone asked to cancel it."""


class RunSkipped(Exception):
    """Raised inside a run that has nothing to do; the message is the stated reason."""


class ClaimLost(Exception):
    """This worker's claim on a run is gone (the run was recovered and claimed again, or
    finished): the worker must stop at once and write nothing more."""


class ActiveRunError(ValueError):
    """A run was refused because another one is already queued or running."""

    def __init__(self, active: TrainingRun) -> None:
        super().__init__(f"run #{active.id} is already {active.status.value}; wait for its report")
        self.active = active


@dataclass(frozen=True)
class RunClaim:
    """Who executes a run, and in which attempt: the fence of every write of that run."""

    run_id: int
    worker: str
    attempt: int

    @property
    def label(self) -> str:
        return f"run {self.run_id} attempt {self.attempt} on {self.worker}"


def enqueue_run(
    session: Session,
    requested_by: str,
    *,
    kind: RunKind = RunKind.TRAIN,
    backend: str = "local",
    force: bool = False,
    config: dict[str, Any] | None = None,
    workspace: str = "default",
    scheduled_for: datetime | None = None,
) -> TrainingRun:
    run = TrainingRun(
        kind=kind,
        backend=backend,
        force=force,
        config=config or {},
        workspace=workspace,
        requested_by=requested_by,
        scheduled_for=scheduled_for,
    )
    session.add(run)
    session.flush()
    record_audit(
        session, requested_by, "run.enqueue", f"run:{run.id}", {"kind": kind.value, "force": force}
    )
    return run


def active_run(session: Session, workspace: str = "default") -> TrainingRun | None:
    """The oldest queued or running run of ``workspace``, if any."""
    query = select(TrainingRun).where(
        col(TrainingRun.status).in_(ACTIVE), TrainingRun.workspace == workspace
    )
    return session.exec(query.order_by(col(TrainingRun.id))).first()


def enqueue_exclusive(
    session: Session, requested_by: str, *, workspace: str = "default", **run: Any
) -> TrainingRun:
    """Enqueue a run unless one of ``workspace`` is already queued or running (``ActiveRunError``).

    Two requests at once cannot both pass the check: PostgreSQL serializes them on an advisory
    lock held until commit, SQLite on its write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ENQUEUE_LOCK})
    active = active_run(session, workspace)
    if active is not None:
        raise ActiveRunError(active)
    return enqueue_run(session, requested_by, workspace=workspace, **run)


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


def claim_of(engine: Engine, run_id: int, worker: str) -> RunClaim:
    """The claim ``worker`` holds on running run ``run_id``; ``ClaimLost`` when it holds none."""
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None or run.status != RunStatus.RUNNING or run.worker != worker:
            raise ClaimLost(f"worker {worker} holds no claim on run {run_id}")
        return RunClaim(run_id, worker, run.attempts)


def hold_claim(session: Session, claim: RunClaim) -> TrainingRun:
    """The run, locked for this transaction, if ``claim`` still holds; else ``ClaimLost``.

    Every write of a running run goes through here, in the same transaction as the write.
    """
    query = select(TrainingRun).where(
        TrainingRun.id == claim.run_id,
        TrainingRun.status == RunStatus.RUNNING,
        TrainingRun.worker == claim.worker,
        TrainingRun.attempts == claim.attempt,
    )
    run = session.exec(query.with_for_update()).first()
    if run is None:
        raise ClaimLost(f"{claim.label} lost its claim; another attempt owns the run now")
    return run


def heartbeat(
    engine: Engine,
    claim: RunClaim,
    *,
    progress: float | None = None,
    stage: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> bool:
    """Record liveness (and progress); returns True when someone asked to cancel the run."""
    with session_scope(engine) as session:
        run = hold_claim(session, claim)
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
    claim: RunClaim,
    status: RunStatus,
    *,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> TrainingRun:
    with session_scope(engine) as session:
        run = hold_claim(session, claim)
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
    """Re-queue (once) or fail runs whose worker stopped heartbeating; returns their ids.

    Cheap enough for every poll: one indexed query that finds nothing while workers are alive.
    """
    cutoff = utcnow() - stale_after
    recovered: list[int] = []
    with session_scope(engine) as session:
        query = select(TrainingRun).where(
            TrainingRun.status == RunStatus.RUNNING, col(TrainingRun.heartbeat_at) < cutoff
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for run in session.exec(query).all():
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


def waiting_reasons(
    session: Session, runs: list[TrainingRun], stale_after: timedelta, now: datetime | None = None
) -> dict[int, str]:
    """Why each queued run in ``runs`` is not running yet, in words (keyed by run id)."""
    now = now or datetime.now(UTC)
    reasons: dict[int, str] = {}
    for run in runs:
        if run.status != RunStatus.QUEUED or run.id is None:
            continue
        running = session.exec(
            select(TrainingRun).where(
                TrainingRun.status == RunStatus.RUNNING, TrainingRun.workspace == run.workspace
            )
        ).first()
        if running is not None:
            reasons[run.id] = "waiting: " + _running_line(running, stale_after, now)
            continue
        ahead = session.exec(
            select(TrainingRun.id)
            .where(
                TrainingRun.status == RunStatus.QUEUED,
                TrainingRun.workspace == run.workspace,
                col(TrainingRun.id) < run.id,
            )
            .order_by(col(TrainingRun.id))
        ).first()
        if ahead is not None:
            reasons[run.id] = f"waiting: behind run {ahead} in the queue"
        else:
            reasons[run.id] = "waiting for a worker to claim it (is `brandvoice worker` running?)"
    return reasons


def _running_line(running: TrainingRun, stale_after: timedelta, now: datetime) -> str:
    line = f"run {running.id} is running on worker {running.worker}"
    if running.heartbeat_at is None:
        return line
    beat = running.heartbeat_at
    age = (now - as_utc(beat)).total_seconds()
    line += f", heartbeat {age:.0f} s ago"
    if age > stale_after.total_seconds():
        line += " (stale: the next worker poll recovers it)"
    return line
