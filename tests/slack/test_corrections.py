"""Corrections: the message shortcut, the modal, pending review cards and their buttons."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.models import Example, ExampleSource
from tests.slack.conftest import (
    ALICE,
    BOB,
    BOT,
    CHANNEL,
    CURATION,
    CURATOR,
    TEAM,
    block_actions,
    message_button,
)

pytestmark = pytest.mark.anyio
CORRECTED = "Hey there! We're open 9 to 5, Monday to Friday. Cheers, Acme"


def shortcut_payload(slack, user: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": "1700000500.000001",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM, "name": user.lower()},
        "channel": {"id": CHANNEL, "name": "general"},
        "is_enterprise_install": False,
        "callback_id": "improve_reply",
        "trigger_id": "1234.5678.abcdef",
        "response_url": slack.api.response_url("shortcut"),
        "message_ts": message["ts"],
        "message": message,
    }


def submission_payload(user: str, view: dict[str, Any], value: str) -> dict[str, Any]:
    """What Slack sends when ``view`` (as the bot opened it) is submitted with ``value`` typed in."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM, "name": user.lower()},
        "api_app_id": "A1",
        "token": "legacy-verification-token",
        "trigger_id": "2222.3333.abc",
        "view": {
            **view,
            "id": "V1",
            "team_id": TEAM,
            "state": {
                "values": {
                    "correction": {"correction_input": {"type": "plain_text_input", "value": value}}
                }
            },
            "hash": "1700000600.abc",
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }


async def open_modal(slack, user: str = ALICE) -> dict[str, Any]:
    """Ask, then open "Improve this reply" on the answer; returns the modal the bot opened."""
    await slack.mention("When are you open?")
    reply = slack.last_reply()
    message = {
        "type": "message",
        "user": BOT,
        "bot_id": "B0BOT",
        "text": reply["text"],
        "ts": reply["ts"],
    }
    response = await slack.interact(shortcut_payload(slack, user, message))
    assert response.status_code == 200
    [opened] = slack.api.calls_to("views.open")
    assert opened.body["trigger_id"] == "1234.5678.abcdef"
    return opened.body["view"]


def examples(engine) -> list[Example]:
    with session_scope(engine) as session:
        return list(session.exec(select(Example).order_by(Example.id)))


async def test_the_shortcut_opens_a_modal_prefilled_with_the_reply(slack):
    view = await open_modal(slack)
    assert view["callback_id"] == "correction_submit"
    [field] = [b for b in view["blocks"] if b.get("block_id") == "correction"]
    assert (
        field["element"]["initial_value"] == "Happy to help with 'When are you open?'. Cheers, Acme"
    )
    assert "When are you open?" in view["blocks"][0]["text"]["text"]


async def test_the_shortcut_on_someone_elses_message_explains_itself(slack):
    message = {"type": "message", "user": BOB, "text": "lunch?", "ts": "1600000000.000100"}
    await slack.interact(shortcut_payload(slack, ALICE, message))
    assert slack.api.calls_to("views.open") == []
    [note] = slack.ephemerals(ALICE)
    assert "brandvoice's own replies" in note


async def test_an_unchanged_or_empty_correction_keeps_the_modal_open_with_an_error(slack, engine):
    view = await open_modal(slack)
    original = view["blocks"][1]["element"]["initial_value"]
    for value in (original, "   "):
        response = await slack.interact(submission_payload(ALICE, view, value))
        assert response.status_code == 200
        body = response.json()
        assert body["response_action"] == "errors"
        assert set(body["errors"]) == {"correction"}
    assert examples(engine) == []


async def test_a_curators_correction_is_approved_at_once_with_the_original_kept(slack, engine):
    view = await open_modal(slack, user=CURATOR)
    response = await slack.interact(submission_payload(CURATOR, view, CORRECTED))
    assert response.status_code == 200 and response.text == ""

    [example] = examples(engine)
    assert (example.source, example.status, example.approvers) == (
        ExampleSource.CORRECTION,
        "approved",
        [CURATOR],
    )
    assert example.messages[-1] == {"role": "assistant", "content": CORRECTED}
    assert example.messages[-2]["content"] == "When are you open?"
    assert example.provenance["rejected_reply"] == (
        "Happy to help with 'When are you open?'. Cheers, Acme"
    )
    assert not [c for c in slack.api.calls_to("chat.postMessage") if c.body["channel"] == CURATION]
    assert "in the training set" in slack.ephemerals(CURATOR)[-1]


async def review_card(slack) -> dict[str, Any]:
    """The card the bot posted in the curation channel, as Slack stores it."""
    [post] = [c for c in slack.api.calls_to("chat.postMessage") if c.body["channel"] == CURATION]
    return {
        "type": "message",
        "ts": post.answer["ts"],
        "text": post.body["text"],
        "blocks": post.body["blocks"],
    }


async def test_a_correction_from_anyone_else_waits_for_a_curator(slack, engine):
    view = await open_modal(slack, user=ALICE)
    await slack.interact(submission_payload(ALICE, view, CORRECTED))

    [example] = examples(engine)
    assert example.status == "pending" and example.approvers == []
    card = await review_card(slack)
    _, approve = message_button(card, "correction_approve")
    assert approve["value"] == str(example.id) and approve["style"] == "primary"
    assert message_button(card, "correction_reject")[1]["style"] == "danger"
    assert CORRECTED in json.dumps(card["blocks"])
    assert f"<#{CURATION}>" in slack.ephemerals(ALICE)[-1]

    # Someone who is not a curator cannot approve it.
    await slack.interact(block_actions(slack, BOB, CURATION, card, "correction_approve"))
    assert "Only curators can approve" in slack.ephemerals(BOB)[-1]
    assert examples(engine)[0].status == "pending"
    assert not [c for c in slack.api.calls_to("chat.update") if c.body["channel"] == CURATION]

    # A curator can; the card then says who did it.
    await slack.interact(block_actions(slack, CURATOR, CURATION, card, "correction_approve"))
    [example] = examples(engine)
    assert example.status == "approved" and example.approvers == [CURATOR]
    update = slack.api.calls_to("chat.update")[-1].body
    assert (update["channel"], update["ts"]) == (CURATION, card["ts"])
    assert not [b for b in update["blocks"] if b["type"] == "actions"]
    assert (
        f"<@{CURATOR}> approved example #{example.id}"
        in update["blocks"][-1]["elements"][0]["text"]
    )

    # A second click (a stale card) changes nothing.
    updates = len(slack.api.calls_to("chat.update"))
    await slack.interact(block_actions(slack, CURATOR, CURATION, card, "correction_reject"))
    assert examples(engine)[0].status == "approved"
    assert len(slack.api.calls_to("chat.update")) == updates
    assert "already approved" in slack.ephemerals(CURATOR)[-1]


async def test_a_curator_can_reject_a_pending_correction(slack, engine):
    view = await open_modal(slack, user=ALICE)
    await slack.interact(submission_payload(ALICE, view, CORRECTED))
    card = await review_card(slack)
    await slack.interact(block_actions(slack, CURATOR, CURATION, card, "correction_reject"))
    assert examples(engine)[0].status == "rejected"
