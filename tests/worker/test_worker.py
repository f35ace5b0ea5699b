from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from brandvoice.bot.worker import RunReporter, Worker
from brandvoice.store.db import make_engine, session_scope
from brandvoice.store.kv import set_setting
from brandvoice.store.models import RunStatus, TrainingRun
from brandvoice.store.runs import (
    RunSkipped,
    claim_next_run,
    enqueue_run,
    recover_stale_runs,
    request_cancel,
)

MONDAY_0859 = datetime(2026, 11, 23, 8, 59, 30, tzinfo=UTC)


def _runs(engine) -> list[TrainingRun]:
    with session_scope(engine) as session:
        return list(session.exec(select(TrainingRun).order_by(TrainingRun.id)))


def _enqueue(engine, n: int = 1, workspace: str = "default") -> list[int]:
    with session_scope(engine) as session:
        return [enqueue_run(session, "U1", workspace=workspace).id for _ in range(n)]


def test_the_schedule_enqueues_one_run_at_the_cron_time_however_many_workers(engine):
    executed: list[int] = []
    workers = [
        Worker(engine, lambda run_id, _: executed.append(run_id), timezone="UTC") for _ in range(2)
    ]
    for worker in workers:
        assert worker.tick(MONDAY_0859) is None
    assert _runs(engine) == []
    nine = MONDAY_0859.replace(minute=0, second=0, hour=9)
    assert workers[0].tick(nine + timedelta(seconds=2)) is not None
    assert workers[1].tick(nine + timedelta(seconds=3)) is None
    runs = _runs(engine)
    assert len(runs) == 1 and runs[0].requested_by == "scheduler"
    assert runs[0].scheduled_for.replace(tzinfo=UTC) == nine
    assert runs[0].status == RunStatus.SUCCEEDED and executed == [runs[0].id]
    assert workers[0].schedule.next_fire == nine + timedelta(days=7)


def test_a_schedule_change_in_the_store_takes_effect_without_restart(engine):
    worker = Worker(engine, lambda *_: None, timezone="UTC")
    worker.tick(MONDAY_0859)
    with session_scope(engine) as session:
        set_setting(session, "retrain_schedule", "30 10 * * *", "U1")
    worker.tick(MONDAY_0859)
    assert worker.schedule.next_fire == MONDAY_0859.replace(hour=10, minute=30, second=0)
    with session_scope(engine) as session:
        set_setting(session, "retrain_schedule", "off", "U1")
    assert worker.tick(MONDAY_0859 + timedelta(days=3)) is None
    assert worker.schedule.next_fire is None and _runs(engine) == []


def test_two_workers_racing_for_one_run_execute_it_once(engine, database_url):
    _enqueue(engine)
    barrier = threading.Barrier(2)
    claimed: list[object] = []

    def race() -> None:
        own_engine = make_engine(database_url)
        barrier.wait()
        claimed.append(claim_next_run(own_engine, threading.current_thread().name))
        own_engine.dispose()

    threads = [threading.Thread(target=race, name=f"w{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [run for run in claimed if run is not None]
    assert len(winners) == 1
    (run,) = _runs(engine)
    assert run.status == RunStatus.RUNNING and run.worker == winners[0].worker


def test_at_most_one_run_per_workspace_runs_at_a_time(engine):
    _enqueue(engine, 2)
    _enqueue(engine, 1, workspace="other")
    first = claim_next_run(engine, "w1")
    assert first is not None
    second = claim_next_run(engine, "w2")
    assert second is None  # the second default-workspace run waits behind the first
    with session_scope(engine) as session:
        session.get(TrainingRun, first.id).status = RunStatus.SUCCEEDED
    assert claim_next_run(engine, "w2").id == 2


def test_stale_runs_are_requeued_once_then_failed(engine):
    _enqueue(engine)
    claim_next_run(engine, "dead-worker")
    old = datetime.now(UTC) - timedelta(hours=1)

    def age() -> None:
        with session_scope(engine) as session:
            run = session.exec(select(TrainingRun)).one()
            run.heartbeat_at = old
            session.add(run)

    age()
    assert recover_stale_runs(engine, timedelta(minutes=5)) == [1]
    assert _runs(engine)[0].status == RunStatus.QUEUED
    claim_next_run(engine, "dead-again")
    age()
    recover_stale_runs(engine, timedelta(minutes=5))
    (run,) = _runs(engine)
    assert run.status == RunStatus.FAILED and "dead-again stopped heartbeating" in run.error


def test_outcomes_cancel_skip_and_failure_are_recorded(engine):
    ids = _enqueue(engine, 3)
    with session_scope(engine) as session:
        request_cancel(session, ids[0], "U1")
    assert _runs(engine)[0].status == RunStatus.CANCELLED

    def cancel_then_report(run_id: int, reporter: RunReporter) -> None:
        with session_scope(engine) as session:
            request_cancel(session, run_id, "U1")
        reporter.progress(0.5, "train")

    Worker(engine, cancel_then_report).tick()
    Worker(engine, lambda *_: (_ for _ in ()).throw(RunSkipped("only 3 new examples"))).tick()
    runs = _runs(engine)
    assert (runs[1].status, runs[1].error) == (RunStatus.CANCELLED, "cancelled on request")
    assert (runs[2].status, runs[2].error) == (RunStatus.SKIPPED, "only 3 new examples")

    _enqueue(engine)
    Worker(engine, lambda *_: 1 / 0).tick()
    failed = _runs(engine)[3]
    assert failed.status == RunStatus.FAILED and failed.error.startswith("ZeroDivisionError")


def test_cancelling_a_finished_run_is_refused(engine):
    (run_id,) = _enqueue(engine)
    Worker(engine, lambda *_: {"loss": 1.0}).tick()
    assert _runs(engine)[0].metrics == {"loss": 1.0}
    with session_scope(engine) as session, pytest.raises(ValueError, match="already succeeded"):
        request_cancel(session, run_id, "U1")


def test_every_tick_runs_the_checks_and_a_failing_check_does_not_stop_the_queue(engine, caplog):
    seen: list[datetime] = []

    def broken(now: datetime) -> None:
        raise RuntimeError("the check broke")

    executed: list[int] = []
    worker = Worker(
        engine,
        lambda run_id, _: executed.append(run_id),
        default_cron="off",
        watches=[broken, seen.append],
    )
    [run_id] = _enqueue(engine)
    assert worker.tick(MONDAY_0859) == run_id
    assert executed == [run_id] and seen == [MONDAY_0859]
    assert "the check broke" in caplog.text
