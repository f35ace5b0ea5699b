"""The store operations Slack triggers for work other parts of brandvoice carry out.

``train`` and ``generate`` only enqueue a run (through the one enqueue service) that the worker
claims; ``schedule`` stores the cron the scheduler reads; ``status`` and ``dataset`` summarize the
store (``status`` with the production signal of the model in production).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from brandvoice.bot.runs import GenerateRequest, TrainRequest, enqueue_request
from brandvoice.bot.schedule import OFF as SCHEDULE_OFF
from brandvoice.bot.schedule import SCHEDULE_KEY, next_fire_time, parse_cron
from brandvoice.store.examples import example_counts
from brandvoice.store.kv import get_setting, set_setting
from brandvoice.store.models import DatasetSnapshot, ModelVersion, TrainingRun, utcnow
from brandvoice.store.runs import ActiveRunError
from brandvoice.store.signal import VersionSignal, version_signal
from brandvoice.trainer.registry import promoted_version


class OperationError(ValueError):
    """A request Slack users can fix; the message says how."""


def enqueue_training(
    session: Session, user: str, *, backend: str, force: bool = False
) -> TrainingRun:
    """Queue a retrain for the worker, unless one is already queued or running."""
    return _enqueue(session, user, TrainRequest(force=force), backend)


def enqueue_generation(session: Session, user: str, per_example: int) -> TrainingRun:
    """Queue synthetic generation as a run of kind ``generate``."""
    if not 1 <= per_example <= 20:
        raise OperationError(f"generate takes 1 to 20 variations per example, not {per_example}")
    return _enqueue(session, user, GenerateRequest(kind="generate", per_example=per_example), "")


def _enqueue(
    session: Session, user: str, request: TrainRequest | GenerateRequest, backend: str
) -> TrainingRun:
    try:
        return enqueue_request(session, user, request, default_backend=backend)
    except ActiveRunError as exc:
        raise OperationError(str(exc)) from exc


def validate_cron(cron: str, timezone: str) -> None:
    try:
        parse_cron(cron, timezone)
    except ValueError as exc:
        raise OperationError(f"`{cron}` is not a cron expression: {exc}") from exc


def set_schedule(session: Session, cron: str, user: str, timezone: str) -> str:
    """Store a new retrain cron (validated) or ``off``; returns what was stored."""
    value = cron.strip()
    if value.lower() == SCHEDULE_OFF:
        value = SCHEDULE_OFF
    else:
        validate_cron(value, timezone)
    set_setting(session, SCHEDULE_KEY, value, user)
    return value


def current_schedule(session: Session, default: str) -> str:
    return str(get_setting(session, SCHEDULE_KEY, default))


def next_run_at(cron: str, timezone: str, now: datetime | None = None) -> datetime | None:
    """When the stored schedule fires next (None when off)."""
    return next_fire_time(cron, timezone, now or utcnow())


@dataclass(frozen=True)
class StatusSummary:
    promoted: ModelVersion | None
    counts: dict[str, dict[str, int]]
    last_run: TrainingRun | None
    schedule: str
    next_run: datetime | None
    signal: VersionSignal
    """How the model in production (or the base model) fared in the signal window."""


def status_summary(
    session: Session, default_schedule: str, timezone: str, signal_window: timedelta
) -> StatusSummary:
    last_run = session.exec(select(TrainingRun).order_by(col(TrainingRun.id).desc())).first()
    schedule = current_schedule(session, default_schedule)
    promoted = promoted_version(session)
    now = utcnow()
    since = now - signal_window
    if promoted is not None and promoted.promoted_at is not None:
        since = max(since, promoted.promoted_at)
    return StatusSummary(
        promoted=promoted,
        counts=example_counts(session),
        last_run=last_run,
        schedule=schedule,
        next_run=next_run_at(schedule, timezone, now),
        signal=version_signal(session, promoted, since=since),
    )


def latest_snapshot(session: Session) -> DatasetSnapshot | None:
    query = select(DatasetSnapshot).order_by(col(DatasetSnapshot.id).desc())
    return session.exec(query).first()
