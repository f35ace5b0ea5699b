"""Questions: ``app_mention`` in channels and ``message`` in DMs, answered once per message."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.replies import answer_question, question_from_event


async def acknowledge() -> None:
    """Events are acknowledged by Bolt itself; the work happens in the lazy listener."""


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def answer_event(event: dict[str, Any], context: AsyncBoltContext) -> None:
        question = question_from_event(event, context.bot_user_id)
        if question is not None:
            await answer_question(deps, question, context.bot_user_id, team_id=context.team_id)

    app.event("app_mention")(ack=acknowledge, lazy=[answer_event])
    app.event("message")(ack=acknowledge, lazy=[answer_event])
