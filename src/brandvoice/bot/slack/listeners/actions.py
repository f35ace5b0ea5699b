"""Buttons: Promote/Discard on training reports, Roll back on 👎-rate alerts, Approve/Reject on
correction cards, and the feedback and Improve buttons under every reply."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from brandvoice.bot.slack.blocks import (
    APPROVE_CORRECTION_ACTION,
    DISCARD_ACTION,
    FEEDBACK_ACTION,
    IMPROVE_ACTION,
    PROMOTE_ACTION,
    REJECT_CORRECTION_ACTION,
    ROLLBACK_ACTION,
)
from brandvoice.bot.slack.corrections import handle_correction_click, open_correction_modal
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.feedback_buttons import handle_feedback_click, parse_feedback_click
from brandvoice.bot.slack.reports import handle_report_click, parse_report_click
from brandvoice.bot.slack.signal_alerts import handle_rollback_click


async def ack_click(ack: AsyncAck) -> None:
    await ack()


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def decide_report(body: dict[str, Any]) -> None:
        await handle_report_click(deps, parse_report_click(body))

    async def roll_back(body: dict[str, Any]) -> None:
        await handle_rollback_click(deps, parse_report_click(body))

    async def decide_correction(body: dict[str, Any]) -> None:
        await handle_correction_click(deps, body)

    async def count_feedback(body: dict[str, Any]) -> None:
        click = parse_feedback_click(body)
        if click is not None:
            await handle_feedback_click(deps, click)

    async def improve_reply(body: dict[str, Any]) -> None:
        await open_correction_modal(deps, body)

    app.action(FEEDBACK_ACTION)(ack=ack_click, lazy=[count_feedback])
    app.action(IMPROVE_ACTION)(ack=ack_click, lazy=[improve_reply])
    for action_id in (PROMOTE_ACTION, DISCARD_ACTION):
        app.action(action_id)(ack=ack_click, lazy=[decide_report])
    app.action(ROLLBACK_ACTION)(ack=ack_click, lazy=[roll_back])
    for action_id in (APPROVE_CORRECTION_ACTION, REJECT_CORRECTION_ACTION):
        app.action(action_id)(ack=ack_click, lazy=[decide_correction])
