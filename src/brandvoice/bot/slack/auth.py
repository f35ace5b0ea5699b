"""Who may curate: configured Slack user ids and the members of one user group.

The one place that answers "is this person a curator?". The group's members are fetched with
``usergroups.users.list`` and cached for ``ttl_s`` seconds; if Slack cannot be asked, the last
known members (or the configured ids alone) still count, and the reason is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from brandvoice.bot.slack.client import log_slack_error, usergroup_members

log = logging.getLogger(__name__)


class CuratorAuth:
    def __init__(
        self,
        client: AsyncWebClient,
        curator_ids: Iterable[str],
        curator_group: str | None = None,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self.curator_ids = frozenset(curator_ids)
        self.curator_group = curator_group
        self._ttl_s = ttl_s
        self._clock = clock
        self._members: frozenset[str] = frozenset()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def is_curator(self, user_id: str) -> bool:
        if user_id in self.curator_ids:
            return True
        if not self.curator_group:
            return False
        return user_id in await self._group_members()

    async def _group_members(self) -> frozenset[str]:
        async with self._lock:
            fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl_s
            if not fresh:
                assert self.curator_group is not None
                try:
                    members = await usergroup_members(self._client, self.curator_group)
                except SlackApiError as exc:
                    log_slack_error("usergroups.users.list", None, exc)
                else:
                    self._members = frozenset(members)
                # Also on failure: retry after the ttl rather than on every reaction.
                self._fetched_at = self._clock()
            return self._members

    def describe(self) -> str:
        """Who the curators are, for refusal messages."""
        who = [f"<@{user}>" for user in sorted(self.curator_ids)]
        if self.curator_group:
            who.append(f"members of <!subteam^{self.curator_group}>")
        return ", ".join(who) if who else "nobody yet (set CURATORS or CURATOR_GROUP)"

    def refusal(self, action: str) -> str:
        return f"Only curators can {action}. Curators: {self.describe()}."
