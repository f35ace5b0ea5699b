"""The 👍/👎 feedback buttons under a reply: a click is the vote its reaction would be.

A click goes through the same path as a ``reaction_added`` of ``:+1:``/``:-1:`` (same vote table,
same dedup, quorum and curator rules). Slack's element shows one of the two as chosen: clicking
the other one moves the person's vote (their earlier thumbs vote is withdrawn, as a removed
reaction would be), and clicking the chosen one again, which Slack sends again, counts once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from brandvoice.bot.slack.blocks import FEEDBACK_DOWN, FEEDBACK_UP
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.votes import (
    Reaction,
    VoteOutcome,
    event_time,
    handle_reaction_added,
    handle_reaction_removed,
)
from brandvoice.store.models import VoteKind

_KINDS = {FEEDBACK_UP: VoteKind.UP, FEEDBACK_DOWN: VoteKind.DOWN}
_OTHER = {FEEDBACK_UP: FEEDBACK_DOWN, FEEDBACK_DOWN: FEEDBACK_UP}


@dataclass(frozen=True)
class FeedbackClick:
    vote: Reaction
    """The click as the reaction it stands for."""


def parse_feedback_click(body: Mapping[str, Any]) -> FeedbackClick | None:
    """The vote in a ``block_actions`` payload from a feedback button, or None if it is not one."""
    action = (body.get("actions") or [{}])[0]
    value = action.get("value")
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    message_ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    user = (body.get("user") or {}).get("id")
    if value not in _KINDS or not (channel and message_ts and user):
        return None
    # One click, one id: a payload delivered twice counts once, a later click is a new event.
    event_id = f"button:{channel}:{message_ts}:{user}:{action.get('action_ts')}"
    at = event_time(action.get("action_ts"))
    return FeedbackClick(Reaction(channel, message_ts, user, value, _KINDS[value], event_id, at))


async def handle_feedback_click(deps: SlackDeps, click: FeedbackClick) -> VoteOutcome:
    """Withdraw the person's opposite thumbs vote, then count this one like its reaction."""
    other = _OTHER[click.vote.reaction]
    await handle_reaction_removed(
        deps,
        replace(click.vote, reaction=other, kind=_KINDS[other], event_id=None),
        tombstone=False,
    )
    return await handle_reaction_added(deps, click.vote)
