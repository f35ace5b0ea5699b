"""``brandvoice models list`` and ``brandvoice eval`` show how people rated each version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from brandvoice.store.db import session_scope
from brandvoice.trainer.registry import register_candidate
from tests.eval_reports import make_report
from tests.signal_data import promoted_after


def brandvoice(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "COLUMNS": "300",
    }
    return subprocess.run(
        [sys.executable, "-m", "brandvoice", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_models_list_and_eval_show_the_production_signal(tmp_path, database_url, engine):
    promoted_after(engine, before=(10, 2), after=(8, 4), by="U0CURATOR")
    with session_scope(engine) as session:
        register_candidate(session, base_model="base", eval=make_report().to_stored())

    listed = brandvoice(tmp_path, database_url, "models", "list")

    assert listed.returncode == 0, listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if "│" in line}
    assert re.search(r"│ 10\s+│ 8/2\s+│ 20% \(95% CI 6–51%, 2/10\)", rows["v1"])
    assert re.search(r"│ 8\s+│ 4/4\s+│ 50% \(95% CI 22–78%, 4/8\)", rows["v2"])
    assert re.search(r"│ 0\s+│ 0/0\s+│ – \(0/0\)", rows["v3"])
    assert "0% (95% CI 0–28%, 0/10)" in rows["v1"]  # approved: none of its 10 replies

    shown = brandvoice(tmp_path, database_url, "eval", "v3")
    assert shown.returncode == 0, shown.stderr
    assert "production signal, replies served last 168 h" in shown.stdout
    [production] = [line for line in shown.stdout.splitlines() if "v2 (production)" in line]
    assert re.search(r"│ 8\s+│ 4\s+│ 4\s+│ 50% \(95% CI 22–78%, 4/8\)", production)
