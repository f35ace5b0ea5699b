"""Every Slack Web API call the bot makes, with the rate-limit retry handler attached once.

Helpers translate Slack's refusals into log lines that say what to do (``/invite @brandvoice``),
so callers only decide whether a failure matters to them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 3
HINTS = {
    "not_in_channel": "invite the bot first: /invite @brandvoice in that channel",
    "channel_not_found": "check the channel id, and invite the bot if the channel is private",
    "msg_too_long": "the message is longer than Slack accepts; it should have been split",
    "invalid_blocks": "a block breaks Block Kit's limits (section text is at most 3000 chars)",
    "missing_scope": "add the scope named in 'needed' to the app and reinstall it",
    "expired_trigger_id": "the modal was opened more than 3 seconds after the click",
}


def make_client(token: str | None, api_url: str) -> AsyncWebClient:
    """The one WebClient of the process, retrying on 429 as long as ``Retry-After`` says."""
    client = AsyncWebClient(token=token, base_url=api_url)
    client.retry_handlers.append(
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)
    )
    return client


@asynccontextmanager
async def pooled_connections(client: AsyncWebClient) -> AsyncIterator[None]:
    """Keep one HTTP session (and its keep-alive connections) for ``client`` while serving.

    Without a session slack_sdk opens a new one, and a new TCP connection, for every call; Bolt's
    per-request clients share the one set here. It must be made inside the running event loop.
    """
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client.timeout))
    client.session = session
    try:
        yield
    finally:
        client.session = None
        await session.close()


def slack_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown_error"))


def log_slack_error(method: str, channel: str | None, exc: SlackApiError) -> None:
    error = slack_error(exc)
    where = f" in {channel}" if channel else ""
    hint = HINTS.get(error, "see https://api.slack.com/methods/" + method)
    log.error("Slack %s failed%s: %s; %s", method, where, error, hint)


async def post_message(
    client: AsyncWebClient,
    channel: str,
    text: str,
    *,
    blocks: Sequence[dict[str, Any]] | None = None,
    thread_ts: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> str | None:
    """Post a message; its ts, or None when Slack refused (the reason is logged with a hint)."""
    try:
        response = await client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=list(blocks) if blocks else None,
            thread_ts=thread_ts,
            metadata=metadata,
            unfurl_links=False,
        )
    except SlackApiError as exc:
        log_slack_error("chat.postMessage", channel, exc)
        return None
    return str(response["ts"])


async def update_message(
    client: AsyncWebClient,
    channel: str,
    ts: str,
    text: str,
    *,
    blocks: Sequence[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> bool:
    try:
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=text,
            blocks=list(blocks) if blocks is not None else None,
            metadata=metadata,
        )
    except SlackApiError as exc:
        log_slack_error("chat.update", channel, exc)
        return False
    return True


async def post_ephemeral(client: AsyncWebClient, channel: str, user: str, text: str) -> bool:
    """A message only ``user`` sees; used for refusals and confirmations."""
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log_slack_error("chat.postEphemeral", channel, exc)
        return False
    return True


async def open_view(client: AsyncWebClient, trigger_id: str, view: dict[str, Any]) -> bool:
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        log_slack_error("views.open", None, exc)
        return False
    return True


async def add_reaction(client: AsyncWebClient, channel: str, ts: str, name: str) -> bool:
    """React to a message; reacting twice is not an error."""
    try:
        await client.reactions_add(channel=channel, timestamp=ts, name=name)
    except SlackApiError as exc:
        if slack_error(exc) == "already_reacted":
            return True
        log_slack_error("reactions.add", channel, exc)
        return False
    return True


async def thread_messages(
    client: AsyncWebClient, channel: str, thread_ts: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The thread's messages, oldest first; empty when the bot cannot read the channel."""
    try:
        response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=limit)
    except SlackApiError as exc:
        log_slack_error("conversations.replies", channel, exc)
        return []
    return list(response.get("messages") or [])


async def usergroup_members(client: AsyncWebClient, usergroup: str) -> list[str]:
    """Members of a user group; raises SlackApiError so the caller can keep its cached list."""
    response = await client.usergroups_users_list(usergroup=usergroup)
    return list(response.get("users") or [])
