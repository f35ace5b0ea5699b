"""The buttons under a reply: 👍/👎 clicks are votes exactly like reactions; the icon button opens
the correction modal. Payloads are ``block_actions`` shaped as Slack sends them for a
``feedback_buttons`` or ``icon_button`` element in a ``context_actions`` block."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.models import Example, FeedbackVote
from tests.slack.conftest import ALICE, BOB, BOT, CHANNEL, CURATOR, block_actions_payload

pytestmark = pytest.mark.anyio
_action_ts = itertools.count(1)


async def ask(slack, text: str = "Write a welcome note") -> dict[str, Any]:
    """Ask the bot something; returns its reply as Slack shows it."""
    await slack.mention(text)
    return slack.last_reply()


def reply_message(reply: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "bot_message",
        "user": BOT,
        "bot_id": "B0BOT",
        "text": reply["text"],
        "ts": reply["ts"],
        "blocks": reply["blocks"],
        "metadata": reply["metadata"],
    }


def element(reply: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    [block] = [b for b in reply["blocks"] if b["type"] == "context_actions"]
    [found] = [e for e in block["elements"] if e["type"] == kind]
    return block, found


def feedback_click(
    slack, user: str, reply: dict[str, Any], which: str, action_ts: str | None = None
) -> dict[str, Any]:
    """A click on the positive or negative feedback button of ``reply``."""
    block, buttons = element(reply, "feedback_buttons")
    button = buttons[f"{which}_button"]
    action = {
        "type": "feedback_buttons",
        "action_id": buttons["action_id"],
        "block_id": block["block_id"],
        "text": button["text"],
        "value": button["value"],
        "action_ts": action_ts or f"1700000800.{next(_action_ts):06d}",
    }
    return block_actions_payload(slack, user, CHANNEL, reply_message(reply), action)


def votes(engine) -> list[FeedbackVote]:
    with session_scope(engine) as session:
        return list(session.exec(select(FeedbackVote).order_by(FeedbackVote.id)))


def examples(engine) -> list[Example]:
    with session_scope(engine) as session:
        return list(session.exec(select(Example)))


async def test_thumbs_up_clicks_reach_the_quorum_like_reactions(slack, engine):
    reply = await ask(slack)
    response = await slack.interact(feedback_click(slack, ALICE, reply, "positive"))
    assert response.status_code == 200
    assert examples(engine) == []
    await slack.interact(feedback_click(slack, BOB, reply, "positive"))

    [example] = examples(engine)
    assert example.approvers == [ALICE, BOB]
    assert example.provenance["approved_by"] == "quorum"
    assert [(v.user, v.reaction, v.kind) for v in votes(engine)] == [
        (ALICE, "+1", "up"),
        (BOB, "+1", "up"),
    ]
    assert [c.body["name"] for c in slack.api.calls_to("reactions.add")] == ["inbox_tray"]


async def test_a_click_and_a_reaction_by_the_same_person_count_once(slack, engine):
    reply = await ask(slack)
    await slack.react("+1", reply["ts"], user=ALICE)
    await slack.interact(feedback_click(slack, ALICE, reply, "positive"))
    assert len(votes(engine)) == 1
    assert examples(engine) == []
    await slack.react("+1", reply["ts"], user=BOB)
    assert len(examples(engine)) == 1


async def test_a_repeated_payload_and_a_second_click_count_once(slack, engine):
    reply = await ask(slack)
    click = feedback_click(slack, ALICE, reply, "positive", action_ts="1700000900.000001")
    await slack.interact(click)
    await slack.interact(click)  # the same payload delivered again
    await slack.interact(feedback_click(slack, ALICE, reply, "positive"))  # clicked again
    [vote] = votes(engine)
    assert (vote.user, vote.kind, vote.retracted_at) == (ALICE, "up", None)
    assert examples(engine) == []


async def test_clicking_the_other_button_moves_the_vote(slack, engine):
    reply = await ask(slack)
    await slack.interact(feedback_click(slack, ALICE, reply, "positive"))
    await slack.interact(feedback_click(slack, ALICE, reply, "negative"))
    up, down = votes(engine)
    assert (up.kind, down.kind) == ("up", "down")
    assert up.retracted_at is not None and down.retracted_at is None

    await slack.interact(feedback_click(slack, ALICE, reply, "positive"))  # and back again
    await slack.interact(feedback_click(slack, BOB, reply, "positive"))
    up, down = votes(engine)[:2]
    assert up.retracted_at is None and down.retracted_at is not None
    assert len(examples(engine)) == 1


async def test_a_curators_thumbs_up_is_one_vote_not_an_approval(slack, engine):
    reply = await ask(slack)
    await slack.interact(feedback_click(slack, CURATOR, reply, "positive"))
    [vote] = votes(engine)
    assert (vote.user, vote.kind) == (CURATOR, "up")
    assert examples(engine) == []


async def test_thumbs_down_clicks_are_recorded_and_never_approve(slack, engine):
    reply = await ask(slack)
    for user in (ALICE, BOB):
        await slack.interact(feedback_click(slack, user, reply, "negative"))
    assert [(v.reaction, v.kind) for v in votes(engine)] == [("-1", "down")] * 2
    assert examples(engine) == []


async def test_the_icon_button_opens_the_correction_modal(slack, engine):
    reply = await ask(slack, "When are you open?")
    block, button = element(reply, "icon_button")
    click = feedback_click(slack, BOB, reply, "positive")
    click["actions"] = [
        {
            "type": "icon_button",
            "action_id": button["action_id"],
            "block_id": block["block_id"],
            "icon": button["icon"],
            "text": button["text"],
            "value": button["value"],
            "action_ts": "1700000950.000001",
        }
    ]
    await slack.interact(click)

    [opened] = slack.api.calls_to("views.open")
    assert opened.body["trigger_id"] == click["trigger_id"]
    view = opened.body["view"]
    assert view["callback_id"] == "correction_submit"
    [field] = [b for b in view["blocks"] if b.get("block_id") == "correction"]
    assert field["element"]["initial_value"] == reply["text"]
    assert votes(engine) == []
