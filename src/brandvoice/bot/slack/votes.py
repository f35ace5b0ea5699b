"""Reactions on the bot's replies: votes (written in batches), curator approval, quorum,
retraction."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from brandvoice.bot.slack.client import add_reaction, post_ephemeral
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.store.feedback import claim_event, collect_approved_replies, find_interaction
from brandvoice.store.models import VoteKind, utcnow
from brandvoice.store.votes import (
    NewVote,
    normalize_reaction,
    record_votes,
    retract_vote,
    vote_kind,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reaction:
    channel: str
    message_ts: str
    user: str
    reaction: str
    """Normalized: skin tone stripped, ``thumbsup`` folded into ``+1``."""
    kind: VoteKind
    event_id: str | None
    at: datetime
    """When the reaction was added or removed, by Slack's clock (``event_ts``)."""

    def as_new_vote(self) -> NewVote:
        return NewVote(
            self.channel,
            self.message_ts,
            self.user,
            self.reaction,
            self.kind,
            self.event_id,
            self.at,
        )

    @property
    def claim_key(self) -> str:
        """Names this delivery: Slack's retries repeat the event id."""
        return (
            self.event_id or f"{self.channel}:{self.message_ts}:{self.user}:{self.at.timestamp()}"
        )


def parse_reaction_event(
    event: Mapping[str, Any], event_id: str | None, approval_reaction: str
) -> Reaction | None:
    """The vote in a ``reaction_added``/``reaction_removed`` event, or None if it is not one."""
    item = event.get("item") or {}
    if item.get("type") != "message" or not event.get("user"):
        return None
    if not item.get("channel") or not item.get("ts"):
        return None
    reaction = normalize_reaction(event.get("reaction") or "")
    kind = vote_kind(reaction, approval_reaction)
    if kind is None:
        return None
    at = event_time(event.get("event_ts"))
    return Reaction(item["channel"], item["ts"], event["user"], reaction, kind, event_id, at)


def event_time(event_ts: str | None) -> datetime:
    """Slack's ``event_ts`` (``"1700000000.000200"``) as a UTC time; now when absent or garbled."""
    try:
        return datetime.fromtimestamp(float(event_ts or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return utcnow()


@dataclass(frozen=True)
class VoteOutcome:
    on_reply: bool
    """False when the reaction is on a message the bot did not write as a reply."""
    counted: bool = False
    refused: bool = False
    """True when the refusal is to be told: only for the first delivery of the event."""
    example_id: int | None = None


def refuse_approval(session: Session, vote: Reaction) -> VoteOutcome:
    """A non-curator's approval: recorded before anyone is told, so Slack's retries stay silent."""
    if find_interaction(session, vote.channel, vote.message_ts) is None:
        return VoteOutcome(on_reply=False)
    first = claim_event(session, "refusal:" + vote.claim_key)
    return VoteOutcome(on_reply=True, refused=first)


def apply_votes(session: Session, votes: Sequence[Reaction], deps: SlackDeps) -> list[VoteOutcome]:
    """Count the votes and collect every reply they approve, in one transaction."""
    results = record_votes(session, [vote.as_new_vote() for vote in votes])
    approving = {
        result.interaction_id
        for vote, result in zip(votes, results, strict=True)
        if result.counted and result.interaction_id is not None and vote.kind != VoteKind.DOWN
    }
    collected = collect_approved_replies(
        session,
        approving,
        quorum=deps.settings.approval_quorum,
        count_tokens=deps.count_tokens,
        redactor=deps.redactor,
        val_share=deps.settings.val_share,
    )
    outcomes: list[VoteOutcome] = []
    for result in reversed(results):  # the last counted vote on a reply reports its collection
        example_id = collected.pop(result.interaction_id, None) if result.counted else None
        on_reply = result.interaction_id is not None
        outcomes.append(VoteOutcome(on_reply, result.counted, example_id=example_id))
    return outcomes[::-1]


class VoteBatcher:
    """Writes the votes that arrive while a batch is being written as the next batch.

    One transaction per vote (3-4 statements and a worker thread each) saturates the process at
    a few hundred reactions a second and delays every acknowledgement; a batch costs a fraction
    of that per vote. No timer: a lone vote is written at once, and the batch grows only while
    the database is busy. If a batch fails, its votes are retried one by one, so one bad vote
    loses no other.
    """

    def __init__(
        self,
        write: Callable[[list[Reaction]], Awaitable[list[VoteOutcome]]],
        max_batch: int = 500,
    ):
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Reaction, asyncio.Future[VoteOutcome]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, vote: Reaction) -> VoteOutcome:
        future: asyncio.Future[VoteOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((vote, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                outcomes = await self._write([vote for vote, _ in batch])
            except Exception:
                if len(batch) == 1:
                    raise_into(batch[0][1])
                    continue
                log.warning("a batch of %d votes failed; writing them one by one", len(batch))
                for vote, future in batch:
                    try:
                        [outcome] = await self._write([vote])
                    except Exception:
                        raise_into(future)
                    else:
                        future.set_result(outcome)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                future.set_result(outcome)


def raise_into(future: asyncio.Future[VoteOutcome]) -> None:
    """Hand the exception being handled to the listener awaiting ``future``."""
    exc = sys.exc_info()[1]
    assert exc is not None
    future.set_exception(exc)


async def handle_reaction_added(
    deps: SlackDeps, vote: Reaction, batcher: VoteBatcher | None = None
) -> VoteOutcome:
    """Count the vote (through ``batcher`` when given), refuse a non-curator's approval, and mark
    a reply it collected."""
    settings = deps.settings
    if vote.kind == VoteKind.APPROVE and not await deps.auth.is_curator(vote.user):
        outcome = await deps.in_session(lambda s: refuse_approval(s, vote))
    elif batcher is not None:
        outcome = await batcher.submit(vote)
    else:
        [outcome] = await deps.in_session(lambda s: apply_votes(s, [vote], deps))
    if outcome.refused:
        text = deps.auth.refusal(f"approve replies with :{settings.approval_reaction}:")
        if settings.approval_quorum > 0:
            text += (
                f" A :+1: from you counts toward the {settings.approval_quorum} that approve it."
            )
        await post_ephemeral(deps.client, vote.channel, vote.user, text)
    if outcome.example_id is not None:
        log.info(
            "collected reply %s/%s as example %s", vote.channel, vote.message_ts, outcome.example_id
        )
        if settings.collected_reaction:
            await add_reaction(
                deps.client, vote.channel, vote.message_ts, settings.collected_reaction
            )
    return outcome


async def handle_reaction_removed(
    deps: SlackDeps, vote: Reaction, *, tombstone: bool = True
) -> bool:
    """Retract the vote; an example already collected stays (curators retire it explicitly).

    With ``tombstone``, a removal of a vote not (yet) stored is remembered, so its reaction
    delivered late is not counted; Slack's events need it, a withdrawal by our own code does not.
    """

    def retract(session: Session) -> bool:
        interaction = find_interaction(session, vote.channel, vote.message_ts)
        if interaction is None or interaction.id is None:
            return False
        return retract_vote(
            session,
            interaction_id=interaction.id,
            user=vote.user,
            reaction=vote.reaction,
            kind=vote.kind if tombstone else None,
            at=vote.at,
        )

    return await deps.in_session(retract)
