"""Interactions, the votes people cast on them, and how approved replies become examples.

Slack delivers events at least once and sometimes twice (retries, ``app_mention`` plus
``message``), so every write here is idempotent: a vote is unique by its event id and by
(interaction, user, reaction), and work triggered by an event is claimed once per natural key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from brandvoice.store.audit import record_audit
from brandvoice.store.db import insert_skipping_conflicts
from brandvoice.store.examples import (
    DEFAULT_VAL_SHARE,
    NewExample,
    add_examples,
    set_example_status,
)
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.models import (
    Example,
    ExampleSource,
    ExampleStatus,
    FeedbackVote,
    Interaction,
    ProcessedEvent,
    VoteKind,
    utcnow,
)
from brandvoice.store.redact import Redactor

UP_REACTIONS = frozenset({"+1", "thumbsup"})
DOWN_REACTIONS = frozenset({"-1", "thumbsdown"})
EVENT_RETENTION = timedelta(hours=1)
"""How long a processed event is remembered: Slack retries within minutes."""


# --- processed events --------------------------------------------------------------------------


def claim_event(
    session: Session, key: str, *, now: datetime | None = None, keep: timedelta = EVENT_RETENTION
) -> bool:
    """True the first time ``key`` is claimed, in any process; False for every later delivery.

    Claims older than ``keep`` are dropped on the way (one indexed range delete), so the table
    holds about an hour of events without a separate cleanup job.
    """
    now = now or utcnow()
    prune_processed_events(session, before=now - keep)
    statement = (
        insert_skipping_conflicts(session, ProcessedEvent.__table__, ["key"])
        .values(key=key, created_at=now)
        .returning(ProcessedEvent.__table__.c.key)  # type: ignore[attr-defined]
    )
    return session.exec(statement).first() is not None  # type: ignore[call-overload]


def prune_processed_events(session: Session, before: datetime) -> int:
    """Forget events claimed before ``before``; returns how many were removed."""
    statement = delete(ProcessedEvent).where(col(ProcessedEvent.created_at) < before)
    return session.exec(statement).rowcount  # type: ignore[call-overload]


# --- interactions ------------------------------------------------------------------------------


def record_interaction(
    session: Session,
    *,
    channel: str,
    message_ts: str | None,
    prompt_messages: list[dict[str, Any]],
    reply: str,
    thread_ts: str | None = None,
    asker: str | None = None,
    model_version_id: int | None = None,
    latency_ms: int | None = None,
) -> Interaction:
    interaction = Interaction(
        channel=channel,
        thread_ts=thread_ts,
        message_ts=message_ts,
        asker=asker,
        prompt_messages=prompt_messages,
        reply=reply,
        model_version_id=model_version_id,
        latency_ms=latency_ms,
    )
    session.add(interaction)
    session.flush()
    return interaction


def find_interaction(session: Session, channel: str, message_ts: str) -> Interaction | None:
    """The interaction whose reply is the message at (channel, ts), if the bot wrote it."""
    query = select(Interaction).where(
        Interaction.channel == channel, Interaction.message_ts == message_ts
    )
    return session.exec(query).first()


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
    votes = FeedbackVote.__table__  # the table, not the entity: skips the ORM's bulk-insert path
    inserted = session.exec(
        insert_skipping_conflicts(session, votes)  # type: ignore[call-overload]
        .values(
            interaction_id=interaction_id,
            kind=kind.value,
            user=user,
            reaction=reaction,
            event_id=event_id,
            created_at=now,
            event_at=at,
        )
        .returning(votes.c.id)
    ).first()
    if inserted is not None:
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
    if kind is not None:
        votes = FeedbackVote.__table__
        tombstone = session.exec(
            insert_skipping_conflicts(session, votes)  # type: ignore[call-overload]
            .values(
                interaction_id=interaction_id,
                kind=kind.value,
                user=user,
                reaction=reaction,
                created_at=now,
                retracted_at=now,
                event_at=at,
            )
            .returning(votes.c.id)
        ).first()
        if tombstone is not None:
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
    query = (
        select(FeedbackVote.kind, FeedbackVote.user)
        .where(
            FeedbackVote.interaction_id == interaction_id,
            col(FeedbackVote.retracted_at).is_(None),
        )
        .order_by(col(FeedbackVote.created_at), col(FeedbackVote.id))
    )
    by_kind: dict[str, list[str]] = {kind.value: [] for kind in VoteKind}
    for kind, user in session.exec(query):
        users = by_kind[str(kind)]
        if user not in users:
            users.append(user)
    return VoteTally(
        up=by_kind[VoteKind.UP.value],
        down=by_kind[VoteKind.DOWN.value],
        approvers=by_kind[VoteKind.APPROVE.value],
    )


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


# --- examples from interactions ----------------------------------------------------------------


def conversation_with_reply(interaction: Interaction, reply: str) -> list[dict[str, Any]]:
    """The prompt the model saw (system prompt and thread) followed by ``reply``."""
    return [*interaction.prompt_messages, {"role": "assistant", "content": reply}]


def collected_example_id(session: Session, interaction_id: int) -> int | None:
    query = select(Example.id).where(
        Example.interaction_id == interaction_id,
        Example.source == ExampleSource.APPROVED_REPLY,
    )
    return session.exec(query).first()


def collect_if_approved(
    session: Session,
    interaction: Interaction,
    *,
    quorum: int,
    count_tokens: TokenCounter,
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> int | None:
    """Turn an approved reply into an example once; returns the new example's id, else None."""
    assert interaction.id is not None
    if collected_example_id(session, interaction.id) is not None:
        return None
    decision = approval_decision(vote_tally(session, interaction.id), quorum)
    if decision is None:
        return None
    new = NewExample(
        messages=conversation_with_reply(interaction, interaction.reply),
        source=ExampleSource.APPROVED_REPLY,
        status=ExampleStatus.APPROVED,
        approvers=decision.approvers,
        interaction_id=interaction.id,
        created_by=interaction.asker,
        provenance={
            "channel": interaction.channel,
            "message_ts": interaction.message_ts,
            "model_version_id": interaction.model_version_id,
            "approved_by": decision.by,
        },
    )
    result = add_examples(session, [new], count_tokens, redactor, val_share)
    if not result.inserted_ids:
        return None
    example_id = result.inserted_ids[0]
    actor = decision.approvers[0] if decision.by == "curator" else "quorum"
    record_audit(
        session,
        actor,
        "example.approve",
        f"example:{example_id}",
        {"interaction_id": interaction.id, "by": decision.by, "approvers": decision.approvers},
    )
    return example_id


