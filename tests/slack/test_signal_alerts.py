"""The 👎-rate alert: posted once in the report channel by the worker's check, its Roll back
button (curators only, audited), automatic rollback when configured, and the signal in
``/brandvoice status`` and in training reports."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from brandvoice.bot.services import signal_watch
from brandvoice.bot.slack.blocks import build_report_blocks
from brandvoice.bot.worker import Worker
from brandvoice.store.db import session_scope
from brandvoice.store.models import AuditLog, ModelVersion, utcnow
from brandvoice.trainer.production_signal import report_signal
from brandvoice.trainer.registry import get_version
from tests.eval_reports import make_report
from tests.signal_data import promoted_after
from tests.slack.conftest import ALICE, CURATOR, REPORTS, block_actions, make_settings

pytestmark = pytest.mark.anyio


def statuses(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return {name: get_version(session, name).status.value for name in ("v1", "v2")}


def audit(engine) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    with session_scope(engine) as session:
        rows = session.exec(select(AuditLog).order_by(AuditLog.id)).all()
        setup = ("model.register", "model.promote")
        return [(a.actor, a.action, a.target, a.details) for a in rows if a.action not in setup]


def as_message(post) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The posted message as Slack sends it back in a click's payload."""
    return {
        "type": "message",
        "ts": post.answer["ts"],
        "text": post.body["text"],
        "blocks": post.body["blocks"],
    }


async def test_a_worse_promotion_is_alerted_once_and_a_curators_click_rolls_it_back(
    slack, engine, settings
):
    # v1: 4 of 40 voted replies got a 👎; v2 since its promotion: 20 of 40.
    promotion = promoted_after(engine, before=(40, 4), after=(40, 20), by=CURATOR)
    worker = Worker(
        engine, lambda *_: None, default_cron="off", watches=[signal_watch(settings, engine)]
    )

    await asyncio.to_thread(worker.tick, promotion.now)

    [post] = slack.api.calls_to("chat.postMessage")
    assert post.body["channel"] == REPORTS
    assert post.body["text"].startswith("v2 gets significantly more 👎 than v1: 50%")
    shown = json.dumps(post.body["blocks"], ensure_ascii=False)
    assert "⚠️ v2: more 👎 than v1" in shown
    assert "👎 rate 50% (95% CI 35–65%, 20/40)" in shown
    assert "👎 rate 10% (95% CI 4–23%, 4/40)" in shown
    assert "z = 3.90" in shown and "α = 0.05" in shown
    [button] = post.body["blocks"][-1]["elements"]
    assert (button["action_id"], button["value"], button["style"]) == (
        "signal_rollback",
        "v2",
        "danger",
    )
    [(actor, action, target, details)] = audit(engine)
    assert (actor, action, target) == ("brandvoice", "model.signal_alert", "v2")
    assert details["down_rate"] == [20, 40] and details["predecessor_down_rate"] == [4, 40]

    # Later checks in the same window, and a restarted worker, do not alert again.
    await asyncio.to_thread(worker.tick, promotion.now + timedelta(minutes=10))
    restarted = Worker(
        engine, lambda *_: None, default_cron="off", watches=[signal_watch(settings, engine)]
    )
    await asyncio.to_thread(restarted.tick, promotion.now + timedelta(hours=1))
    assert len(slack.api.calls_to("chat.postMessage")) == 1
    assert statuses(engine) == {"v1": "retired", "v2": "promoted"}  # never rolled back alone

    message = as_message(post)
    await slack.interact(block_actions(slack, ALICE, REPORTS, message, "signal_rollback"))
    assert slack.ephemerals(ALICE)[-1].startswith("Only curators can roll back models.")
    assert statuses(engine) == {"v1": "retired", "v2": "promoted"}
    assert audit(engine)[-1] == (
        ALICE,
        "model.rollback.refused",
        "v2",
        {"reason": "not a curator"},
    )
    assert slack.api.calls_to("chat.update") == []

    await slack.interact(block_actions(slack, CURATOR, REPORTS, message, "signal_rollback"))
    assert statuses(engine) == {"v1": "promoted", "v2": "retired"}
    with session_scope(engine) as session:
        assert get_version(session, "v2").rolled_back_at is not None
    assert audit(engine)[-1] == (CURATOR, "model.rollback", "v2", {"restored": "v1"})
    [update] = slack.api.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (REPORTS, message["ts"])
    assert not [b for b in update.body["blocks"] if b["type"] == "actions"]
    note = update.body["blocks"][-1]["elements"][0]["text"]
    assert note.startswith(f"↩️ <@{CURATOR}> rolled back *v2*; v1 answers again · <!date^")

    # The button of an old alert never rolls back what is in production now.
    await slack.interact(block_actions(slack, CURATOR, REPORTS, message, "signal_rollback"))
    assert statuses(engine) == {"v1": "promoted", "v2": "retired"}
    assert (
        "Cannot roll back v2: v2 is no longer in production (v1 is)"
        in slack.ephemerals(CURATOR)[-1]
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((40, 4), (40, 7)),  # 10% against 17.5%: p = 0.17, not significant at 0.05
        ((40, 4), (19, 15)),  # far worse, but fewer voted replies than SIGNAL_MIN_VOTES (20)
        ((40, 20), (40, 4)),  # better
    ],
)
def test_no_alert_without_a_significant_difference(engine, slack_api, settings, before, after):
    promotion = promoted_after(engine, before=before, after=after, by=CURATOR)
    watch = signal_watch(settings, engine)
    assert watch(promotion.now) is None
    assert slack_api.calls_to("chat.postMessage") == []
    assert audit(engine) == []


