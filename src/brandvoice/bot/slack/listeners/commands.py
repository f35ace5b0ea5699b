"""``/brandvoice``: acknowledged at once, answered through the response URL."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from brandvoice.bot.slack.commands import COMMAND, parse_command, run_command
from brandvoice.bot.slack.deps import SlackDeps


async def ack_command(ack: AsyncAck) -> None:
    await ack()


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def answer_command(command: dict[str, Any], respond: AsyncRespond) -> None:
        reply = await run_command(deps, command["user_id"], parse_command(command.get("text", "")))
        await respond(**reply.as_response())

    app.command(COMMAND)(ack=ack_command, lazy=[answer_command])
