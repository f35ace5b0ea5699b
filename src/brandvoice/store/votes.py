"""Votes: reactions on the bot's replies, counted once whatever order and however often Slack
delivers them, and the tally that decides approval.

Each vote is a last-writer-wins register per (reply, user, reaction), ordered by Slack's event time:
a retried event, a second delivery, or an add older than a removal already applied changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, tuple_, update
from sqlmodel import Session, col, select

from brandvoice.store.db import insert_skipping_conflicts
from brandvoice.store.models import FeedbackVote, Interaction, VoteKind, utcnow

UP_REACTIONS = frozenset({"+1", "thumbsup"})
DOWN_REACTIONS = frozenset({"-1", "thumbsdown"})


# --- votes -------------------------------------------------------------------------------------


def normalize_reaction(name: str) -> str:
    """``thumbsup::skin-tone-3`` -> ``+1``: skin tones stripped, aliases folded."""
    base = name.split("::", 1)[0]
    if base in UP_REACTIONS:
        return "+1"
    if base in DOWN_REACTIONS:
        return "-1"
    return base


def vote_kind(reaction: str, approval_reaction: str) -> VoteKind | None:
    """What a (normalized) reaction means, or None when it is not a vote."""
    if reaction == normalize_reaction(approval_reaction):
        return VoteKind.APPROVE
    if reaction == "+1":
        return VoteKind.UP
    if reaction == "-1":
        return VoteKind.DOWN
    return None


def record_vote(
    session: Session,
    *,
    interaction_id: int,
    user: str,
    reaction: str,
    kind: VoteKind,
    event_id: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Count a reaction added at ``at`` (Slack's event time); True only when it changed the tally.

    A retried event (same ``event_id``) and a second delivery of the same reaction are no-ops; a
    reaction removed and added again counts again; a reaction older than a removal already
    applied (Slack delivered them out of order) changes nothing.
    """
    now = utcnow()
    at = at or now
    inserted = _insert_vote(
        session,
        interaction_id=interaction_id,
        kind=kind.value,
        user=user,
        reaction=reaction,
        event_id=event_id,
        created_at=now,
        event_at=at,
    )
    if inserted:
        return True
    if event_id is not None:
        seen = select(FeedbackVote.id).where(FeedbackVote.event_id == event_id)
        if session.exec(seen).first() is not None:
            return False
    same_vote = _same_vote_before(interaction_id, user, reaction, at)
    restored = session.exec(
        update(FeedbackVote)  # type: ignore[call-overload]
        .where(*same_vote, col(FeedbackVote.retracted_at).is_not(None))
        .values(retracted_at=None, event_id=event_id, kind=kind.value, created_at=now, event_at=at)
    )
    if restored.rowcount == 1:
        return True
    # Still counted: remember this later add, so a removal older than it cannot retract it.
    session.exec(update(FeedbackVote).where(*same_vote).values(event_at=at))  # type: ignore[call-overload]
    return False


def retract_vote(
    session: Session,
    *,
    interaction_id: int,
    user: str,
    reaction: str,
    kind: VoteKind | None = None,
    at: datetime | None = None,
) -> bool:
    """Withdraw a reaction removed at ``at`` (``reaction_removed``); True when a counted vote was
    withdrawn.

    A removal that arrives before its reaction leaves a tombstone (a withdrawn vote with the
    removal's time), so the late reaction, being older, is not counted.
    """
    now = utcnow()
    at = at or now
    same_vote = _same_vote_before(interaction_id, user, reaction, at)
    result = session.exec(
        update(FeedbackVote)  # type: ignore[call-overload]
        .where(*same_vote, col(FeedbackVote.retracted_at).is_(None))
        .values(retracted_at=now, event_at=at)
    )
    if result.rowcount == 1:
        return True
    if kind is not None and _insert_vote(
        session,
        interaction_id=interaction_id,
        kind=kind.value,
        user=user,
        reaction=reaction,
        created_at=now,
        retracted_at=now,
        event_at=at,
    ):
        return False
    session.exec(  # already withdrawn: keep the latest removal's time
        update(FeedbackVote)  # type: ignore[call-overload]
        .where(*same_vote, col(FeedbackVote.retracted_at).is_not(None))
        .values(event_at=at)
    )
    return False


def _same_vote_before(interaction_id: int, user: str, reaction: str, at: datetime) -> list[Any]:
    """This user's reaction on this reply, last added or removed before ``at`` (or undated)."""
    return [
        FeedbackVote.interaction_id == interaction_id,
        FeedbackVote.user == user,
        FeedbackVote.reaction == reaction,
        or_(col(FeedbackVote.event_at).is_(None), col(FeedbackVote.event_at) < at),
    ]


@dataclass(frozen=True)
class VoteTally:
    up: list[str] = field(default_factory=list)
    """Distinct users with a counted thumbs-up, in vote order."""
    down: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    """Curators who approved with the approval reaction."""


def vote_tally(session: Session, interaction_id: int) -> VoteTally:
    return vote_tallies(session, {interaction_id})[interaction_id]