@dataclass(frozen=True)
class CorrectionResult:
    example_id: int | None
    """None when the same conversation is already stored."""
    status: ExampleStatus


def submit_correction(
    session: Session,
    interaction: Interaction,
    corrected_reply: str,
    *,
    user: str,
    approved: bool,
    count_tokens: TokenCounter,
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> CorrectionResult:
    """Store the reply the bot should have given, paired with the one it gave.

    Approved when a curator wrote it, pending review otherwise. The original reply is kept in
    the provenance (``rejected_reply``) so the pair can serve preference training later.
    """
    status = ExampleStatus.APPROVED if approved else ExampleStatus.PENDING
    new = NewExample(
        messages=conversation_with_reply(interaction, corrected_reply.strip()),
        source=ExampleSource.CORRECTION,
        status=status,
        approvers=[user] if approved else [],
        interaction_id=interaction.id,
        created_by=user,
        provenance={
            "rejected_reply": interaction.reply,
            "interaction_id": interaction.id,
            "model_version_id": interaction.model_version_id,
            "channel": interaction.channel,
            "message_ts": interaction.message_ts,
        },
    )
    result = add_examples(session, [new], count_tokens, redactor, val_share)
    example_id = result.inserted_ids[0] if result.inserted_ids else None
    if example_id is not None:
        record_audit(
            session,
            user,
            "example.correction",
            f"example:{example_id}",
            {"interaction_id": interaction.id, "status": status.value},
        )
    return CorrectionResult(example_id, status)


def decide_pending_example(
    session: Session, example_id: int, *, approve: bool, actor: str
) -> tuple[Example, bool]:
    """Approve or reject a pending example; returns (example, changed).

    A decision already taken is left alone, so a second click on the card changes nothing.
    """
    example = session.get(Example, example_id)
    if example is None:
        raise LookupError(
            f"example {example_id} does not exist (deleted since the card was posted?)"
        )
    if example.status != ExampleStatus.PENDING:
        return example, False
    status = ExampleStatus.APPROVED if approve else ExampleStatus.REJECTED
    return set_example_status(session, example_id, status, actor, note="slack"), True
