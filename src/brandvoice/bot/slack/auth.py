"""Who may curate, and which Slack installation the bot serves.

Curators are configured Slack user ids and the members of one user group.
The one place that answers "is this person a curator?". The group's members are fetched with
``usergroups.users.list`` and cached for ``ttl_s`` seconds; if Slack cannot be asked, the last
known members (or the configured ids alone) still count, and the reason is logged.

Requests are served only for the workspace (or, configured so, the Enterprise Grid org) and the
app the bot token belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Installation:
    """Where the bot token is installed, as ``auth.test`` reports it."""

    team_id: str | None
    enterprise_id: str | None
    app_id: str | None
    is_enterprise_install: bool = False


def foreign_request(
    installed: Installation,
    *,
    org_install: bool,
    team_id: str | None,
    enterprise_id: str | None,
    app_id: str | None,
) -> str | None:
    """Why a request is not for this installation, or None when it is.

    Bolt answers every request with the one bot token, as if it came from the installed
    workspace; a request from another workspace (the app distributed, a forged or misrouted
    payload signed with our secret) would act there as here. With ``org_install`` every
    workspace of the installed Enterprise Grid org is ours.
    """
    if app_id and installed.app_id and app_id != installed.app_id:
        return f"app {app_id} is not this app ({installed.app_id})"
    if org_install:
        if not installed.enterprise_id:
            return "SLACK_ORG_INSTALL is set, but the bot token does not belong to an org install"
        if enterprise_id != installed.enterprise_id:
            return f"org {enterprise_id or '(none)'} is not the installed org {installed.enterprise_id}"
        return None
    if not installed.team_id:
        return "the bot token has no workspace (an org-wide install? set SLACK_ORG_INSTALL=true)"
    if team_id != installed.team_id:
        return f"workspace {team_id or '(none)'} is not the installed workspace {installed.team_id}"
    return None


class InstallationGuard:
    """Refuses requests meant for another installation; the installation is asked once."""

    def __init__(self, client: AsyncWebClient, *, org_install: bool = False):
        self._client = client
        self.org_install = org_install
        self._installed: Installation | None = None
        self._lock = asyncio.Lock()

    async def installation(self) -> Installation | None:
        """This token's installation; None while Slack cannot be asked (retried next request)."""
        async with self._lock:
            if self._installed is None:
                try:
                    answer = await self._client.auth_test()
                except SlackApiError as exc:
                    log_slack_error("auth.test", None, exc)
                    return None
                self._installed = Installation(
                    team_id=answer.get("team_id") or None,
                    enterprise_id=answer.get("enterprise_id") or None,
                    app_id=answer.get("app_id") or None,
                    is_enterprise_install=bool(answer.get("is_enterprise_install")),
                )
            return self._installed

    async def refusal(
        self, *, team_id: str | None, enterprise_id: str | None, app_id: str | None
    ) -> str | None:
        installed = await self.installation()
        if installed is None:
            return "Slack's auth.test failed, so the installation is unknown"
        return foreign_request(
            installed,
            org_install=self.org_install,
            team_id=team_id,
            enterprise_id=enterprise_id,
            app_id=app_id,
        )
