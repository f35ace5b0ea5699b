"""Corrections: "Improve this reply" opens a modal; a submission becomes an example.

A curator's correction is approved at once; anyone else's waits as pending, with an
Approve/Reject card in the curation channel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from brandvoice.bot.slack.blocks import (
    APPROVE_CORRECTION_ACTION,
    SubmittedCorrection,
    blocks_with_decision,
    build_correction_card,
    build_correction_modal,
    slack_date,
)
from brandvoice.bot.slack.client import open_view, post_ephemeral, post_message, update_message
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.store.feedback import (
    CorrectionResult,
    decide_pending_example,
    find_interaction,
    submit_correction,
)
from brandvoice.store.models import ExampleStatus, Interaction, utcnow

log = logging.getLogger(__name__)


def last_question(interaction: Interaction) -> str:
    for message in reversed(interaction.prompt_messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


async def open_correction_modal(deps: SlackDeps, body: Mapping[str, Any]) -> None:
    """Open the modal for a message shortcut, if the message is one of the bot's replies."""
    channel, user = body["channel"]["id"], body["user"]["id"]
    ts = (body.get("message") or {}).get("ts") or body.get("message_ts")
    interaction = await deps.in_session(lambda s: find_interaction(s, channel, ts))
    if interaction is None or interaction.id is None:
        await post_ephemeral(
            deps.client,
            channel,
            user,
            "*Improve this reply* works on brandvoice's own replies: open it from one of those.",
        )
        return
    view = build_correction_modal(interaction.id, last_question(interaction), interaction.reply)
    await open_view(deps.client, body["trigger_id"], view)


async def save_correction(deps: SlackDeps, user: str, submitted: SubmittedCorrection) -> None:
    is_curator = await deps.auth.is_curator(user)

    def save(session: Session) -> tuple[Interaction, CorrectionResult]:
        interaction = session.get(Interaction, submitted.interaction_id)
        if interaction is None:
            raise LookupError(f"interaction {submitted.interaction_id} no longer exists")
        result = submit_correction(
            session,
            interaction,
            submitted.corrected,
            user=user,
            approved=is_curator,
            count_tokens=deps.count_tokens,
            redactor=deps.redactor,
            val_share=deps.settings.val_share,
        )
        return interaction, result

    interaction, result = await deps.in_session(save)
    channel = interaction.channel
    if result.example_id is None:
        await post_ephemeral(
            deps.client, channel, user, "That correction is already in the dataset."
        )
        return
    if result.status == ExampleStatus.APPROVED:
        text = f"Thanks! Your correction is in the training set (example #{result.example_id})."
        await post_ephemeral(deps.client, channel, user, text)
        return
    review = deps.settings.curation_channel
    if review:
        card = build_correction_card(
            result.example_id,
            user,
            last_question(interaction),
            interaction.reply,
            submitted.corrected,
        )
        await post_message(deps.client, review, f"<@{user}> suggested a better reply", blocks=card)
        where = f"in <#{review}>"
    else:
        log.warning(
            "correction %s is pending but CURATION_CHANNEL is not set; approve it through the API",
            result.example_id,
        )
        where = "through the API"
    text = f"Thanks! Curators will review your correction {where} (example #{result.example_id})."
    await post_ephemeral(deps.client, channel, user, text)


async def handle_correction_click(deps: SlackDeps, body: Mapping[str, Any]) -> None:
    """A curator's Approve/Reject on a review card; anyone else gets a refusal only they see."""
    action = body["actions"][0]
    approve = action["action_id"] == APPROVE_CORRECTION_ACTION
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
    message = body.get("message") or {}
    verb = "approve" if approve else "reject"
    if not await deps.auth.is_curator(user):
        await post_ephemeral(deps.client, channel, user, deps.auth.refusal(f"{verb} corrections"))
        return
    example_id = int(action["value"])
    try:
        example, changed = await deps.in_session(
            lambda s: decide_pending_example(s, example_id, approve=approve, actor=user)
        )
    except LookupError as exc:
        await post_ephemeral(deps.client, channel, user, str(exc))
        return
    if not changed:
        text = f"Example #{example_id} is already {example.status.value}; nothing changed."
        await post_ephemeral(deps.client, channel, user, text)
        return
    icon, done = ("✅", "approved") if approve else ("🚫", "rejected")
    note = f"{icon} <@{user}> {done} example #{example_id} · {slack_date(utcnow())}"
    await update_message(
        deps.client,
        channel,
        message.get("ts") or body["container"]["message_ts"],
        f"Correction #{example_id} {done} by <@{user}>",
        blocks=blocks_with_decision(message.get("blocks") or [], note),
    )
