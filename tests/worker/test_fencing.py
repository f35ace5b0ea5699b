"""Workers that stop and come back: real worker processes paused with SIGSTOP, and a worker that
died while a live one keeps polling. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from brandvoice.bot.worker import RunReporter, Worker
from brandvoice.store.db import make_engine, session_scope
from brandvoice.store.models import AuditLog, ModelVersion, RunStatus, TrainingRun, as_utc
from brandvoice.store.runs import (
    ClaimLost,
    RunClaim,
    claim_next_run,
    enqueue_run,
    finish_run,
    heartbeat,
    latest_runs,
    waiting_reasons,
)
from brandvoice.trainer.pipeline import attempt_dir
from brandvoice.trainer.registry import register_candidate

HEARTBEAT_S, STALE_S, POLL_S = 0.2, 1.5, 0.1


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _run_worker_process(database_url: str, name: str, artifacts: Path, markers: Path) -> None:
    """A worker process whose run trains (waits for ``release``), writes an adapter into its
    attempt's directory and registers it, the way the pipeline does."""
    logging.basicConfig(filename=markers / f"{name}.log", level=logging.INFO, force=True)
    engine = make_engine(database_url)

    def execute(run_id: int, reporter: RunReporter) -> dict[str, Any]:
        claim = reporter.claim
        output = attempt_dir(artifacts, claim)
        output.mkdir(parents=True)
        reporter.progress(0.3, "train")
        (markers / f"{name}.started").touch()
        while not (markers / "release").exists():
            time.sleep(0.05)
        reporter.progress(0.8, "evaluate")
        (output / "adapter_model.safetensors").write_text(name)
        with session_scope(engine) as session:
            version = register_candidate(
                session, base_model="base", adapter_path=str(output), claim=claim
            )
        return {"version": version.name}

    worker = Worker(
        engine,
        execute,
        name=name,
        poll_interval_s=POLL_S,
        heartbeat_interval_s=HEARTBEAT_S,
        stale_after=timedelta(seconds=STALE_S),
    )
    worker.run_forever()


def test_a_paused_worker_that_lost_its_run_changes_nothing_when_it_resumes(
    engine, database_url, tmp_path
):
    artifacts, markers = tmp_path / "artifacts", tmp_path / "markers"
    markers.mkdir()
    with session_scope(engine) as session:
        run_id = enqueue_run(session, "U1", force=True).id
    spawn = multiprocessing.get_context("spawn")

    def start(name: str) -> multiprocessing.process.BaseProcess:
        process = spawn.Process(
            target=_run_worker_process, args=(database_url, name, artifacts, markers)
        )
        process.start()
        return process

    paused = start("worker-a")
    second = None
    try:
        _wait_for(lambda: (markers / "worker-a.started").exists(), timeout=300)
        second = start("worker-b")  # polls all along, while worker-a is alive and then paused
        _wait_for(lambda: _logged(markers, "worker-b", "polling every"), timeout=300)
        time.sleep(3 * HEARTBEAT_S)
        with session_scope(engine) as session:
            assert session.get(TrainingRun, run_id).worker == "worker-a"  # alive: left alone
        os.kill(paused.pid, signal.SIGSTOP)  # past the stale timeout, as a frozen VM would be
        (markers / "release").touch()
        _wait_for(lambda: _run(engine, run_id).status == RunStatus.SUCCEEDED)
        os.kill(paused.pid, signal.SIGCONT)
        _wait_for(lambda: _logged(markers, "worker-a", "lost its claim"))
        time.sleep(5 * POLL_S)
    finally:
        for process in (paused, second):
            if process is not None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
                process.join(10)

    run = _run(engine, run_id)
    assert (run.status, run.worker, run.attempts, run.progress) == ("succeeded", "worker-b", 2, 1.0)
    with session_scope(engine) as session:
        versions = session.exec(select(ModelVersion)).all()
        actions = [a.action for a in session.exec(select(AuditLog))]
    assert [(v.name, v.run_id) for v in versions] == [("v1", run_id)]
    second_attempt = attempt_dir(artifacts, RunClaim(run_id, "worker-b", 2))
    assert versions[0].adapter_path == str(second_attempt)
    assert (second_attempt / "adapter_model.safetensors").read_text() == "worker-b"
    first_attempt = attempt_dir(artifacts, RunClaim(run_id, "worker-a", 1))
    assert first_attempt.is_dir() and list(first_attempt.iterdir()) == []
    assert actions.count("model.register") == 1 and actions.count("run.recover") == 1


