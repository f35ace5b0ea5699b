"""Assistant threads (Slack's AI app split view) through Bolt's Assistant middleware: a greeting
and suggested prompts when a thread starts, answers with a loading status, a title from the first
request. Events are shaped like Slack's ``assistant_thread_started`` and ``message.im``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.models import ExampleSource, ExampleStatus, Interaction
from tests.slack.conftest import ALICE, CHANNEL, TEAM, harness, make_settings

pytestmark = pytest.mark.anyio
DM = "D0ALICE"
THREAD = "1729999327.187299"


def thread_started() -> dict[str, Any]:
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": ALICE,
            "context": {"channel_id": CHANNEL, "team_id": TEAM, "enterprise_id": None},
            "channel_id": DM,
            "thread_ts": THREAD,
        },
        "event_ts": "1729999327.187400",
    }


def thread_message(slack, text: str, ts: str | None = None) -> dict[str, Any]:
    ts = ts or slack.new_ts()
    return {
        "type": "message",
        "user": ALICE,
        "text": text,
        "team": TEAM,
        "ts": ts,
        "thread_ts": THREAD,
        "parent_user_id": ALICE,
        "channel": DM,
        "event_ts": ts,
        "channel_type": "im",
    }


def approve(engine, *questions: str, source: ExampleSource = ExampleSource.APPROVED_REPLY) -> None:
    examples = [
        NewExample(
            [{"role": "user", "content": q}, {"role": "assistant", "content": "Sure! Cheers"}],
            source,
            ExampleStatus.APPROVED,
        )
        for q in questions
    ]
    with session_scope(engine) as session:
        add_examples(session, examples, count_chat_tokens_batch)


async def test_a_new_thread_is_greeted_with_the_teams_approved_requests_as_prompts(slack, engine):
    approve(engine, "How do I reset my password?", "Write a welcome note")
    approve(engine, "A synthetic variation", source=ExampleSource.SYNTHETIC)
    response = await slack.event(thread_started())
    await slack.settle()

    assert response.status_code == 200
    [greeting] = slack.api.calls_to("chat.postMessage")
    assert (greeting.body["channel"], greeting.body["thread_ts"]) == (DM, THREAD)
    assert greeting.body["text"] == "Hi! Ask me anything and I'll answer in the team's voice."
    [prompts] = slack.api.calls_to("assistant.threads.setSuggestedPrompts")
    assert prompts.answer["ok"]
    assert (prompts.body["channel_id"], prompts.body["thread_ts"]) == (DM, THREAD)
    assert {p["message"] for p in prompts.body["prompts"]} == {
        "How do I reset my password?",
        "Write a welcome note",
    }


async def test_configured_prompts_win_and_no_prompts_means_none_are_set(slack_api, engine, model):
    settings = make_settings(slack_api, assistant_prompts="Draft a launch post | Say hi")
    async with harness(settings, engine, slack_api, model) as slack:
        await slack.event(thread_started())
        await slack.settle()
        [prompts] = slack.api.calls_to("assistant.threads.setSuggestedPrompts")
        assert [p["message"] for p in prompts.body["prompts"]] == ["Draft a launch post", "Say hi"]

    slack_api.calls.clear()
    async with harness(make_settings(slack_api), engine, slack_api, model) as slack:
        await slack.event(thread_started())
        await slack.settle()
        assert slack.api.calls_to("assistant.threads.setSuggestedPrompts") == []
        assert len(slack.api.calls_to("chat.postMessage")) == 1


async def test_a_message_in_the_thread_is_answered_with_a_status_and_titles_the_thread(
    slack, engine
):
    first_question = thread_message(slack, "How do I  reset my password?")
    slack.api.add_thread_message(
        DM, THREAD, user=ALICE, text=first_question["text"], ts=first_question["ts"]
    )
    await slack.event(first_question)
    await slack.settle()

    first, cleared = slack.api.statuses
    assert (first["channel_id"], first["thread_ts"]) == (DM, THREAD)
    assert first["status"] and first["loading_messages"]
    assert cleared["status"] == ""
    statuses = [c for c in slack.api.calls if c.method == "assistant.threads.setStatus"]
    [start] = slack.api.calls_to("chat.startStream")
    assert slack.api.calls.index(statuses[0]) < slack.api.calls.index(start)
    assert (start.body["channel"], start.body["thread_ts"]) == (DM, THREAD)
    assert slack.last_reply()["text"] == (
        "Happy to help with 'How do I  reset my password?'. Cheers, Acme"
    )
    assert slack.api.titles == {(DM, THREAD): "How do I reset my password?"}

    # Later than the bot's reply in the thread (the fake Slack's ts run ahead of the test's).
    await slack.event(thread_message(slack, "And my username?", ts="1800000001.000100"))
    await slack.settle()
    assert len(slack.api.calls_to("assistant.threads.setTitle")) == 1
    assert len(slack.api.calls_to("chat.stopStream")) == 2
    with session_scope(engine) as session:
        asked = [i.prompt_messages[-1]["content"] for i in session.exec(select(Interaction))]
    assert asked == ["How do I  reset my password?", "And my username?"]
    # The second question carries the first exchange as context.
    assert [m["role"] for m in slack.model.conversations[-1]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]


async def test_a_message_delivered_twice_is_answered_once(slack, engine):
    event = thread_message(slack, "Ping?")
    await slack.event(event, event_id="Ev0ASSIST")
    await slack.event(event, event_id="Ev0ASSIST", retry_num=1)
    await slack.settle()
    assert len(slack.api.calls_to("chat.startStream")) == 1
