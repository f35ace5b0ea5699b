"""Putting a reply on screen while the model writes it.

Slack's streaming methods (``chat.startStream``/``appendStream``/``stopStream``, through
slack_sdk's ``chat_stream`` helper) show text as it arrives. Appends are buffered to one every
``APPEND_INTERVAL_S`` (``chat.appendStream`` is Tier 4, about 100 a minute), except the first,
which goes out as soon as there is text. Where Slack refuses to stream (a surface or workspace
without it, a stream that expired), the reply falls back to a placeholder message updated at most
once every ``UPDATE_INTERVAL_S`` (``chat.update`` is Tier 3, about 50 a minute).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from brandvoice.bot.slack.blocks import Block, build_reply_blocks, split_message
from brandvoice.bot.slack.client import log_slack_error, post_message, slack_error, update_message

log = logging.getLogger(__name__)

PLACEHOLDER = "_Writing a reply…_"
APPEND_INTERVAL_S = 0.5
UPDATE_INTERVAL_S = 1.0


class ReplyUndeliverable(Exception):
    """Slack refused both the stream and a plain message (the reason is logged with a hint)."""


class ReplyStream:
    """One reply in a thread: streamed where Slack allows it, a placeholder updated otherwise."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        recipient_user_id: str,
        recipient_team_id: str | None,
        streaming: bool = True,
    ) -> None:
        self.client, self.channel, self.thread_ts = client, channel, thread_ts
        self.text = ""
        """Everything written so far."""
        self.ts: str | None = None
        """The reply message's ts, once it exists."""
        self._streamer: AsyncChatStream | None = None
        self._streaming = streaming
        self._recipient = (recipient_user_id, recipient_team_id)
        self._pending = ""
        self._last_sent = float("-inf")

    async def start(self) -> bool:
        """Without streaming, post the placeholder now; False when Slack refused the message."""
        if self._streaming:
            return True
        return await self._post_placeholder()

    async def add(self, text: str) -> None:
        """Append generated text; it reaches Slack at once or with the next allowed call."""
        self.text += text
        self._pending += text
        if not self.text.strip():
            return
        interval = APPEND_INTERVAL_S if self._streaming else UPDATE_INTERVAL_S
        if time.monotonic() - self._last_sent >= interval:
            await self._send()

    async def message_ts(self) -> str | None:
        """The reply's ts, creating the message if nothing was shown yet (to record it by)."""
        if self.ts is None and self._streaming and self.text.strip():
            await self._send()
        if self.ts is None:
            self._streaming = False
            await self._post_placeholder()
        return self.ts

    async def finish(
        self, footer: Sequence[Block], metadata: dict[str, Any] | None, *, extra: str = ""
    ) -> bool:
        """End the reply, with ``extra`` text after what was generated and ``footer`` under it."""
        if self._streaming and self.ts is not None:
            try:
                await (await self._stream()).stop(
                    markdown_text=(self._pending + extra) or None,
                    blocks=list(footer) or None,
                    metadata=metadata,
                )
                return True
            except (SlackApiError, SlackRequestError) as exc:
                self._fall_back("chat.stopStream", exc)
        self._streaming = False
        return await self._replace_with(self.text.strip() + extra, footer, metadata)

    async def fail(self, message: str) -> None:
        """Tell the thread the reply failed, keeping what was already on screen."""
        await self.finish([], None, extra=f"\n\n{message}" if self.text.strip() else message)

    # --- the two ways of showing text ----------------------------------------------------------

    async def _stream(self) -> AsyncChatStream:
        """slack_sdk's ``chat_stream`` helper; every append is sent, as ``add`` paces them."""
        if self._streamer is None:
            user, team = self._recipient
            self._streamer = await self.client.chat_stream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_user_id=user,
                recipient_team_id=team,
                buffer_size=1,
            )
        return self._streamer

    async def _send(self) -> None:
        self._last_sent = time.monotonic()
        if self._streaming:
            try:
                stream = await self._stream()
                await stream.append(markdown_text=self._pending)
                self.ts = stream.ts
                self._pending = ""
                return
            except (SlackApiError, SlackRequestError) as exc:
                started = self._streamer is not None and self._streamer.ts is not None
                self._fall_back("chat.appendStream" if started else "chat.startStream", exc)
        if self.ts is None and not await self._post_placeholder():
            raise ReplyUndeliverable(self.channel)
        assert self.ts is not None
        shown = split_message(self.text)[0]
        if await update_message(self.client, self.channel, self.ts, shown):
            self._pending = ""

    async def _post_placeholder(self) -> bool:
        self.ts = await post_message(
            self.client, self.channel, PLACEHOLDER, thread_ts=self.thread_ts
        )
        return self.ts is not None

    def _fall_back(self, method: str, exc: Exception) -> None:
        """Streaming refused: the same message (or a new placeholder) is updated from now on."""
        if isinstance(exc, SlackApiError):
            log_slack_error(method, self.channel, exc)
            reason = slack_error(exc)
        else:
            reason = str(exc)
        log.warning(
            "streaming refused in %s (%s); updating a message instead", self.channel, reason
        )
        self._streaming = False
        if self._streamer is not None and self._streamer.ts:
            self.ts = self._streamer.ts

    async def _replace_with(
        self, text: str, footer: Sequence[Block], metadata: dict[str, Any] | None
    ) -> bool:
        """The final text in the placeholder (blocks, metadata); overflow in more messages."""
        if self.ts is None and not await self._post_placeholder():
            return False
        assert self.ts is not None
        parts = split_message(text or "…")
        blocks = [*build_reply_blocks(parts[0]), *footer]
        updated = await update_message(
            self.client, self.channel, self.ts, parts[0], blocks=blocks, metadata=metadata
        )
        for part in parts[1:]:
            await post_message(
                self.client,
                self.channel,
                part,
                blocks=build_reply_blocks(part),
                thread_ts=self.thread_ts,
            )
        return updated
