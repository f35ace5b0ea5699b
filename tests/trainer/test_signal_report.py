"""The production signal in the evaluation report: stored and read back, and shown the same on
the terminal, in Slack and in HTML."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from rich.console import Console

from brandvoice.bot.cli.report import report_renderable
from brandvoice.bot.slack.blocks import build_report_blocks
from brandvoice.store.models import ModelVersion
from brandvoice.store.signal import SignalCounts
from brandvoice.trainer.eval_report import EvalReport, ProductionSignal
from brandvoice.trainer.report_html import render_report_html
from tests.eval_reports import make_report, old_stored_report

SINCE = datetime(2026, 11, 23, 12, tzinfo=UTC)


def signal() -> ProductionSignal:
    production = SignalCounts(
        served=120, up_votes=30, down_votes=10, voted_replies=36, downvoted_replies=8,
        approvals=12, corrections=3,
    )  # fmt: skip
    candidate = SignalCounts(served=10, up_votes=8, voted_replies=8, approvals=4)
    return ProductionSignal(
        measured_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
        window_hours=168,
        production=production.signal("v1", since=SINCE),
        candidate=candidate.signal("v2", since=SINCE),
    )


def test_a_report_with_the_signal_round_trips_and_old_reports_still_load():
    report = make_report().with_run(production_signal=signal())
    stored = json.loads(json.dumps(report.to_stored()))
    assert EvalReport.from_stored(stored) == report
    assert stored["production_signal"]["production"]["down_rate"]["count"] == 8
    old = EvalReport.from_stored(old_stored_report())
    assert old is not None and old.production_signal is None


def test_terminal_slack_and_html_show_the_same_signal():
    report = make_report().with_run(production_signal=signal())
    console = Console(record=True, width=250, file=io.StringIO())
    console.print(report_renderable("v2", report))
    terminal = console.export_text()
    slack = json.dumps(
        build_report_blocks(ModelVersion(name="v2", base_model="base"), report),
        ensure_ascii=False,
    )
    html = render_report_html("v2", report)

    for shown in (terminal, slack, html):
        assert "22% (95% CI 12–38%, 8/36)" in shown  # production's 👎 rate
        assert "10% (95% CI 6–17%, 12/120)" in shown  # production's approvals
        assert "40% (95% CI 17–69%, 4/10)" in shown  # the candidate's approvals
        assert "last 168 h" in shown
    assert "v1 (production)" in terminal and "v2 (candidate)" in terminal
    assert "*v2 (candidate)*\\n10 replies · 👍 8 · 👎 0" in slack
    assert "<td>v1 (production)</td><td>120</td><td>30</td><td>10</td>" in html

    without = make_report()
    assert "Production signal" not in render_report_html("v2", without)
    assert (
        "production signal"
        not in json.dumps(
            build_report_blocks(ModelVersion(name="v2", base_model="base"), without)
        ).lower()
    )
