"""Reactions on the bot's replies: votes, curator approval, quorum, retraction."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from brandvoice.bot.slack.client import add_reaction, post_ephemeral
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.store.feedback import (
    claim_event,
    collect_if_approved,
    find_interaction,
    normalize_reaction,
    record_vote,
    retract_vote,
    vote_kind,
)
from brandvoice.store.models import VoteKind, utcnow

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


def apply_vote(
    session: Session, vote: Reaction, *, is_curator: bool, deps: SlackDeps
) -> VoteOutcome:
    """Count the vote and collect the reply if it is now approved, in one transaction."""
    interaction = find_interaction(session, vote.channel, vote.message_ts)
    if interaction is None:
        return VoteOutcome(on_reply=False)
    assert interaction.id is not None
    if vote.kind == VoteKind.APPROVE and not is_curator:
        # Recorded before anyone is told, so Slack's retries of this event are refused silently.
        first = claim_event(session, "refusal:" + vote.claim_key)
        return VoteOutcome(on_reply=True, refused=first)
    counted = record_vote(
        session,
        interaction_id=interaction.id,
        user=vote.user,
        reaction=vote.reaction,
        kind=vote.kind,
        event_id=vote.event_id,
        at=vote.at,
    )
    example_id = None
    if counted and vote.kind != VoteKind.DOWN:
        example_id = collect_if_approved(
            session,
            interaction,
            quorum=deps.settings.approval_quorum,
            count_tokens=deps.count_tokens,
            redactor=deps.redactor,
            val_share=deps.settings.val_share,
        )
    return VoteOutcome(on_reply=True, counted=counted, example_id=example_id)


async def handle_reaction_added(deps: SlackDeps, vote: Reaction) -> VoteOutcome:
    settings = deps.settings
    is_curator = vote.kind == VoteKind.APPROVE and await deps.auth.is_curator(vote.user)
    outcome = await deps.in_session(lambda s: apply_vote(s, vote, is_curator=is_curator, deps=deps))
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


async def handle_reaction_removed(deps: SlackDeps, vote: Reaction) -> bool:
    """Retract the vote; an example already collected stays (curators retire it explicitly)."""

    def retract(session: Session) -> bool:
        interaction = find_interaction(session, vote.channel, vote.message_ts)
        if interaction is None or interaction.id is None:
            return False
        return retract_vote(
            session,
            interaction_id=interaction.id,
            user=vote.user,
            reaction=vote.reaction,
            kind=vote.kind,
            at=vote.at,
        )

    return await deps.in_session(retract)
