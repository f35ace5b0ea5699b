"""The store side of feedback, and the pure helpers the listeners call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import select

from brandvoice.bot.slack.auth import CuratorAuth
from brandvoice.bot.slack.blocks import split_message
from brandvoice.bot.slack.client import make_client
from brandvoice.bot.slack.replies import question_from_event
from brandvoice.store.db import alembic_config, make_engine, session_scope, upgrade
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.feedback import claim_event, collect_if_approved, record_interaction
from brandvoice.store.models import Example, ExampleSource, ProcessedEvent, Setting, VoteKind
from brandvoice.store.votes import (
    NewVote,
    VoteTally,
    approval_decision,
    normalize_reaction,
    record_vote,
    record_votes,
    retract_vote,
    vote_kind,
    vote_tally,
)

PROMPT = [{"role": "system", "content": "Be Acme."}, {"role": "user", "content": "Hi"}]


def make_interaction(session, ts: str = "1.1"):
    return record_interaction(
        session, channel="C1", message_ts=ts, prompt_messages=PROMPT, reply="Hello! Cheers, Acme"
    )


@pytest.mark.parametrize(
    ("name", "normalized", "kind"),
    [
        ("+1", "+1", VoteKind.UP),
        ("thumbsup::skin-tone-5", "+1", VoteKind.UP),
        ("-1::skin-tone-2", "-1", VoteKind.DOWN),
        ("thumbsdown", "-1", VoteKind.DOWN),
        ("white_check_mark", "white_check_mark", VoteKind.APPROVE),
        ("heart", "heart", None),
    ],
)
def test_reactions_are_normalized_into_votes(name, normalized, kind):
    assert normalize_reaction(name) == normalized
    assert vote_kind(normalize_reaction(name), "white_check_mark") == kind


def test_a_vote_counts_once_and_again_after_a_retraction(engine):
    with session_scope(engine) as session:
        interaction_id = make_interaction(session).id
    vote = {"interaction_id": interaction_id, "user": "U1", "reaction": "+1", "kind": VoteKind.UP}
    with session_scope(engine) as session:
        assert record_vote(session, **vote, event_id="E1")
        assert not record_vote(session, **vote, event_id="E1")
        assert not record_vote(session, **vote, event_id="E2")
    with session_scope(engine) as session:
        assert retract_vote(session, interaction_id=interaction_id, user="U1", reaction="+1")
        assert not retract_vote(session, interaction_id=interaction_id, user="U1", reaction="+1")
        assert not record_vote(session, **vote, event_id="E1")  # the old add, retried late
        assert vote_tally(session, interaction_id).up == []
        assert record_vote(session, **vote, event_id="E3")
        assert vote_tally(session, interaction_id).up == ["U1"]


def test_a_batch_of_votes_counts_exactly_what_one_by_one_would(engine):
    t = [datetime(2026, 11, 30, 8, 0, second, tzinfo=UTC) for second in range(10)]
    with session_scope(engine) as session:
        first, second = make_interaction(session, "1.1").id, make_interaction(session, "1.2").id
        record_vote(
            session,
            interaction_id=first,
            user="U9",
            reaction="+1",
            kind=VoteKind.UP,
            event_id="E0",
            at=t[0],
        )
        retract_vote(session, interaction_id=first, user="U9", reaction="+1", at=t[1])
        retract_vote(
            session, interaction_id=second, user="U8", reaction="+1", kind=VoteKind.UP, at=t[5]
        )  # a removal ahead of its reaction

    def vote(ts, user, event_id, at, reaction="+1"):
        kind = vote_kind(reaction, "white_check_mark")
        return NewVote("C1", ts, user, reaction, kind, event_id, at)

    batch = [
        vote("1.1", "U1", "E1", t[2]),  # new: counts
        vote("1.1", "U1", "E1", t[2]),  # Slack's retry in the same batch
        vote("1.1", "U2", "E2", t[2], "-1"),  # new thumbs-down: counts
        vote("1.1", "U9", "E3", t[3]),  # re-added after its removal: counts again
        vote("1.2", "U8", "E4", t[4]),  # older than the removal already applied: ignored
        vote("9.9", "U1", "E5", t[2]),  # not a reply
        vote("1.2", "U1", "E0", t[2]),  # an event id already stored
    ]
    with session_scope(engine) as session:
        results = record_votes(session, batch)
    assert [(r.interaction_id, r.counted) for r in results] == [
        (first, True),
        (first, False),
        (first, True),
        (first, True),
        (second, False),
        (None, False),
        (second, False),
    ]
    with session_scope(engine) as session:
        assert vote_tally(session, first) == VoteTally(up=["U1", "U9"], down=["U2"])
        assert vote_tally(session, second) == VoteTally()


def test_approval_by_curator_beats_quorum():
    assert approval_decision(VoteTally(up=["U1"]), quorum=2) is None
    assert approval_decision(VoteTally(up=["U1", "U2"]), quorum=2).by == "quorum"
    decision = approval_decision(VoteTally(up=["U1", "U2"], approvers=["UC"]), quorum=2)
    assert (decision.by, decision.approvers) == ("curator", ["UC"])
    assert approval_decision(VoteTally(up=["U1", "U2"]), quorum=0) is None


def test_an_approved_reply_is_collected_once(engine, count_tokens):
    with session_scope(engine) as session:
        interaction = make_interaction(session)
        for user in ("U1", "U2"):
            record_vote(
                session, interaction_id=interaction.id, user=user, reaction="+1", kind=VoteKind.UP
            )
        first = collect_if_approved(session, interaction, quorum=2, count_tokens=count_tokens)
        again = collect_if_approved(session, interaction, quorum=2, count_tokens=count_tokens)
    assert first is not None and again is None
    with session_scope(engine) as session:
        [example] = session.exec(select(Example)).all()
    assert example.messages[-1] == {"role": "assistant", "content": "Hello! Cheers, Acme"}
    assert example.interaction_id == interaction.id


def test_a_reply_already_in_the_dataset_is_not_duplicated(engine, count_tokens):
    conversation = [*PROMPT, {"role": "assistant", "content": "Hello! Cheers, Acme"}]
    with session_scope(engine) as session:
        add_examples(session, [NewExample(conversation, ExampleSource.IMPORT)], count_tokens)
        interaction = make_interaction(session)
        record_vote(
            session, interaction_id=interaction.id, user="UC", reaction="ok", kind=VoteKind.APPROVE
        )
        assert (
            collect_if_approved(session, interaction, quorum=2, count_tokens=count_tokens) is None
        )
        assert len(session.exec(select(Example)).all()) == 1


def test_events_are_claimed_once_in_their_own_table(engine):
    with session_scope(engine) as session:
        assert claim_event(session, "reply:C1:1.1")
        assert not claim_event(session, "reply:C1:1.1")
        assert claim_event(session, "reply:C1:1.2")
    with session_scope(engine) as session:
        assert sorted(session.exec(select(ProcessedEvent.key))) == ["reply:C1:1.1", "reply:C1:1.2"]
        assert session.exec(select(Setting)).all() == []


def test_claims_older_than_an_hour_are_forgotten_when_the_next_event_is_claimed(engine):
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        assert claim_event(session, "reply:C1:1.1", now=start)
        assert claim_event(session, "reply:C1:1.2", now=start + timedelta(minutes=30))
    with session_scope(engine) as session:
        assert not claim_event(session, "reply:C1:1.1", now=start + timedelta(minutes=59))
        assert claim_event(session, "reply:C1:1.3", now=start + timedelta(minutes=61))
    with session_scope(engine) as session:
        assert sorted(session.exec(select(ProcessedEvent.key))) == ["reply:C1:1.2", "reply:C1:1.3"]


def test_the_migration_moves_old_claims_out_of_the_settings_table(database_url):
    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO setting (key, value, updated_by, updated_at) VALUES (:k, NULL, 'slack', :t)"
            ),
            [
                {"k": "event-claim:reply:C1:1.1", "t": datetime(2026, 11, 30, 8, 0)},
                {"k": "retrain_schedule", "t": datetime(2026, 11, 30, 8, 0)},
            ],
        )
    upgrade(engine)
    with session_scope(engine) as session:
        assert session.exec(select(ProcessedEvent.key)).all() == ["reply:C1:1.1"]
        assert session.exec(select(Setting.key)).all() == ["retrain_schedule"]
    engine.dispose()


def test_questions_come_from_mentions_and_dms_only():
    mention = {
        "type": "app_mention",
        "user": "U1",
        "text": "<@UBOT> hi <@U2>",
        "ts": "5.0",
        "channel": "C1",
    }
    question = question_from_event(mention, "UBOT")
    assert (question.text, question.reply_thread_ts, question.in_thread) == (
        "hi <@U2>",
        "5.0",
        False,
    )
    in_thread = question_from_event({**mention, "thread_ts": "4.0"}, "UBOT")
    assert (in_thread.reply_thread_ts, in_thread.in_thread) == ("4.0", True)
    assert question_from_event({**mention, "text": "<@UBOT>"}, "UBOT") is None
    dm = {
        "type": "message",
        "channel_type": "im",
        "user": "U1",
        "text": "hi",
        "ts": "6.0",
        "channel": "D1",
    }
    assert question_from_event(dm, "UBOT").text == "hi"
    assert question_from_event({**dm, "user": "UBOT"}, "UBOT") is None


def test_split_message_prefers_paragraphs_and_never_exceeds_the_limit():
    assert split_message("short") == ["short"]
    text = "a" * 40 + "\n\n" + "b" * 40
    assert split_message(text, limit=50) == ["a" * 40, "b" * 40]
    assert split_message("x" * 120, limit=50) == ["x" * 50, "x" * 50, "x" * 20]


@pytest.mark.anyio
async def test_the_curator_group_is_cached_and_survives_slack_failures(slack_api):
    slack_api.usergroups["S1"] = ["U2"]
    now = [0.0]
    auth = CuratorAuth(make_client("xoxb-1", slack_api.api_url), ["U1"], "S1", 60, lambda: now[0])
    assert await auth.is_curator("U1") and await auth.is_curator("U2")
    assert not await auth.is_curator("U3")
    assert len(slack_api.calls_to("usergroups.users.list")) == 1
    now[0] = 61.0
    slack_api.usergroups.pop("S1")  # Slack now answers no_such_subteam
    assert await auth.is_curator("U2")  # the last known members still count
    assert len(slack_api.calls_to("usergroups.users.list")) == 2
