"""Questions in Slack: answered in the thread, once, by the promoted model, and recorded."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import select

from brandvoice.bot.slack.replies import PLACEHOLDER, fit_to_budget
from brandvoice.inference.tokens import count_chat_tokens
from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction
from brandvoice.trainer.registry import promote_version, register_candidate
from tests.fakes.slack_api import Scripted
from tests.slack.conftest import ALICE, BOB, BOT, CHANNEL, CURATOR, TEAM, harness, make_settings

pytestmark = pytest.mark.anyio


def interactions(engine) -> list[Interaction]:
    with session_scope(engine) as session:
        return list(session.exec(select(Interaction).order_by(Interaction.id)))


async def test_mention_is_answered_with_a_stream_in_its_thread(slack, engine):
    ts = await slack.mention("What are your opening hours?")

    [start] = slack.api.calls_to("chat.startStream")
    assert start.body["thread_ts"] == ts
    assert (start.body["recipient_user_id"], start.body["recipient_team_id"]) == (ALICE, TEAM)
    assert start.body["chunks"] == [{"type": "markdown_text", "text": "Happy"}]
    [stop] = slack.api.calls_to("chat.stopStream")
    reply_ts = start.answer["ts"]
    assert stop.body["ts"] == reply_ts
    reply = slack.last_reply()
    assert reply["text"] == "Happy to help with 'What are your opening hours?'. Cheers, Acme"
    hint, actions = reply["blocks"]
    assert ":white_check_mark:" in hint["elements"][0]["text"]
    assert "Improve this reply" in hint["elements"][0]["text"]
    feedback, improve = actions["elements"]
    assert actions["type"] == "context_actions"
    assert feedback["type"] == "feedback_buttons"
    assert (feedback["positive_button"]["value"], feedback["negative_button"]["value"]) == (
        "+1",
        "-1",
    )
    assert (improve["type"], improve["icon"]) == ("icon_button", "trash")
    assert slack.api.calls_to("chat.postMessage") == []

    [interaction] = interactions(engine)
    assert (interaction.channel, interaction.message_ts, interaction.asker) == (
        CHANNEL,
        reply_ts,
        ALICE,
    )
    assert interaction.reply == reply["text"]
    assert interaction.model_version_id is None
    assert interaction.prompt_messages[0]["role"] == "system"
    assert interaction.prompt_messages[-1] == {
        "role": "user",
        "content": "What are your opening hours?",
    }
    assert reply["metadata"] == {
        "event_type": "brandvoice_reply",
        "event_payload": {"interaction_id": interaction.id, "model_version": "base"},
    }
    assert improve["value"] == str(interaction.id)


async def test_appends_are_buffered_to_respect_slacks_rate_limits(slack):
    slack.model.next_reply = " ".join(f"word{i}" for i in range(30))
    slack.model.piece_delay = 0.05  # 30 pieces over 1.5 s
    await slack.mention("Talk to me")

    appends = slack.api.calls_to("chat.appendStream")
    assert 1 <= len(appends) <= 4  # one every 0.5 s at most, not one per piece
    assert slack.last_reply()["text"] == slack.model.next_reply


async def test_where_streaming_is_refused_a_placeholder_is_updated_instead(slack, engine):
    slack.api.script(
        "chat.startStream", Scripted(body={"ok": False, "error": "channel_type_not_supported"})
    )
    slack.model.next_reply = " ".join(f"word{i}" for i in range(30))
    slack.model.piece_delay = 0.1  # 3 s of writing
    ts = await slack.mention("What are your opening hours?")

    [placeholder] = slack.api.calls_to("chat.postMessage")
    assert placeholder.body["thread_ts"] == ts
    assert placeholder.body["text"] == PLACEHOLDER
    updates = slack.api.calls_to("chat.update")
    assert all(u.body["ts"] == placeholder.answer["ts"] for u in updates)
    assert 2 <= len(updates) <= 5  # partial text about once a second, then the final reply
    final = updates[-1].body
    assert final["text"] == slack.model.next_reply
    section, hint, actions = final["blocks"]
    assert section["text"]["text"] == final["text"]
    assert hint["type"] == "context"
    assert actions["type"] == "context_actions"
    [interaction] = interactions(engine)
    assert interaction.message_ts == placeholder.answer["ts"]
    assert final["metadata"]["event_payload"]["interaction_id"] == interaction.id


async def test_with_streaming_turned_off_the_placeholder_comes_first(slack_api, engine, model):
    settings = make_settings(slack_api, slack_streaming=False)
    async with harness(settings, engine, slack_api, model) as slack:
        await slack.mention("Hi")
        methods = [call.method for call in slack.api.calls if call.method != "auth.test"]
        assert methods[0] == "chat.postMessage"
        assert slack.api.calls_to("chat.startStream") == []
        assert slack.last_reply()["text"] == "Happy to help with 'Hi'. Cheers, Acme"


async def test_the_promoted_version_answers_and_is_recorded(slack, engine):
    with session_scope(engine) as session:
        register_candidate(session, base_model="base")
        version, _ = promote_version(session, "v1", CURATOR)
    await slack.mention("Hi")
    [interaction] = interactions(engine)
    assert interaction.model_version_id == version.id
    reply = slack.last_reply()
    assert reply["metadata"]["event_payload"]["model_version"] == "v1"
    assert "_v1_" in reply["blocks"][0]["elements"][0]["text"]


async def test_thread_context_is_read_and_trimmed_to_the_token_budget(slack, engine, settings):
    root = slack.new_ts()
    slack.api.add_thread_message(CHANNEL, root, user=BOB, text="old " * 2000, ts=root)
    later = slack.new_ts()
    slack.api.add_thread_message(
        CHANNEL, root, user=BOB, text="We launch the new plan on Friday.", ts=later
    )
    answer = slack.new_ts()
    slack.api.add_thread_message(
        CHANNEL, root, user=BOT, bot_id="B0BOT", text="Noted, Friday it is!", ts=answer
    )
    await slack.mention("Can you announce it?", thread_ts=root)

    [replies] = slack.api.calls_to("conversations.replies")
    assert replies.body["ts"] == root
    [conversation] = slack.model.conversations
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user"]
    assert conversation[1]["content"] == "We launch the new plan on Friday."
    assert conversation[-1]["content"] == "Can you announce it?"
    assert count_chat_tokens(conversation) <= settings.context_token_budget
    assert slack.api.calls_to("chat.startStream")[0].body["thread_ts"] == root


def test_the_question_is_kept_even_when_it_alone_exceeds_the_budget():
    turns = [{"role": "user", "content": "earlier"}, {"role": "user", "content": "long " * 500}]
    kept = fit_to_budget("system", turns, budget=50)
    assert kept == [{"role": "system", "content": "system"}, turns[-1]]


async def test_a_long_reply_is_streamed_whole(slack, engine):
    paragraphs = [f"Paragraph {i}: " + "brand voice " * 100 for i in range(7)]
    slack.model.next_reply = "\n\n".join(paragraphs)
    await slack.mention("Tell me everything")

    assert all(call.answer["ok"] for call in slack.api.calls)
    assert slack.last_reply()["text"] == slack.model.next_reply
    [interaction] = interactions(engine)
    assert interaction.reply == slack.model.next_reply.strip()


async def test_a_long_placeholder_reply_is_split_into_messages_slack_accepts(slack, engine):
    slack.api.script("chat.startStream", Scripted(body={"ok": False, "error": "not_allowed"}))
    paragraphs = [f"Paragraph {i}: " + "brand voice " * 100 for i in range(7)]
    slack.model.next_reply = "\n\n".join(paragraphs)
    await slack.mention("Tell me everything")

    update = slack.api.calls_to("chat.update")[-1]
    posts = slack.api.calls_to("chat.postMessage")
    parts = [update.body["text"]] + [p.body["text"] for p in posts[1:]]
    assert len(parts) == 3
    assert all(len(part) <= 3000 for part in parts)
    assert all(call.answer["ok"] for call in slack.api.calls if call.method != "chat.startStream")
    assert " ".join(parts).split() == slack.model.next_reply.split()
    assert all(p.body["thread_ts"] == posts[0].body["thread_ts"] for p in posts)
    [interaction] = interactions(engine)
    assert interaction.reply == slack.model.next_reply.strip()


async def test_one_mention_delivered_as_app_mention_and_message_is_answered_once(slack, engine):
    ts = slack.new_ts()
    text = f"<@{BOT}> hello there"
    base = {"user": ALICE, "text": text, "ts": ts, "channel": CHANNEL, "event_ts": ts}
    await slack.event({"type": "app_mention", **base})
    await slack.event({"type": "message", "channel_type": "channel", **base})
    await slack.settle()
    assert len(slack.api.calls_to("chat.startStream")) == 1
    assert len(interactions(engine)) == 1


async def test_a_retried_event_is_answered_once(slack, engine):
    ts = slack.new_ts()
    event = {
        "type": "app_mention",
        "user": ALICE,
        "text": f"<@{BOT}> ping",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }
    first = await slack.event(event, event_id="Ev0RETRY")
    retry = await slack.event(event, event_id="Ev0RETRY", retry_num=1)
    await slack.settle()
    assert first.status_code == retry.status_code == 200
    assert len(slack.api.calls_to("chat.startStream")) == 1
    assert len(interactions(engine)) == 1


async def test_direct_messages_are_answered(slack, engine):
    ts = slack.new_ts()
    event = {
        "type": "message",
        "channel_type": "im",
        "user": ALICE,
        "text": "Do you ship to Canada?",
        "ts": ts,
        "channel": "D0ALICE",
        "event_ts": ts,
    }
    await slack.event(event)
    await slack.settle()
    [start] = slack.api.calls_to("chat.startStream")
    assert start.body["channel"] == "D0ALICE"
    assert start.body["thread_ts"] == ts
    assert interactions(engine)[0].prompt_messages[-1]["content"] == "Do you ship to Canada?"


@pytest.mark.parametrize(
    "event",
    [
        {"subtype": "message_changed", "message": {"text": "edited"}, "channel_type": "im"},
        {"subtype": "message_deleted", "deleted_ts": "1.2", "channel_type": "im"},
        {"subtype": "bot_message", "bot_id": "B0OTHER", "text": "beep", "channel_type": "im"},
        {"user": "U0OTHER", "bot_id": "B0OTHER", "text": "hi", "channel_type": "im"},
        {"user": ALICE, "text": "chatting without a mention", "channel_type": "channel"},
    ],
    ids=["changed", "deleted", "bot_message", "other_bot", "no_mention"],
)
async def test_edits_deletions_bots_and_chatter_are_ignored(slack, engine, event):
    ts = slack.new_ts()
    await slack.event({"type": "message", "channel": CHANNEL, "ts": ts, "event_ts": ts, **event})
    await slack.settle()
    assert slack.api.calls_to("chat.postMessage") == []
    assert slack.api.calls_to("chat.startStream") == []
    assert interactions(engine) == []


async def test_rate_limited_streaming_is_retried_after_retry_after(slack, engine):
    slack.api.rate_limit_once("chat.startStream", retry_after=0)
    await slack.mention("Busy day?")
    starts = slack.api.calls_to("chat.startStream")
    assert [p.status for p in starts] == [429, 200]
    assert len(slack.api.calls_to("chat.stopStream")) == 1
    assert len(interactions(engine)) == 1


async def test_a_channel_the_bot_is_not_in_logs_how_to_invite_it(slack, engine, caplog):
    slack.api.not_in_channels.add(CHANNEL)
    await slack.mention("Anyone?")
    assert "/invite @brandvoice" in caplog.text
    assert interactions(engine) == []
    assert not any(c.answer["ok"] for c in slack.api.calls if c.method.startswith("chat."))


async def test_a_model_failure_is_told_in_the_thread(slack, engine, caplog):
    slack.model.fail = True
    await slack.mention("Will this work?")
    [post] = slack.api.calls_to("chat.postMessage")
    [update] = slack.api.calls_to("chat.update")
    assert update.body["ts"] == post.answer["ts"]
    assert update.body["text"].startswith("Sorry, I could not write a reply")
    assert interactions(engine) == []
    assert any(
        r.levelno == logging.ERROR and "model failed" in r.getMessage() for r in caplog.records
    )


async def test_a_model_failure_mid_reply_ends_the_stream_with_an_apology(slack, engine):
    slack.model.fail_after = 3
    await slack.mention("Will this work?")
    [stop] = slack.api.calls_to("chat.stopStream")
    text = slack.api.streams[stop.body["ts"]]["text"]
    assert text.startswith("Happy to help\n\nSorry")
    assert text.endswith("Please try again in a moment.")
    assert interactions(engine) == []
