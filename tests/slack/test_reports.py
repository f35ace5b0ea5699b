"""Training reports: their blocks, posting them, and the Promote and Discard buttons."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from brandvoice.bot.slack.blocks import build_report_blocks, metric_line
from brandvoice.bot.slack.client import make_client
from brandvoice.bot.slack.reports import post_training_report, slack_report_publisher
from brandvoice.store.db import session_scope
from brandvoice.store.models import ModelVersion, RunStatus, TrainingRun, VersionStatus
from brandvoice.trainer.registry import get_version, promote_version, register_candidate
from tests.eval_reports import make_report
from tests.slack.conftest import ALICE, CURATOR, REPORTS, block_actions

pytestmark = pytest.mark.anyio


def version(name: str = "v2") -> ModelVersion:
    return ModelVersion(name=name, base_model="smollm2-135m-instruct", run_id=7)


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_the_report_blocks_show_data_metrics_samples_verdict_and_buttons():
    report = make_report(reasons=())
    blocks = build_report_blocks(version(), report)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Training report · v2", "emoji": True},
    }
    rendered = texts(blocks)
    assert (
        "smollm2-135m-instruct" in rendered
        and "run #7" in rendered
        and "v1 (production)" in rendered
    )
    assert "36 real + 90 synthetic examples · snapshot `ab12cd34ef56`" in rendered
    [metrics] = [b for b in blocks if b["type"] == "section" and "fields" in b][:1]
    assert [f["text"] for f in metrics["fields"]] == [
        "*Validation loss*\n1.302 → *1.104* ▼ ✅",
        "*Voice similarity*\n0.42 → *0.61* ▲ ✅",
        "*Win rate vs production*\n50% → *75%* ▲ ✅",
        "*Win rate vs prompted base*\n50% → *88%* ▲ ✅",
        "*Forgetting (perplexity ÷ base)*\n1.00 → *1.07* ▲ ⚠️",
    ]
    assert "Exact match" not in rendered and "Not measured" not in rendered
    assert "Sample 3" in rendered and "Sample 4" not in rendered
    assert "New answer 0. Cheers, Acme" in rendered and "Old answer 2" in rendered
    assert "*Verdict:* ✅ Recommend promote" in rendered

    actions = blocks[-1]
    assert actions["type"] == "actions"
    promote, discard = actions["elements"]
    assert (promote["action_id"], promote["value"], promote["style"]) == (
        "report_promote",
        "v2",
        "primary",
    )
    assert promote["text"]["text"] == "Promote v2"
    assert promote["confirm"]["confirm"]["text"] == "Promote"
    assert (discard["action_id"], discard["value"], discard["style"]) == (
        "report_discard",
        "v2",
        "danger",
    )


def test_metric_lines_without_a_reference_and_unknown_metrics():
    assert metric_line("val_loss", 0.9) == "*Validation loss*\n*0.900*"
    assert metric_line("val_loss", 0.9, 0.9).endswith("= same")
    assert metric_line("custom_score", 2, 1).endswith("▲ ✅")
    assert metric_line("val_loss", None) == "*Validation loss*\n–"


def test_a_report_that_keeps_production_says_why_and_what_was_not_measured():
    hosted = make_report(recommend=False, reasons=("a", "b")).model_copy(
        update={"val_loss": None, "forgetting": None, "not_measured": ["validation loss: x"]}
    )
    rendered = texts(build_report_blocks(version(), hosted))
    assert "*Verdict:* ⚠️ Keep production — a; b" in rendered
    assert "Validation loss" not in rendered and "Forgetting" not in rendered
    assert "Not measured: validation loss: x" in rendered


async def test_posting_a_report_and_what_happens_without_a_channel(slack_api, caplog):
    client = make_client("xoxb-1-test", slack_api.api_url)
    report, v2 = make_report(), version()
    ts = await post_training_report(client, REPORTS, v2, report)
    [post] = slack_api.calls_to("chat.postMessage")
    assert ts == post.answer["ts"]
    assert post.body["channel"] == REPORTS
    assert post.body["blocks"] == build_report_blocks(v2, report)
    assert post.body["text"] == "Training report for v2: recommend promote"

    assert await post_training_report(client, None, v2, report) is None
    slack_api.not_in_channels.add(REPORTS)
    with caplog.at_level(logging.ERROR):
        assert await post_training_report(client, REPORTS, v2, report) is None
    assert f"chat.postMessage failed in {REPORTS}: not_in_channel" in caplog.text
    assert "/invite @brandvoice" in caplog.text


async def posted_report(slack, engine, settings) -> dict[str, Any]:
    """v1 in production, candidate v2 with a succeeded run, and its report posted."""
    with session_scope(engine) as session:
        register_candidate(session, base_model="base")
        promote_version(session, "v1", CURATOR)
        run = TrainingRun(status=RunStatus.SUCCEEDED)
        session.add(run)
        session.flush()
        report = make_report()
        v2 = register_candidate(session, base_model="base", run_id=run.id, eval=report.to_stored())
    client = make_client(settings.slack_bot_token, settings.slack_api_url)
    ts = await post_training_report(client, REPORTS, v2, report)
    blocks = build_report_blocks(v2, report)
    return {"type": "message", "ts": ts, "text": "report", "blocks": blocks}


def statuses(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return {name: get_version(session, name).status.value for name in ("v1", "v2")}


async def test_a_curators_promote_click_promotes_and_updates_the_report(slack, engine, settings):
    message = await posted_report(slack, engine, settings)
    await slack.interact(block_actions(slack, ALICE, REPORTS, message, "report_promote"))
    assert "Only curators can promote" in slack.ephemerals(ALICE)[-1]
    assert statuses(engine) == {"v1": "promoted", "v2": "candidate"}
    assert slack.api.calls_to("chat.update") == []

    response = await slack.interact(
        block_actions(slack, CURATOR, REPORTS, message, "report_promote")
    )
    assert response.status_code == 200
    assert statuses(engine) == {"v1": "retired", "v2": "promoted"}
    with session_scope(engine) as session:
        assert get_version(session, "v2").promoted_by == CURATOR
    [update] = slack.api.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (REPORTS, message["ts"])
    assert update.body["blocks"][:-2] == message["blocks"][:-2]
    assert not [b for b in update.body["blocks"] if b["type"] == "actions"]
    note = update.body["blocks"][-1]["elements"][0]["text"]
    assert note.startswith(f"✅ <@{CURATOR}> promoted *v2* · <!date^")

    # A second click (from a client still showing the buttons) changes nothing.
    await slack.interact(block_actions(slack, CURATOR, REPORTS, message, "report_promote"))
    assert statuses(engine) == {"v1": "retired", "v2": "promoted"}
    assert len(slack.api.calls_to("chat.update")) == 1
    assert "already promoted" in slack.ephemerals(CURATOR)[-1]

    # Discarding what is in production is refused by the registry, with its reason.
    await slack.interact(block_actions(slack, CURATOR, REPORTS, message, "report_discard"))
    assert "Cannot discard v2: v2 is in production" in slack.ephemerals(CURATOR)[-1]


async def test_a_discard_click_discards_the_candidate(slack, engine, settings):
    message = await posted_report(slack, engine, settings)
    await slack.interact(block_actions(slack, CURATOR, REPORTS, message, "report_discard"))
    with session_scope(engine) as session:
        assert get_version(session, "v2").status == VersionStatus.DISCARDED
    [update] = slack.api.calls_to("chat.update")
    assert f"<@{CURATOR}> discarded *v2*" in update.body["blocks"][-1]["elements"][0]["text"]


def test_the_worker_publisher_posts_the_report(engine, slack_api, settings):
    report = make_report()
    with session_scope(engine) as session:
        v1 = register_candidate(session, base_model="base", eval=report.to_stored())
    slack_report_publisher(settings)(v1, report)
    [post] = slack_api.calls_to("chat.postMessage")
    assert post.body["channel"] == REPORTS
    assert post.body["blocks"][-1]["elements"][0]["value"] == "v1"
    assert "*Voice similarity*\\n0.42 → *0.61* ▲ ✅" in texts(post.body["blocks"])
