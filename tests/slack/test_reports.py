"""Training reports: their blocks, posting them, and the Promote and Discard buttons."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from brandvoice.bot.slack.blocks import build_report_blocks, metric_line
from brandvoice.bot.slack.client import make_client
from brandvoice.bot.slack.reports import (
    post_training_report,
    report_from_eval,
    slack_report_publisher,
)
from brandvoice.store.db import session_scope
from brandvoice.store.models import RunStatus, TrainingRun, VersionStatus
from brandvoice.trainer.registry import get_version, promote_version, register_candidate
from tests.slack.conftest import ALICE, CURATOR, REPORTS, TEAM

pytestmark = pytest.mark.anyio


def make_report(version: str = "v2") -> dict[str, Any]:
    return {
        "version": version,
        "base_model": "smollm2-135m-instruct",
        "run_id": 7,
        "production": "v1",
        "data": {"real": 36, "synthetic": 90, "snapshot_hash": "ab12cd34ef56" + "0" * 52},
        "metrics": {
            "val_loss": {"candidate": 1.104, "production": 1.302},
            "voice_similarity": {"candidate": 0.61, "production": 0.36},
            "win_rate": {"candidate": 0.7},
            "forgetting": {"candidate": 1.08, "production": 1.02},
        },
        "samples": [
            {
                "prompt": f"Question {i}?",
                "reference": f"Reference {i}",
                "production": f"Old answer {i}",
                "candidate": f"New answer {i}. Cheers, Acme",
            }
            for i in range(4)
        ],
        "verdict": {"recommend_promote": True, "reason": "beats v1 on voice and win rate"},
    }


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_the_report_blocks_show_data_metrics_samples_verdict_and_buttons():
    blocks = build_report_blocks(make_report())
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
        "*Voice similarity*\n0.36 → *0.61* ▲ ✅",
        "*Win rate vs production*\n50% → *70%* ▲ ✅",
        "*Forgetting (perplexity ÷ base)*\n1.02 → *1.08* ▲ ⚠️",
    ]
    assert "Sample 3" in rendered and "Sample 4" not in rendered
    assert "New answer 0. Cheers, Acme" in rendered and "Old answer 2" in rendered
    assert "*Verdict:* ✅ Recommend promote — beats v1 on voice and win rate" in rendered

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
    assert metric_line("val_loss", {"candidate": 0.9, "production": 0.9}).endswith("= same")
    assert metric_line("custom_score", {"candidate": 2, "production": 1}).endswith("▲ ✅")
    assert metric_line("val_loss", {"candidate": None}) == "*Validation loss*\n–"


async def test_posting_a_report_and_what_happens_without_a_channel(slack_api, caplog):
    client = make_client("xoxb-1-test", slack_api.api_url)
    report = make_report()
    ts = await post_training_report(client, REPORTS, report)
    [post] = slack_api.calls_to("chat.postMessage")
    assert ts == post.answer["ts"]
    assert post.body["channel"] == REPORTS
    assert post.body["blocks"] == build_report_blocks(report)
    assert post.body["text"] == "Training report for v2: recommend promote"

    assert await post_training_report(client, None, report) is None
    slack_api.not_in_channels.add(REPORTS)
    with caplog.at_level(logging.ERROR):
        assert await post_training_report(client, REPORTS, report) is None
    assert f"chat.postMessage failed in {REPORTS}: not_in_channel" in caplog.text
    assert "/invite @brandvoice" in caplog.text


def click(slack, user: str, message: dict[str, Any], action_id: str, value: str) -> dict[str, Any]:
    [button] = [
        e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    ]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A1",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": REPORTS,
            "is_ephemeral": False,
        },
        "trigger_id": "4444.5555.abc",
        "team": {"id": TEAM, "domain": "acme"},
        "channel": {"id": REPORTS, "name": "brandvoice-reports"},
        "message": message,
        "response_url": slack.api.response_url("report"),
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"report_actions:{value}",
                "text": button["text"],
                "value": button["value"],
                "style": button["style"],
                "type": "button",
                "action_ts": "1700000800.000001",
            }
        ],
    }


async def posted_report(slack, engine, settings) -> dict[str, Any]:
    """v1 in production, candidate v2 with a succeeded run, and its report posted."""
    with session_scope(engine) as session:
        register_candidate(session, base_model="base")
        promote_version(session, "v1", CURATOR)
        run = TrainingRun(status=RunStatus.SUCCEEDED)
        session.add(run)
        session.flush()
        register_candidate(session, base_model="base", run_id=run.id)
    client = make_client(settings.slack_bot_token, settings.slack_api_url)
    report = make_report("v2")
    ts = await post_training_report(client, REPORTS, report)
    return {"type": "message", "ts": ts, "text": "report", "blocks": build_report_blocks(report)}


def statuses(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return {name: get_version(session, name).status.value for name in ("v1", "v2")}


async def test_a_curators_promote_click_promotes_and_updates_the_report(slack, engine, settings):
    message = await posted_report(slack, engine, settings)
    await slack.interact(click(slack, ALICE, message, "report_promote", "v2"))
    assert "Only curators can promote" in slack.ephemerals(ALICE)[-1]
    assert statuses(engine) == {"v1": "promoted", "v2": "candidate"}
    assert slack.api.calls_to("chat.update") == []

    response = await slack.interact(click(slack, CURATOR, message, "report_promote", "v2"))
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
    await slack.interact(click(slack, CURATOR, message, "report_promote", "v2"))
    assert statuses(engine) == {"v1": "retired", "v2": "promoted"}
    assert len(slack.api.calls_to("chat.update")) == 1
    assert "already promoted" in slack.ephemerals(CURATOR)[-1]

    # Discarding what is in production is refused by the registry, with its reason.
    await slack.interact(click(slack, CURATOR, message, "report_discard", "v2"))
    assert "Cannot discard v2: v2 is in production" in slack.ephemerals(CURATOR)[-1]


async def test_a_discard_click_discards_the_candidate(slack, engine, settings):
    message = await posted_report(slack, engine, settings)
    await slack.interact(click(slack, CURATOR, message, "report_discard", "v2"))
    with session_scope(engine) as session:
        assert get_version(session, "v2").status == VersionStatus.DISCARDED
    [update] = slack.api.calls_to("chat.update")
    assert f"<@{CURATOR}> discarded *v2*" in update.body["blocks"][-1]["elements"][0]["text"]


def pipeline_eval() -> dict[str, Any]:
    """An eval as ``trainer.evaluate.evaluate`` and the pipeline store it on the version."""
    return {
        "examples": 8,
        "judge": "closer to reference",
        "labels": {"candidate": "v2", "production": "v1", "baseline": "base + 5 examples"},
        "voice_similarity": {"candidate": 0.61, "production": 0.42, "baseline": 0.36},
        "win_rate": {"vs_production": 0.75, "vs_baseline": 0.875},
        "exact_match": None,
        "samples": make_report()["samples"][:3],
        "val_loss": {"candidate": 1.1, "production": 1.3},
        "forgetting": 1.07,
        "verdict": {"recommend_promote": False, "reasons": ["a", "b"]},
        "snapshot": {
            "id": 3,
            "hash": "f" * 64,
            "by_source": {"import": 30, "correction": 6, "synthetic": 90},
        },
    }


def test_the_pipelines_eval_becomes_the_report(engine):
    with session_scope(engine) as session:
        version = register_candidate(
            session, base_model="smollm2-135m-instruct", eval=pipeline_eval()
        )
    report = report_from_eval(version, version.eval)
    assert report["data"] == {"real": 36, "synthetic": 90, "snapshot_hash": "f" * 64}
    assert report["production"] == "v1"
    assert report["verdict"] == {"recommend_promote": False, "reason": "a; b"}
    rendered = texts(build_report_blocks(report))
    assert "*Win rate vs production*\\n50% → *75%* ▲ ✅" in rendered
    assert "*Forgetting (perplexity ÷ base)*\\n1.00 → *1.07* ▲ ⚠️" in rendered
    assert "*Verdict:* ⚠️ Keep production — a; b" in rendered
    assert "Exact match" not in rendered


def test_the_worker_publisher_posts_the_report(engine, slack_api, settings):
    with session_scope(engine) as session:
        version = register_candidate(session, base_model="base", eval=pipeline_eval())
    slack_report_publisher(settings)(version, version.eval)
    [post] = slack_api.calls_to("chat.postMessage")
    assert post.body["channel"] == REPORTS
    assert post.body["blocks"][-1]["elements"][0]["value"] == "v1"
