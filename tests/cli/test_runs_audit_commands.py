"""``brandvoice runs list``, ``brandvoice audit`` and refused transitions, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.models import AuditLog
from brandvoice.store.runs import claim_next_run, enqueue_run
from brandvoice.trainer.registry import promote_version, register_candidate

CLI = [sys.executable, "-m", "brandvoice"]


@pytest.fixture
def run(tmp_path: Path, database_url: str, engine):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "COLUMNS": "250",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )

    return run


def test_runs_list_says_why_a_queued_run_waits_and_train_is_refused_meanwhile(run, engine):
    with session_scope(engine) as session:
        running = enqueue_run(session, "U1")
    claim_next_run(engine, "gpu-box-1")
    with session_scope(engine) as session:
        queued = enqueue_run(session, "U2")
    listed = run("runs", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if f" {queued.id} " in line)
    assert f"waiting: run {running.id} is running on worker gpu-box-1, heartbeat" in line
    refused = run("train", "--max-steps", "1")
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        == f"error: run #{running.id} is already running; wait for its report"
    )
    with session_scope(engine) as session:
        refusal = session.exec(
            select(AuditLog).where(AuditLog.action == "run.enqueue.refused")
        ).one()
    assert refusal.actor == "cli"


def test_a_refused_promotion_is_one_line_exit_2_and_shows_in_the_audit(run, engine):
    with session_scope(engine) as session:
        register_candidate(session, base_model="base")
        register_candidate(session, base_model="base")
        promote_version(session, "v1", "U0CURATOR")
    refused = run("models", "discard", "v1")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: v1 is in production; promote another version or roll back first"
    )
    audit = run("audit", "--version", "v1", "--since", "1h")
    assert audit.returncode == 0, audit.stderr
    lines = [line for line in audit.stdout.splitlines() if "v1" in line]
    assert ["model.discard.refused" in lines[0], "model.promote" in lines[1]] == [True, True]
    assert "U0CURATOR" in lines[1] and "cli" in lines[0]
    bad = run("audit", "--since", "last tuesday")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--since 'last tuesday' is neither a duration" in bad.stderr
