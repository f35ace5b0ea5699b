"""The "Improve this reply" message shortcut."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from brandvoice.bot.slack.blocks import CORRECTION_SHORTCUT
from brandvoice.bot.slack.corrections import open_correction_modal
from brandvoice.bot.slack.deps import SlackDeps


async def ack_shortcut(ack: AsyncAck) -> None:
    await ack()


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def open_modal(body: dict[str, Any]) -> None:
        await open_correction_modal(deps, body)

    app.message_shortcut(CORRECTION_SHORTCUT)(ack=ack_shortcut, lazy=[open_modal])