def test_auto_rollback_rolls_back_audited_and_says_so(engine, slack_api):
    settings = make_settings(slack_api, auto_rollback=True)
    promotion = promoted_after(engine, before=(40, 4), after=(40, 20), by=CURATOR)

    alert = signal_watch(settings, engine)(promotion.now)

    assert alert is not None and alert.rolled_back
    assert statuses(engine) == {"v1": "promoted", "v2": "retired"}
    assert [(a, b, c) for a, b, c, _ in audit(engine)] == [
        ("brandvoice", "model.signal_alert", "v2"),
        ("brandvoice", "model.rollback", "v2"),
    ]
    [post] = slack_api.calls_to("chat.postMessage")
    assert post.body["text"].endswith("(rolled back automatically)")
    shown = json.dumps(post.body["blocks"], ensure_ascii=False)
    assert "↩️ brandvoice rolled *v2* back (AUTO_ROLLBACK); v1 answers again." in shown
    assert not [b for b in post.body["blocks"] if b["type"] == "actions"]


def test_a_first_promotion_is_compared_with_the_base_model(engine, slack_api, settings):
    from brandvoice.trainer.registry import promote_version, register_candidate
    from tests.signal_data import serve

    with session_scope(engine) as session:
        v1 = register_candidate(session, base_model="base")
        promote_version(session, "v1", CURATOR)
    with session_scope(engine) as session:
        promoted_at = get_version(session, "v1").promoted_at
        assert promoted_at is not None
        serve(session, None, voted=30, downvoted=3, at=promoted_at - timedelta(hours=3))
        serve(session, v1.id, voted=30, downvoted=15, at=promoted_at + timedelta(minutes=5))

    alert = signal_watch(settings, engine)(promoted_at + timedelta(hours=1))

    assert alert is not None and alert.predecessor == "base model"
    [post] = slack_api.calls_to("chat.postMessage")
    shown = json.dumps(post.body["blocks"], ensure_ascii=False)
    assert "the base model `smollm2-135m-instruct`, which a rollback restores" in shown


async def test_status_shows_how_people_rate_the_model_in_production(slack, engine):
    promoted_after(engine, before=(40, 4), after=(10, 3), by=CURATOR)
    response = await slack.command("status", user=ALICE)
    assert response.status_code == 200
    text = slack.responses()[-1]["text"]
    assert "*With people* (since <!date^" in text
    assert "10 replies · 👍 7 👎 3 · 👎 rate 30% (95% CI 11–60%, 3/10)" in text
    assert "approved 0% (95% CI 0–28%, 0/10)" in text


def test_the_training_report_shows_the_signal_beside_the_offline_metrics(engine):
    promoted_after(engine, before=(40, 4), after=(10, 3), by=CURATOR)
    with session_scope(engine) as session:
        candidate = ModelVersion(id=99, name="v3", base_model="base")
        signal = report_signal(session, candidate, timedelta(hours=168), utcnow())
        report = make_report().with_run(production_signal=signal)
    assert signal.production.version == "v2" and signal.candidate is None  # v3 never served
    shown = json.dumps(build_report_blocks(candidate, report), ensure_ascii=False)
    assert "*Production signal* · replies served last 168 h" in shown
    assert (
        "*v2 (production)*\\n10 replies · 👍 7 · 👎 3\\n👎 rate 30% (95% CI 11–60%, 3/10)" in shown
    )