def vote_tallies(session: Session, interaction_ids: set[int]) -> dict[int, VoteTally]:
    """The counted votes on each reply, in one query."""
    tallies = {i: VoteTally() for i in interaction_ids}
    if not interaction_ids:
        return tallies
    query = (
        select(FeedbackVote.interaction_id, FeedbackVote.kind, FeedbackVote.user)
        .where(
            col(FeedbackVote.interaction_id).in_(sorted(interaction_ids)),
            col(FeedbackVote.retracted_at).is_(None),
        )
        .order_by(col(FeedbackVote.created_at), col(FeedbackVote.id))
    )
    for interaction_id, kind, user in session.exec(query):
        tally = tallies[interaction_id]
        users = {"up": tally.up, "down": tally.down, "approve": tally.approvers}[str(kind)]
        if user not in users:
            users.append(user)
    return tallies


@dataclass(frozen=True)
class Approval:
    by: str
    """``curator`` or ``quorum``."""
    approvers: list[str]


def approval_decision(tally: VoteTally, quorum: int) -> Approval | None:
    """A curator's approval wins; otherwise ``quorum`` distinct thumbs-ups approve."""
    if tally.approvers:
        return Approval("curator", list(tally.approvers))
    if quorum > 0 and len(tally.up) >= quorum:
        return Approval("quorum", list(tally.up))
    return None


# --- many votes at once ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewVote:
    """A reaction added on the message at (channel, message_ts), at Slack's time ``at``."""

    channel: str
    message_ts: str
    user: str
    reaction: str
    kind: VoteKind
    event_id: str | None
    at: datetime


@dataclass(frozen=True)
class VoteResult:
    interaction_id: int | None
    """None when the message is not one of the bot's replies."""
    counted: bool


def record_votes(session: Session, votes: Sequence[NewVote]) -> list[VoteResult]:
    """Count many reactions in a few statements, with the same outcome as :func:`record_vote`
    applied to each in turn.

    One query finds the replies, one multi-row insert counts every first vote; only votes that
    collide with a stored one (Slack's retries, re-added reactions) take the one-by-one path.
    """
    replies = _reply_ids(session, {(v.channel, v.message_ts) for v in votes})
    now = utcnow()
    rows = [
        {
            "interaction_id": replies[(v.channel, v.message_ts)],
            "kind": v.kind.value,
            "user": v.user,
            "reaction": v.reaction,
            "event_id": v.event_id,
            "created_at": now,
            "event_at": v.at,
        }
        for v in votes
        if (v.channel, v.message_ts) in replies
    ]
    inserted: set[tuple[int, str, str]] = set()
    if rows:
        table = FeedbackVote.__table__
        statement = (
            insert_skipping_conflicts(session, table)
            .values(rows)
            .returning(table.c.interaction_id, table.c.user, table.c.reaction)  # type: ignore[attr-defined]
        )
        inserted = {tuple(row) for row in session.exec(statement)}  # type: ignore[call-overload,misc]
    collided = [
        v.event_id
        for v in votes
        if v.event_id and (v.channel, v.message_ts) in replies and _key(replies, v) not in inserted
    ]
    seen = _stored_event_ids(session, collided)
    results: list[VoteResult] = []
    for vote in votes:
        interaction_id = replies.get((vote.channel, vote.message_ts))
        if interaction_id is None:
            results.append(VoteResult(None, False))
        elif _key(replies, vote) in inserted:
            inserted.discard(_key(replies, vote))  # a second vote with the same key collided
            results.append(VoteResult(interaction_id, True))
        elif vote.event_id in seen:
            results.append(VoteResult(interaction_id, False))
        else:
            counted = record_vote(
                session,
                interaction_id=interaction_id,
                user=vote.user,
                reaction=vote.reaction,
                kind=vote.kind,
                event_id=vote.event_id,
                at=vote.at,
            )
            results.append(VoteResult(interaction_id, counted))
    return results


def _key(replies: dict[tuple[str, str], int], vote: NewVote) -> tuple[int, str, str]:
    return replies[(vote.channel, vote.message_ts)], vote.user, vote.reaction


def _reply_ids(session: Session, messages: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The interaction id of each (channel, ts) that is a bot reply."""
    if not messages:
        return {}
    query = select(Interaction.id, Interaction.channel, Interaction.message_ts).where(
        tuple_(col(Interaction.channel), col(Interaction.message_ts)).in_(sorted(messages))
    )
    return {(channel, ts): id_ for id_, channel, ts in session.exec(query) if id_ is not None}


def _stored_event_ids(session: Session, event_ids: list[str | None]) -> set[str]:
    wanted = {e for e in event_ids if e}
    if not wanted:
        return set()
    query = select(FeedbackVote.event_id).where(col(FeedbackVote.event_id).in_(sorted(wanted)))
    return {e for e in session.exec(query) if e}


def _insert_vote(session: Session, **values: Any) -> bool:
    """Insert one vote row unless its natural key or event id is taken; True when inserted.

    Through the table, not the entity: that skips the ORM's bulk-insert path.
    """
    votes = FeedbackVote.__table__
    statement = insert_skipping_conflicts(session, votes).values(**values).returning(votes.c.id)  # type: ignore[call-overload]
    return session.exec(statement).first() is not None
