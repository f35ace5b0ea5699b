"""The correction modal's submission: checked while Slack waits, saved after."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from brandvoice.bot.slack.blocks import CORRECTION_VIEW, correction_errors, parse_correction_view
from brandvoice.bot.slack.corrections import save_correction
from brandvoice.bot.slack.deps import SlackDeps


async def check_correction(ack: AsyncAck, view: dict[str, Any]) -> None:
    """Errors appear under the input and keep the modal open; otherwise it closes."""
    errors = correction_errors(parse_correction_view(view))
    if errors:
        await ack(response_action="errors", errors=errors)
    else:
        await ack()


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def store_correction(body: dict[str, Any], view: dict[str, Any]) -> None:
        submitted = parse_correction_view(view)
        if not correction_errors(submitted):
            await save_correction(deps, body["user"]["id"], submitted)

    app.view_submission(CORRECTION_VIEW)(ack=check_correction, lazy=[store_correction])
