"""Interactions, the votes people cast on them, and how approved replies become examples.

Slack delivers events at least once and sometimes twice (retries, ``app_mention`` plus
``message``), so every write here is idempotent: a vote is unique by its event id and by
(interaction, user, reaction), and work triggered by an event is claimed once per natural key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from brandvoice.store.audit import record_audit
from brandvoice.store.db import insert_skipping_conflicts
from brandvoice.store.examples import (
    DEFAULT_VAL_SHARE,
    NewExample,
    add_examples,
    content_hash,
    set_example_status,
)
from brandvoice.store.jsonl import TokenCounter, last_request
from brandvoice.store.models import (
    Example,
    ExampleSource,
    ExampleStatus,
    Interaction,
    ProcessedEvent,
    utcnow,
)
from brandvoice.store.preferences import add_correction_pair
from brandvoice.store.redact import Redactor
from brandvoice.store.votes import Approval, approval_decision, vote_tallies

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
    retrieved: list[dict[str, Any]] | None = None,
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
        retrieved=retrieved or None,
    )
    session.add(interaction)
    session.flush()
    return interaction


def served_requests(
    session: Session, limit: int, redactor: Redactor | None = None, scan: int = 1000
) -> list[list[dict[str, Any]]]:
    """The prompts (redacted) of up to ``limit`` recent replies whose request no example holds,
    newest first and one per request: held-out traffic on which a candidate can be checked
    without a reference reply. Only the newest ``scan`` interactions are looked at."""
    if limit <= 0:
        return []
    redactor = redactor or Redactor()
    taught = {last_request(messages) for messages in session.exec(select(Example.messages))}
    newest = (
        select(Interaction.prompt_messages)
        .order_by(col(Interaction.created_at).desc(), col(Interaction.id).desc())
        .limit(scan)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for prompt in session.exec(newest):
        redacted, _ = redactor.redact_messages(prompt)
        request = last_request(redacted)
        if request is not None and request not in taught and request not in found:
            found[request] = redacted
            if len(found) == limit:
                break
    return list(found.values())


def find_interaction(session: Session, channel: str, message_ts: str) -> Interaction | None:
    """The interaction whose reply is the message at (channel, ts), if the bot wrote it."""
    query = select(Interaction).where(
        Interaction.channel == channel, Interaction.message_ts == message_ts
    )
    return session.exec(query).first()


# --- examples from interactions ----------------------------------------------------------------


def conversation_with_reply(interaction: Interaction, reply: str) -> list[dict[str, Any]]:
    """The prompt the model saw (system prompt and thread) followed by ``reply``."""
    return [*interaction.prompt_messages, {"role": "assistant", "content": reply}]


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
    collected = collect_approved_replies(
        session,
        {interaction.id},
        quorum=quorum,
        count_tokens=count_tokens,
        redactor=redactor,
        val_share=val_share,
    )
    return collected.get(interaction.id)


def collect_approved_replies(
    session: Session,
    interaction_ids: set[int],
    *,
    quorum: int,
    count_tokens: TokenCounter,
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> dict[int, int]:
    """Collect every reply among ``interaction_ids`` that is approved and not yet collected.

    A fixed number of statements for any number of replies (which are collected, their tallies,
    the replies, one insert), so a batch of votes costs little more than one vote. Returns
    {interaction id: new example id}.
    """
    if not interaction_ids:
        return {}
    collected = session.exec(
        select(Example.interaction_id).where(
            col(Example.interaction_id).in_(sorted(interaction_ids)),
            Example.source == ExampleSource.APPROVED_REPLY,
        )
    )
    pending = interaction_ids - set(collected)
    tallies = vote_tallies(session, pending)
    decisions = {
        interaction_id: decision
        for interaction_id in sorted(pending)
        if (decision := approval_decision(tallies[interaction_id], quorum)) is not None
    }
    if not decisions:
        return {}
    interactions = session.exec(
        select(Interaction).where(col(Interaction.id).in_(sorted(decisions)))
    ).all()
    new = [approved_reply_example(i, decisions[i.id]) for i in interactions if i.id is not None]
    result = add_examples(session, new, count_tokens, redactor, val_share)
    if not result.inserted_ids:
        return {}
    inserted = session.exec(
        select(Example.interaction_id, Example.id).where(col(Example.id).in_(result.inserted_ids))
    )
    examples = {interaction_id: example_id for interaction_id, example_id in inserted}
    for interaction_id, example_id in sorted(examples.items()):
        decision = decisions[interaction_id]
        record_audit(
            session,
            decision.approvers[0] if decision.by == "curator" else "quorum",
            "example.approve",
            f"example:{example_id}",
            {"interaction_id": interaction_id, "by": decision.by, "approvers": decision.approvers},
        )
    return examples


def approved_reply_example(interaction: Interaction, decision: Approval) -> NewExample:
    """The example an approved reply becomes: the conversation, who approved it, and where from."""
    return NewExample(
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


@dataclass(frozen=True)
class CorrectionResult:
    example_id: int | None
    """None when the same conversation is already stored."""
    status: ExampleStatus
    pair_id: int | None = None
    """The preference pair (corrected reply over the bot's), None when already stored."""


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
    the provenance (``rejected_reply``), and the pair (corrected over original) is stored in the
    same transaction for preference training, which uses it once the example is approved.
    """
    status = ExampleStatus.APPROVED if approved else ExampleStatus.PENDING
    corrected = corrected_reply.strip()
    new = NewExample(
        messages=conversation_with_reply(interaction, corrected),
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
    pair_id = add_correction_pair(
        session,
        interaction,
        corrected,
        example_id=example_id or _stored_example_id(session, new.messages, redactor),
        corrected_by=user,
        redactor=redactor,
        val_share=val_share,
    )
    if example_id is not None:
        record_audit(
            session,
            user,
            "example.correction",
            f"example:{example_id}",
            {"interaction_id": interaction.id, "status": status.value, "pair_id": pair_id},
        )
    return CorrectionResult(example_id, status, pair_id)


def _stored_example_id(
    session: Session, messages: list[dict[str, Any]], redactor: Redactor | None
) -> int:
    """The id of the stored example with the same content as ``messages`` once redacted."""
    redacted, _ = (redactor or Redactor()).redact_messages(messages)
    query = select(Example.id).where(Example.content_hash == content_hash(redacted))
    found = session.exec(query).first()
    if found is None:
        raise LookupError("the correction was neither stored nor found as a duplicate")
    return found


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
