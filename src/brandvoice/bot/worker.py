"""The worker: enqueues scheduled retrains, claims queued runs one at a time and executes them.

Liveness is a heartbeat in the run row (a thread beats while long steps run); on every poll the
worker re-queues once, or fails, runs whose worker stopped beating. Every write of a run is fenced
by the claim (worker, attempt), so a worker that lost its claim (paused past the stale timeout
while another took the run over) stops at its next write. Cancellation is cooperative: the
heartbeat returns the cancel flag and the pipeline stops at its next step.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from brandvoice.bot.schedule import RetrainSchedule
from brandvoice.store.models import RunStatus
from brandvoice.store.runs import (
    ClaimLost,
    RunCancelled,
    RunClaim,
    RunSkipped,
    claim_next_run,
    claim_of,
    enqueue_scheduled_run,
    finish_run,
    heartbeat,
    recover_stale_runs,
)
from brandvoice.trainer.hosted.base import HostedTrainingError

log = logging.getLogger(__name__)


class RunReporter:
    """What a running pipeline uses to report progress; raises ``RunCancelled`` when asked to
    stop and ``ClaimLost`` when another attempt owns the run now."""

    def __init__(self, engine: Engine, claim: RunClaim) -> None:
        self.engine, self.claim, self.run_id = engine, claim, claim.run_id

    def progress(
        self, fraction: float, stage: str | None = None, metrics: dict[str, Any] | None = None
    ) -> None:
        if heartbeat(self.engine, self.claim, progress=fraction, stage=stage, metrics=metrics):
            raise RunCancelled(f"run {self.run_id} was cancelled")

    def beat(self) -> bool:
        return heartbeat(self.engine, self.claim)


Executor = Callable[[int, RunReporter], dict[str, Any] | None]
"""Executes one claimed run (the retrain pipeline); returns metrics to store on the run."""


@contextmanager
def beating(reporter: RunReporter, interval_s: float) -> Iterator[None]:
    """Heartbeat in a background thread while the block runs, so a slow step is not taken as dead."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                reporter.beat()
            except ClaimLost as lost:  # the run's next write stops it; beating on is pointless
                log.warning("%s", lost)
                return
            except Exception:  # a failed beat must never kill the run
                log.exception("heartbeat of run %s failed", reporter.run_id)

    thread = threading.Thread(target=loop, name=f"heartbeat-{reporter.run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def default_worker_name() -> str:
    """Host, process and a random suffix: unique for every worker, even several in one process."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Worker:
    engine: Engine
    execute: Executor
    backend: str = "local"
    default_cron: str = "0 9 * * mon"
    timezone: str = "UTC"
    name: str = field(default_factory=default_worker_name)
    poll_interval_s: float = 5.0
    heartbeat_interval_s: float = 15.0
    stale_after: timedelta = timedelta(minutes=5)
    reporter_factory: Callable[[Engine, RunClaim], RunReporter] = RunReporter
    watches: Sequence[Callable[[datetime], object]] = ()
    """Checks each tick runs before it claims a run (the 👎-rate alert); each throttles itself."""

    def __post_init__(self) -> None:
        self.schedule = RetrainSchedule(self.engine, self.default_cron, self.timezone)

    def recover(self) -> list[int]:
        recovered = recover_stale_runs(self.engine, self.stale_after)
        if recovered:
            log.warning("recovered stale runs %s", recovered)
        return recovered

    def tick(self, now: datetime | None = None) -> int | None:
        """Recover stale runs, enqueue a due scheduled run, run the checks, then execute one
        queued run; returns the run executed."""
        now = now or datetime.now(UTC)
        self.recover()
        fire_time = self.schedule.due(now)
        if fire_time is not None and enqueue_scheduled_run(self.engine, fire_time, self.backend):
            log.info("scheduled retrain enqueued for %s", fire_time)
        for watch in self.watches:
            try:
                watch(now)
            except Exception:  # a failed check must not stop the queue
                log.exception("scheduled check %r failed", watch)
        run = claim_next_run(self.engine, self.name)
        if run is None or run.id is None:
            return None
        self.execute_claimed(run.id)
        return run.id

    def execute_claimed(self, run_id: int) -> None:
        """Execute run ``run_id``, which this worker has just claimed."""
        claim = claim_of(self.engine, run_id, self.name)
        reporter = self.reporter_factory(self.engine, claim)
        log.info("%s started", claim.label)
        try:
            self._execute(claim, reporter)
        except ClaimLost as lost:
            log.warning("%s; stopped without writing anything more", lost)

    def _execute(self, claim: RunClaim, reporter: RunReporter) -> None:
        run_id = claim.run_id
        try:
            with beating(reporter, self.heartbeat_interval_s):
                metrics = self.execute(run_id, reporter)
        except ClaimLost:
            raise
        except RunCancelled:
            finish_run(self.engine, claim, RunStatus.CANCELLED, error="cancelled on request")
        except RunSkipped as skipped:
            finish_run(self.engine, claim, RunStatus.SKIPPED, error=str(skipped))
            log.info("run %s skipped: %s", run_id, skipped)
        except (ValueError, LookupError, PermissionError, HostedTrainingError) as exc:
            # refusals and bad input: the message says it all, a traceback would only hide it
            log.error("run %s failed: %s", run_id, exc)
            finish_run(self.engine, claim, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("run %s failed", run_id)
            finish_run(self.engine, claim, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            finish_run(self.engine, claim, RunStatus.SUCCEEDED, metrics=metrics)
            log.info("run %s succeeded", run_id)

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        log.info(
            "worker %s polling every %ss (heartbeat %ss, stale after %s)",
            self.name,
            self.poll_interval_s,
            self.heartbeat_interval_s,
            self.stale_after,
        )
        while not stop.is_set():
            if self.tick() is None:
                stop.wait(self.poll_interval_s)
