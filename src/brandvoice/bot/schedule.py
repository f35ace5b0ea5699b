"""The retrain schedule: a cron kept in the store, read on every tick so changes need no restart.

APScheduler's ``CronTrigger`` does the calendar and time-zone arithmetic. Firing is a tick of the
worker rather than an in-process job, so that several workers agree on each fire time through the
database (one run per ``scheduled_for``), and tests drive it with an explicit clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from brandvoice.store.db import session_scope
from brandvoice.store.kv import get_setting

SCHEDULE_KEY = "retrain_schedule"
OFF = "off"


def parse_cron(expression: str, timezone: str) -> CronTrigger:
    """A trigger for a five-field crontab line; a clear error names what is wrong."""
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone)
    except (ValueError, KeyError) as exc:
        raise ValueError(
            f"invalid schedule {expression!r}: {exc} (use five cron fields, e.g. '0 9 * * mon')"
        ) from exc


def stored_cron(engine: Engine, default: str) -> str:
    with session_scope(engine) as session:
        return str(get_setting(session, SCHEDULE_KEY, default))


def next_fire_time(expression: str, timezone: str, after: datetime) -> datetime | None:
    if expression.strip().lower() == OFF:
        return None
    return parse_cron(expression, timezone).get_next_fire_time(None, after)


class RetrainSchedule:
    """Remembers the next fire time of the stored cron and says when one has come."""

    def __init__(self, engine: Engine, default_cron: str, timezone: str) -> None:
        self.engine, self.default_cron, self.timezone = engine, default_cron, timezone
        self._cron: str | None = None
        self._next: datetime | None = None

    def due(self, now: datetime) -> datetime | None:
        """The fire time that has come by ``now`` (at most one; missed ones coalesce), else None."""
        cron = stored_cron(self.engine, self.default_cron)
        if cron != self._cron:
            self._cron, self._next = cron, next_fire_time(cron, self.timezone, now)
        if self._next is None or now < self._next:
            return None
        fired = self._next
        self._next = next_fire_time(cron, self.timezone, max(now, fired) + timedelta(seconds=1))
        return fired

    @property
    def next_fire(self) -> datetime | None:
        return self._next
