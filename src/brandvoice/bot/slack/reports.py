"""Training reports in Slack, and what a click on their Promote and Discard buttons does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.blocks import (
    PROMOTE_ACTION,
    blocks_with_decision,
    build_report_blocks,
    report_text,
    slack_date,
)
from brandvoice.bot.slack.client import make_client, post_ephemeral, post_message, update_message
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.store.audit import record_refusal
from brandvoice.store.models import ModelVersion, utcnow
from brandvoice.trainer.eval_report import EvalReport
from brandvoice.trainer.registry import RegistryError, discard_version, promote_version

log = logging.getLogger(__name__)


def slack_report_publisher(settings: Settings) -> Callable[[ModelVersion, EvalReport], None]:
    """A pipeline publisher posting each report to ``REPORT_CHANNEL`` (for the sync worker)."""

    def publish(version: ModelVersion, report: EvalReport) -> None:
        client = make_client(settings.slack_bot_token, settings.slack_api_url)
        asyncio.run(post_training_report(client, settings.report_channel, version, report))

    return publish


async def post_training_report(
    client: AsyncWebClient, channel: str | None, version: ModelVersion, report: EvalReport
) -> str | None:
    """Post the report; its message ts, or None when no channel is set or Slack refused (logged)."""
    text = report_text(version, report)
    if not channel:
        log.info("%s (no REPORT_CHANNEL set, so not posted to Slack)", text)
        return None
    return await post_message(client, channel, text, blocks=build_report_blocks(version, report))


@dataclass(frozen=True)
class ReportClick:
    action_id: str
    version: str
    user: str
    channel: str
    message_ts: str
    blocks: Sequence[dict[str, Any]]


def parse_report_click(body: Mapping[str, Any]) -> ReportClick:
    action = body["actions"][0]
    container = body.get("container") or {}
    message = body.get("message") or {}
    return ReportClick(
        action_id=action["action_id"],
        version=action["value"],
        user=body["user"]["id"],
        channel=(body.get("channel") or {}).get("id") or container.get("channel_id"),
        message_ts=message.get("ts") or container.get("message_ts"),
        blocks=message.get("blocks") or [],
    )


async def handle_report_click(deps: SlackDeps, click: ReportClick) -> None:
    """Promote or discard through the registry, then say on the report who did it and when."""
    promote = click.action_id == PROMOTE_ACTION
    verb = "promote" if promote else "discard"
    if not await deps.auth.is_curator(click.user):
        await _audit_refusal(deps, click, f"model.{verb}", "not a curator")
        await post_ephemeral(
            deps.client, click.channel, click.user, deps.auth.refusal(f"{verb} models")
        )
        return

    def apply(session: Session) -> tuple[ModelVersion, bool]:
        if promote:
            return promote_version(session, click.version, click.user)
        return discard_version(session, click.version, click.user)

    try:
        version, changed = await deps.in_session(apply)
    except RegistryError as exc:
        await _audit_refusal(deps, click, f"model.{verb}", str(exc))
        await post_ephemeral(
            deps.client, click.channel, click.user, f"Cannot {verb} {click.version}: {exc}"
        )
        return
    if not changed:
        done = "promoted" if promote else "discarded"
        await post_ephemeral(
            deps.client,
            click.channel,
            click.user,
            f"{version.name} is already {done}; nothing changed.",
        )
        return
    icon, done = ("✅", "promoted") if promote else ("🗑️", "discarded")
    note = f"{icon} <@{click.user}> {done} *{version.name}* · {slack_date(utcnow())}"
    blocks = blocks_with_decision(click.blocks, note)
    await update_message(
        deps.client,
        click.channel,
        click.message_ts,
        f"{version.name} {done} by <@{click.user}>",
        blocks=blocks,
    )


async def _audit_refusal(deps: SlackDeps, click: ReportClick, action: str, reason: str) -> None:
    await deps.in_session(
        lambda session: record_refusal(session, click.user, action, click.version, reason)
    )
