"""One evaluation report, read the same on the terminal, in Slack, in HTML and over REST."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from brandvoice.bot.cli.report import report_renderable
from brandvoice.bot.slack.blocks import build_report_blocks
from brandvoice.store.db import make_engine, session_scope, upgrade
from brandvoice.store.models import ModelVersion
from brandvoice.trainer.registry import register_candidate
from brandvoice.trainer.report_html import render_report_html
from tests.eval_reports import make_report, old_stored_report


def terminal_text(name: str, report) -> str:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(report_renderable(name, report))
    return console.export_text()


def test_cli_slack_and_html_show_the_same_verdict_and_figures():
    report = make_report(recommend=False, reasons=("wins only 50% against production",))
    version = ModelVersion(name="v2", base_model="smollm2-135m-instruct", run_id=7)

    terminal = terminal_text("v2", report)
    slack = json.dumps(build_report_blocks(version, report), ensure_ascii=False)
    html = render_report_html("v2", report)

    assert "verdict: hold v2 (wins only 50% against production)" in terminal
    assert "⚠️ Keep production — wins only 50% against production" in slack
    assert "Do not promote" in html and "<li>wins only 50% against production</li>" in html
    [similarity_row] = [line for line in terminal.splitlines() if "voice similarity" in line]
    assert re.search(r"0\.42\s*│\s*0\.6123\s*│\s*▲ better", similarity_row)
    assert "*Voice similarity*\\n0.42 → *0.61* ▲ ✅" in slack
    assert "<td>Voice similarity ↑</td><td>0.42</td><td class='good'>0.6123</td>" in html
    for shown in (terminal, slack, html):
        assert "75%" in shown  # the win rate against production
        assert "New answer 0. Cheers, Acme" in shown


def test_eval_shows_a_report_stored_by_the_old_code(tmp_path: Path, database_url: str):
    engine = make_engine(database_url)
    upgrade(engine)
    old = old_stored_report()
    with session_scope(engine) as session:
        register_candidate(session, base_model="smollm2-135m-instruct", eval=old)
    engine.dispose()
    env = {**os.environ, "DATABASE_URL": database_url, "ARTIFACTS_DIR": str(tmp_path / "a")}

    def brandvoice(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "brandvoice", *args],
            cwd=tmp_path,
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    shown = brandvoice("eval", "v1")
    assert shown.returncode == 0, shown.stderr
    assert f"v1 against {old['labels']['production']}" in shown.stdout
    assert str(old["voice_similarity"]["candidate"]) in shown.stdout
    verdict = "recommend promoting v1" if old["verdict"]["recommend_promote"] else "hold v1"
    assert f"verdict: {verdict}" in shown.stdout
    listed = brandvoice("models", "list")
    assert listed.returncode == 0, listed.stderr
    assert str(old["voice_similarity"]["candidate"]) in listed.stdout
