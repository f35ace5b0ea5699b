"""The 👎-rate alert in the report channel, and what a click on its Roll back button does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.blocks import (
    blocks_with_decision,
    build_signal_alert_blocks,
    signal_alert_text,
    slack_date,
)
from brandvoice.bot.slack.client import make_client, post_ephemeral, post_message, update_message
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.reports import ReportClick
from brandvoice.store.audit import record_refusal
from brandvoice.store.models import utcnow
from brandvoice.trainer.production_signal import SignalAlert
from brandvoice.trainer.registry import RegistryError, rollback

log = logging.getLogger(__name__)


async def post_signal_alert(
    client: AsyncWebClient, channel: str | None, alert: SignalAlert, base_model: str
) -> str | None:
    """Post the alert; its message ts, or None when no channel is set or Slack refused (logged)."""
    text = signal_alert_text(alert)
    if not channel:
        log.warning("%s (no REPORT_CHANNEL set, so not posted to Slack)", text)
        return None
    blocks = build_signal_alert_blocks(alert, base_model)
    return await post_message(client, channel, text, blocks=blocks)


def slack_signal_publisher(settings: Settings) -> Callable[[SignalAlert], None]:
    """Posts each alert to ``REPORT_CHANNEL`` from the (synchronous) worker."""

    def publish(alert: SignalAlert) -> None:
        client = make_client(settings.slack_bot_token, settings.slack_api_url)
        channel = settings.report_channel
        asyncio.run(post_signal_alert(client, channel, alert, settings.base_model))

    return publish


async def handle_rollback_click(deps: SlackDeps, click: ReportClick) -> None:
    """Roll back the version the alert was about (curators only, audited), then say on the
    alert who did it; refused when another version is in production by now."""
    if not await deps.auth.is_curator(click.user):
        await _audit_refusal(deps, click, "not a curator")
        await post_ephemeral(
            deps.client, click.channel, click.user, deps.auth.refusal("roll back models")
        )
        return
    try:
        restored, demoted = await deps.in_session(
            lambda session: rollback(session, click.user, only=click.version)
        )
    except RegistryError as exc:
        await _audit_refusal(deps, click, str(exc))
        await post_ephemeral(
            deps.client, click.channel, click.user, f"Cannot roll back {click.version}: {exc}"
        )
        return
    now = restored.name if restored else f"the base model `{deps.settings.base_model}`"
    note = (
        f"↩️ <@{click.user}> rolled back *{demoted.name}*; {now} answers again · "
        f"{slack_date(utcnow())}"
    )
    await update_message(
        deps.client,
        click.channel,
        click.message_ts,
        f"{demoted.name} rolled back by <@{click.user}>",
        blocks=blocks_with_decision(click.blocks, note),
    )


async def _audit_refusal(deps: SlackDeps, click: ReportClick, reason: str) -> None:
    await deps.in_session(
        lambda session: record_refusal(session, click.user, "model.rollback", click.version, reason)
    )
