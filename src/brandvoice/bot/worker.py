"""The worker: enqueues scheduled retrains, claims queued runs one at a time and executes them.

Liveness is a heartbeat in the run row (a thread beats while long steps run); at start the worker
re-queues once, or fails, runs whose worker died. Cancellation is cooperative: the heartbeat
returns the cancel flag and the pipeline stops at its next step.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from brandvoice.bot.schedule import RetrainSchedule
from brandvoice.store.models import RunStatus
from brandvoice.store.runs import (
    RunCancelled,
    RunSkipped,
    claim_next_run,
    enqueue_scheduled_run,
    finish_run,
    heartbeat,
    recover_stale_runs,
)
from brandvoice.trainer.hosted.base import HostedTrainingError

log = logging.getLogger(__name__)


class RunReporter:
    """What a running pipeline uses to report progress; raises ``RunCancelled`` when asked to stop."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self.engine, self.run_id = engine, run_id

    def progress(
        self, fraction: float, stage: str | None = None, metrics: dict[str, Any] | None = None
    ) -> None:
        if heartbeat(self.engine, self.run_id, progress=fraction, stage=stage, metrics=metrics):
            raise RunCancelled(f"run {self.run_id} was cancelled")

    def beat(self) -> bool:
        return heartbeat(self.engine, self.run_id)


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
            except Exception:  # a failed beat must never kill the run
                log.exception("heartbeat of run %s failed", reporter.run_id)

    thread = threading.Thread(target=loop, name=f"heartbeat-{reporter.run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass
class Worker:
    engine: Engine
    execute: Executor
    backend: str = "local"
    default_cron: str = "0 9 * * mon"
    timezone: str = "UTC"
    name: str = f"{socket.gethostname()}-{threading.get_native_id()}"
    poll_interval_s: float = 5.0
    heartbeat_interval_s: float = 15.0
    stale_after: timedelta = timedelta(minutes=5)
    reporter_factory: Callable[[Engine, int], RunReporter] = RunReporter

    def __post_init__(self) -> None:
        self.schedule = RetrainSchedule(self.engine, self.default_cron, self.timezone)

    def recover(self) -> list[int]:
        recovered = recover_stale_runs(self.engine, self.stale_after)
        if recovered:
            log.warning("recovered stale runs %s", recovered)
        return recovered

    def tick(self, now: datetime | None = None) -> int | None:
        """Enqueue a due scheduled run, then execute one queued run; returns the run executed."""
        now = now or datetime.now(UTC)
        fire_time = self.schedule.due(now)
        if fire_time is not None and enqueue_scheduled_run(self.engine, fire_time, self.backend):
            log.info("scheduled retrain enqueued for %s", fire_time)
        run = claim_next_run(self.engine, self.name)
        if run is None or run.id is None:
            return None
        self.execute_claimed(run.id)
        return run.id

    def execute_claimed(self, run_id: int) -> None:
        reporter = self.reporter_factory(self.engine, run_id)
        log.info("run %s started on %s", run_id, self.name)
        try:
            with beating(reporter, self.heartbeat_interval_s):
                metrics = self.execute(run_id, reporter)
        except RunCancelled:
            finish_run(self.engine, run_id, RunStatus.CANCELLED, error="cancelled on request")
        except RunSkipped as skipped:
            finish_run(self.engine, run_id, RunStatus.SKIPPED, error=str(skipped))
            log.info("run %s skipped: %s", run_id, skipped)
        except (ValueError, LookupError, PermissionError, HostedTrainingError) as exc:
            # refusals and bad input: the message says it all, a traceback would only hide it
            log.error("run %s failed: %s", run_id, exc)
            finish_run(self.engine, run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("run %s failed", run_id)
            finish_run(self.engine, run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            finish_run(self.engine, run_id, RunStatus.SUCCEEDED, metrics=metrics)
            log.info("run %s succeeded", run_id)

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        self.recover()
        log.info("worker %s polling every %ss", self.name, self.poll_interval_s)
        while not stop.is_set():
            if self.tick() is None:
                stop.wait(self.poll_interval_s)
