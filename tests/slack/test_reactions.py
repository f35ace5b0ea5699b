"""Reactions on the bot's replies: votes, approval by a curator or a quorum, retraction."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.models import AuditLog, Example, ExampleSource, FeedbackVote
from tests.slack.conftest import ALICE, BOB, CAROL, CHANNEL, CURATOR, GROUP_MEMBER

pytestmark = pytest.mark.anyio


async def ask(slack, text: str = "Write a welcome note") -> str:
    """Ask the bot something; returns the ts of its reply."""
    await slack.mention(text)
    return str(slack.last_reply()["ts"])


def examples(engine) -> list[Example]:
    with session_scope(engine) as session:
        return list(session.exec(select(Example).order_by(Example.id)))


def votes(engine) -> list[FeedbackVote]:
    with session_scope(engine) as session:
        return list(session.exec(select(FeedbackVote).order_by(FeedbackVote.id)))


def collected_marks(slack) -> list[dict]:
    return [call.body for call in slack.api.calls_to("reactions.add")]


async def test_a_curators_approval_turns_the_reply_into_a_redacted_example(slack, engine):
    slack.model.next_reply = "Welcome aboard! Questions go to help@acme.example. Cheers, Acme"
    reply_ts = await ask(slack)
    await slack.react("white_check_mark", reply_ts, user=CURATOR)

    [example] = examples(engine)
    assert example.source == ExampleSource.APPROVED_REPLY
    assert example.status == "approved"
    assert example.approvers == [CURATOR]
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant"]
    assert example.messages[1]["content"] == "Write a welcome note"
    assert example.messages[2]["content"] == "Welcome aboard! Questions go to <EMAIL>. Cheers, Acme"
    assert example.redactions == {"EMAIL": 1}
    assert collected_marks(slack) == [
        {"channel": CHANNEL, "timestamp": reply_ts, "name": "inbox_tray"}
    ]
    with session_scope(engine) as session:
        audit = session.exec(select(AuditLog).where(AuditLog.action == "example.approve")).one()
    assert (audit.actor, audit.target) == (CURATOR, f"example:{example.id}")


async def test_the_approval_reaction_from_someone_else_is_refused(slack, engine):
    reply_ts = await ask(slack)
    await slack.react("white_check_mark", reply_ts, user=ALICE)
    assert examples(engine) == []
    assert votes(engine) == []
    [refusal] = slack.ephemerals(ALICE)
    assert "Only curators can approve" in refusal
    assert f"<@{CURATOR}>" in refusal


async def test_members_of_the_curator_group_approve_and_the_group_is_fetched_once(slack, engine):
    first = await ask(slack, "first")
    second = await ask(slack, "second")
    await slack.react("white_check_mark", first, user=GROUP_MEMBER)
    await slack.react("white_check_mark", second, user=GROUP_MEMBER)
    assert len(examples(engine)) == 2
    assert len(slack.api.calls_to("usergroups.users.list")) == 1


async def test_a_quorum_of_distinct_thumbs_ups_approves(slack, engine):
    reply_ts = await ask(slack)
    await slack.react("+1::skin-tone-4", reply_ts, user=ALICE)
    await slack.react("thumbsup", reply_ts, user=ALICE)  # the same vote under its other name
    assert examples(engine) == []
    await slack.react("thumbsup::skin-tone-2", reply_ts, user=BOB)

    [example] = examples(engine)
    assert example.approvers == [ALICE, BOB]
    assert example.provenance["approved_by"] == "quorum"
    assert [(v.user, v.reaction, v.kind) for v in votes(engine)] == [
        (ALICE, "+1", "up"),
        (BOB, "+1", "up"),
    ]
    assert len(collected_marks(slack)) == 1


async def test_a_retried_or_doubly_delivered_reaction_counts_once(slack, engine):
    reply_ts = await ask(slack)
    first = await slack.react("+1", reply_ts, user=ALICE, event_id="Ev0VOTE1")
    retry = await slack.react("+1", reply_ts, user=ALICE, event_id="Ev0VOTE1", retry_num=1)
    await slack.react("+1", reply_ts, user=ALICE, event_id="Ev0VOTE2")
    assert first.status_code == retry.status_code == 200
    assert len(votes(engine)) == 1
    assert examples(engine) == []


async def test_removing_a_reaction_retracts_the_vote(slack, engine):
    reply_ts = await ask(slack)
    await slack.react("+1", reply_ts, user=ALICE)
    await slack.react("+1", reply_ts, user=ALICE, removed=True)
    await slack.react("+1", reply_ts, user=BOB)
    assert examples(engine) == []
    [alice, bob] = votes(engine)
    assert alice.retracted_at is not None and bob.retracted_at is None

    await slack.react("+1", reply_ts, user=ALICE)  # changed her mind again: counts again
    assert len(examples(engine)) == 1


async def test_thumbs_down_is_recorded_but_never_approves(slack, engine):
    reply_ts = await ask(slack)
    for user in (ALICE, BOB, CAROL):
        await slack.react("-1", reply_ts, user=user)
    assert [v.kind for v in votes(engine)] == ["down"] * 3
    assert examples(engine) == []


async def test_reactions_on_other_messages_and_other_emoji_are_ignored(slack, engine):
    reply_ts = await ask(slack)
    question_ts = slack.api.calls_to("chat.startStream")[0].body["thread_ts"]
    await slack.react("white_check_mark", question_ts, user=CURATOR)
    await slack.react("+1", "1600000000.000001", user=ALICE)
    await slack.react("tada", reply_ts, user=ALICE)
    assert votes(engine) == []
    assert examples(engine) == []
    assert slack.ephemerals() == []


async def test_a_refusal_is_posted_once_however_often_slack_retries(slack, engine):
    reply_ts = await ask(slack)
    for retry_num in (None, 1, 2):
        response = await slack.react(
            "white_check_mark", reply_ts, user=ALICE, event_id="Ev0REFUSE", retry_num=retry_num
        )
        assert response.status_code == 200
    assert len(slack.ephemerals(ALICE)) == 1
    await slack.react("white_check_mark", reply_ts, user=ALICE, event_id="Ev0AGAIN")
    assert len(slack.ephemerals(ALICE)) == 2  # a new attempt is a new event: told again
    assert examples(engine) == []


async def test_a_removal_delivered_before_its_reaction_leaves_no_vote(slack, engine):
    reply_ts = await ask(slack)
    added, removed = "1700000100.000100", "1700000105.000100"
    await slack.react("+1", reply_ts, user=ALICE, removed=True, event_ts=removed)
    await slack.react("+1", reply_ts, user=ALICE, event_ts=added)
    await slack.react("+1", reply_ts, user=BOB)
    assert examples(engine) == []
    assert [(v.user, v.retracted_at is None) for v in votes(engine)] == [
        (ALICE, False),
        (BOB, True),
    ]

    await slack.react("+1", reply_ts, user=ALICE, event_ts="1700000110.000100")
    assert len(examples(engine)) == 1  # added again after the removal: counts


async def test_an_older_removal_delivered_late_does_not_retract_a_newer_reaction(slack, engine):
    reply_ts = await ask(slack)
    await slack.react("+1", reply_ts, user=ALICE, event_ts="1700000100.000100")
    await slack.react("+1", reply_ts, user=ALICE, event_ts="1700000110.000100")  # re-added
    await slack.react("+1", reply_ts, user=ALICE, removed=True, event_ts="1700000105.000100")
    await slack.react("+1", reply_ts, user=BOB)
    assert len(examples(engine)) == 1
    assert all(v.retracted_at is None for v in votes(engine))


async def test_a_curators_approval_removed_before_it_arrives_approves_nothing(slack, engine):
    reply_ts = await ask(slack)
    await slack.react(
        "white_check_mark", reply_ts, user=CURATOR, removed=True, event_ts="1700000105.000100"
    )
    await slack.react("white_check_mark", reply_ts, user=CURATOR, event_ts="1700000100.000100")
    assert examples(engine) == []
    assert collected_marks(slack) == []


async def test_a_burst_of_reactions_and_retries_is_counted_exactly_once(slack, engine):
    first, second = await ask(slack, "first"), await ask(slack, "second")
    users = [f"U0FAN{n:03d}" for n in range(40)]
    sends = [
        slack.event(
            {
                "type": "reaction_added",
                "user": user,
                "reaction": "+1",
                "item": {"type": "message", "channel": CHANNEL, "ts": ts},
                "event_ts": f"{time.time():.6f}",
            },
            event_id=f"Ev0BURST{ts[-10:]}{user}",
            retry_num=retry,
        )
        for user in users
        for ts in (first, second)
        for retry in (None, 1)
    ]
    responses = await asyncio.gather(*sends)
    await slack.settle()
    assert {r.status_code for r in responses} == {200}
    assert len(votes(engine)) == 80
    assert len(examples(engine)) == 2
    assert len(collected_marks(slack)) == 2
