"""``brandvoice train --backend openai`` as a user runs it: the cost is shown before anything leaves."""

from __future__ import annotations

import os
import subprocess
import sys

from brandvoice.store.db import session_scope
from brandvoice.store.runs import latest_runs
from tests.fakes.openai_server import FakeOpenAIServer


def test_train_shows_the_cost_and_uploads_nothing_when_not_confirmed(
    seeded, database_url, tmp_path, openai_server: FakeOpenAIServer
):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": openai_server.base_url,
        "PRICE_PER_MILLION_TOKENS": "3",
    }

    result = subprocess.run(
        [sys.executable, "-m", "brandvoice", "train", "--backend", "openai"],
        input="n\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stderr
    assert "OpenAI fine-tuning of gpt-4o-mini-2024-07-18:" in result.stdout
    assert "3 epochs" in result.stdout and "at $3 per 1M tokens" in result.stdout
    assert "Upload it and start the fine-tuning job?" in result.stdout
    assert "not started; nothing was uploaded" in result.stderr
    assert "Traceback" not in result.stderr
    assert openai_server.requests == []
    with session_scope(seeded) as session:
        assert latest_runs(session) == []