def _logged(markers: Path, worker: str, text: str) -> bool:
    log = markers / f"{worker}.log"
    return log.exists() and text in log.read_text()


def _run(engine, run_id: int) -> TrainingRun:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        return run


def test_every_write_of_a_run_is_fenced_by_the_claim(engine):
    with session_scope(engine) as session:
        run_id = enqueue_run(session, "U1").id
    claim_next_run(engine, "worker-a")
    old = RunClaim(run_id, "worker-a", 1)
    with session_scope(engine) as session:  # recovered and claimed again meanwhile
        run = session.get(TrainingRun, run_id)
        run.status, run.worker = RunStatus.QUEUED, None
    claim_next_run(engine, "worker-b")
    for write in (
        lambda: heartbeat(engine, old),
        lambda: heartbeat(engine, old, progress=0.9, stage="train", metrics={"loss": 0.1}),
        lambda: finish_run(engine, old, RunStatus.SUCCEEDED, metrics={"version": "v9"}),
    ):
        try:
            write()
        except ClaimLost as lost:
            assert "run 1 attempt 1 on worker-a lost its claim" in str(lost)
        else:
            raise AssertionError("a write without the claim went through")
    with session_scope(engine) as session:
        try:
            register_candidate(session, base_model="base", claim=old)
        except ClaimLost:
            pass
        else:
            raise AssertionError("registered without the claim")
    run = _run(engine, run_id)
    assert (run.status, run.worker, run.attempts, run.progress, run.metrics) == (
        "running",
        "worker-b",
        2,
        0.0,
        {},
    )
    assert heartbeat(engine, RunClaim(run_id, "worker-b", 2), progress=0.5) is False
    with session_scope(engine) as session:
        assert session.exec(select(ModelVersion)).all() == []


def test_a_live_worker_recovers_the_run_of_a_dead_one_and_the_queue_moves_on(engine, database_url):
    executed: list[int] = []
    live = Worker(
        make_engine(database_url),
        lambda run_id, reporter: executed.append(run_id),
        name="live",
        poll_interval_s=POLL_S,
        heartbeat_interval_s=HEARTBEAT_S,
        stale_after=timedelta(seconds=STALE_S),
    )
    with session_scope(engine) as session:
        orphan = enqueue_run(session, "U1")
    # claimed by a worker that dies at once: it never beats again
    assert claim_next_run(engine, "dead", orphan.id) is not None
    with session_scope(engine) as session:
        waiting = enqueue_run(session, "U2")
    stop = threading.Event()
    thread = threading.Thread(target=live.run_forever, args=(stop,))
    thread.start()  # while the orphan's heartbeat is still fresh
    try:
        with session_scope(engine) as session:
            reasons = waiting_reasons(session, latest_runs(session), timedelta(seconds=STALE_S))
        assert reasons[waiting.id].startswith(
            f"waiting: run {orphan.id} is running on worker dead, heartbeat "
        )
        _wait_for(lambda: executed == [orphan.id, waiting.id], timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert _run(engine, orphan.id).status == RunStatus.SUCCEEDED
    assert _run(engine, waiting.id).status == RunStatus.SUCCEEDED


def test_a_queued_run_says_what_it_waits_for(engine):
    with session_scope(engine) as session:
        running = enqueue_run(session, "U1")
        first, second = enqueue_run(session, "U1"), enqueue_run(session, "U1")
        other = enqueue_run(session, "U1", workspace="other")
    claim_next_run(engine, "worker-x", running.id)
    with session_scope(engine) as session:
        now = as_utc(session.get(TrainingRun, running.id).heartbeat_at)
        runs = latest_runs(session)
        reasons = waiting_reasons(session, runs, timedelta(minutes=5), now + timedelta(seconds=3))
        stale = waiting_reasons(session, runs, timedelta(minutes=5), now + timedelta(minutes=6))
    assert (
        reasons[first.id]
        == f"waiting: run {running.id} is running on worker worker-x, heartbeat 3 s ago"
    )
    assert reasons[second.id] == reasons[first.id]
    assert reasons[other.id].startswith("waiting for a worker to claim it")
    assert running.id not in reasons
    assert stale[first.id].endswith("(stale: the next worker poll recovers it)")
