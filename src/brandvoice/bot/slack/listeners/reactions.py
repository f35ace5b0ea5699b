"""Votes: reactions added to and removed from the bot's replies.

Reactions are the busiest events, so they use plain listeners, not lazy ones: Bolt acknowledges an
event before it runs a plain listener (``process_before_response`` is off), and a lazy listener
would also deep-copy the whole request on the event loop first, which costs more than the ack.
Votes are written in batches (see ``VoteBatcher``).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.votes import (
    Reaction,
    VoteBatcher,
    VoteOutcome,
    apply_votes,
    handle_reaction_added,
    handle_reaction_removed,
    parse_reaction_event,
)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    approval = deps.settings.approval_reaction

    async def write_votes(votes: list[Reaction]) -> list[VoteOutcome]:
        return await deps.in_session(lambda session: apply_votes(session, votes, deps))

    batcher = VoteBatcher(write_votes)

    async def count_reaction(event: dict[str, Any], body: dict[str, Any]) -> None:
        vote = parse_reaction_event(event, body.get("event_id"), approval)
        if vote is not None:
            await handle_reaction_added(deps, vote, batcher)

    async def retract_reaction(event: dict[str, Any], body: dict[str, Any]) -> None:
        vote = parse_reaction_event(event, body.get("event_id"), approval)
        if vote is not None:
            await handle_reaction_removed(deps, vote)

    app.event("reaction_added")(count_reaction)
    app.event("reaction_removed")(retract_reaction)
