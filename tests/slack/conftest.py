"""The Slack bot under test: the real FastAPI app and Bolt listeners, a loopback Slack Web API.

Requests reach ``/slack/events`` exactly as Slack sends them (signed JSON events, form-encoded
slash commands, ``payload=`` interactivity). The model is a small deterministic ChatBackend.
Lazy listeners run on the test's event loop after the response; ``settle()`` waits for all of
them, so tests can assert on what did (and did not) happen.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import Engine

from brandvoice.bot.knowledge import KnowledgeService
from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.app import create_slack_app
from brandvoice.bot.slack.provider import promoted_model_provider
from brandvoice.bot.web import create_app
from brandvoice.inference.chat import ChatDelta, ChatResult, Messages, Sampling, Usage
from tests.fakes.slack_api import FakeSlackAPI

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T1"
APP = "A1"
BOT = "U0BOT"
CURATOR = "U0CURATOR"
GROUP = "S0CURATORS"
GROUP_MEMBER = "U0GROUPIE"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
CHANNEL = "C0GENERAL"
REPORTS = "C0REPORTS"
CURATION = "C0CURATE"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ScriptedModel:
    """A deterministic ChatBackend: answers in the brand's voice, or with ``next_reply``.

    It streams word by word, ``piece_delay`` seconds apart; ``fail_after`` words it crashes.
    """

    model_name = "scripted"
    supports_json = False

    def __init__(self) -> None:
        self.conversations: list[list[dict[str, Any]]] = []
        self.next_reply: str | None = None
        self.fail = False
        self.fail_after: int | None = None
        self.piece_delay = 0.0

    def _reply(self, messages: Messages) -> str:
        if self.fail:
            raise RuntimeError("model crashed")
        self.conversations.append([dict(m) for m in messages])
        if self.next_reply is not None:
            return self.next_reply
        return f"Happy to help with '{messages[-1]['content']}'. Cheers, Acme"

    async def stream(
        self, messages: Messages, sampling: Sampling | None = None
    ) -> AsyncIterator[ChatDelta]:
        words = self._reply(messages).split(" ")
        for index, word in enumerate(words):
            if self.fail_after is not None and index == self.fail_after:
                raise RuntimeError("model crashed mid-reply")
            if self.piece_delay:
                await asyncio.sleep(self.piece_delay)
            yield ChatDelta(word if index == 0 else " " + word, model=self.model_name)
        yield ChatDelta("", "stop", Usage(10, len(words)), self.model_name)

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        text = self._reply(messages)
        return ChatResult(text, Usage(10, len(text.split(" "))), self.model_name, "stop")

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        return [self.complete(c, sampling) for c in conversations]


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """Slack's request signature: ``v0=`` HMAC-SHA256 over ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def message_button(message: dict[str, Any], action_id: str) -> tuple[str, dict[str, Any]]:
    """The block id and the button ``action_id`` in a message's actions blocks."""
    for block in message["blocks"]:
        for element in block.get("elements", ()) if block["type"] == "actions" else ():
            if element.get("action_id") == action_id:
                return block["block_id"], element
    raise AssertionError(f"no {action_id!r} button in the message")


def block_actions(
    slack: SlackHarness,
    user: str,
    channel: str,
    message: dict[str, Any],
    action_id: str,
    *,
    team_id: str = TEAM,
    app_id: str = APP,
) -> dict[str, Any]:
    """What Slack sends when ``user`` clicks the ``action_id`` button of ``message`` in ``channel``."""
    block_id, button = message_button(message, action_id)
    action = {
        "action_id": action_id,
        "block_id": block_id,
        "text": button["text"],
        "value": button["value"],
        "style": button.get("style"),
        "type": "button",
    }
    return block_actions_payload(
        slack, user, channel, message, action, team_id=team_id, app_id=app_id
    )


def block_actions_payload(
    slack: SlackHarness,
    user: str,
    channel: str,
    message: dict[str, Any],
    action: dict[str, Any],
    *,
    team_id: str = TEAM,
    app_id: str = APP,
) -> dict[str, Any]:
    """The ``block_actions`` envelope around one ``action`` taken on ``message``."""
    container = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": channel,
        "is_ephemeral": False,
    }
    if message.get("thread_ts") or message.get("metadata"):
        container["thread_ts"] = message.get("thread_ts") or message["ts"]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team_id},
        "api_app_id": app_id,
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": f"{next(slack._ids)}.4444.abc",
        "team": {"id": team_id, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lower()},
        "message": message,
        "state": {"values": {}},
        "response_url": slack.api.response_url(f"click{next(slack._ids)}"),
        "actions": [{"action_ts": f"{time.time():.6f}", **action}],
    }


def _started_by_bolt(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "slack_bolt" in code.co_filename


class SlackHarness:
    """Sends Slack's requests to the app and waits for the work they start."""

    def __init__(self, http: httpx.AsyncClient, api: FakeSlackAPI, model: ScriptedModel):
        self.http, self.api, self.model = http, api, model
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    def new_ts(self) -> str:
        return f"1699999{next(self._ts):03d}.000200"

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature or sign(body, stamp),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **(headers or {}),
        }
        return await self.http.post("/slack/events", content=body, headers=sent)

    def envelope(
        self,
        event: dict[str, Any],
        event_id: str | None = None,
        *,
        team_id: str | None = TEAM,
        app_id: str = APP,
        enterprise_id: str | None = None,
        org_install: bool = False,
    ) -> dict[str, Any]:
        """An ``event_callback`` as Slack wraps it for the installation it is delivered to."""
        authorization = {
            "enterprise_id": enterprise_id,
            "team_id": None if org_install else team_id,
            "user_id": BOT,
            "is_bot": True,
            "is_enterprise_install": org_install,
        }
        return {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "enterprise_id": enterprise_id,
            "api_app_id": app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [authorization],
            "is_ext_shared_channel": False,
        }

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        **installation: Any,
    ) -> httpx.Response:
        """Deliver ``event``; ``installation`` overrides whose it is (see :meth:`envelope`)."""
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        body = json.dumps(self.envelope(event, event_id, **installation)).encode()
        return await self.post(body, "application/json", headers=headers)

    async def mention(
        self, text: str, *, user: str = ALICE, ts: str | None = None, thread_ts: str | None = None
    ) -> str:
        ts = ts or self.new_ts()
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT}> {text}",
            "ts": ts,
            "channel": CHANNEL,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        response = await self.event(event)
        assert response.status_code == 200, response.text
        await self.settle()
        return ts

    async def react(
        self,
        reaction: str,
        message_ts: str,
        *,
        user: str = ALICE,
        removed: bool = False,
        event_id: str | None = None,
        retry_num: int | None = None,
        event_ts: str | None = None,
    ) -> httpx.Response:
        """React (or un-react) at ``event_ts``, Slack's time of the reaction (now by default)."""
        event = {
            "type": "reaction_removed" if removed else "reaction_added",
            "user": user,
            "reaction": reaction,
            "item_user": BOT,
            "item": {"type": "message", "channel": CHANNEL, "ts": message_ts},
            "event_ts": event_ts or f"{time.time():.6f}",
        }
        response = await self.event(event, event_id=event_id, retry_num=retry_num)
        await self.settle()
        return response

    async def command(
        self, text: str, *, user: str = ALICE, channel: str = CHANNEL, team_id: str = TEAM
    ) -> httpx.Response:
        form = {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/brandvoice",
            "text": text,
            "api_app_id": APP,
            "is_enterprise_install": "false",
            "response_url": self.api.response_url(f"cmd{next(self._ids)}"),
            "trigger_id": f"{next(self._ids)}.1.abc",
        }
        response = await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")
        await self.settle()
        return response

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        response = await self.post(body, "application/x-www-form-urlencoded")
        await self.settle()
        return response

    async def settle(self, timeout: float = 20.0) -> None:
        """Wait until the work Bolt started after acknowledging (lazy listeners) has finished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending := [t for t in asyncio.all_tasks() if _started_by_bolt(t) and not t.done()]:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"background work still running after {timeout}s: {pending}")
            await asyncio.wait(pending, timeout=left)

    def responses(self) -> list[dict[str, Any]]:
        """What the app posted to response URLs (slash command answers)."""
        return [call.body for call in self.api.calls_to("response_url")]

    def last_reply(self) -> dict[str, Any]:
        """The bot's last finished reply as Slack shows it: ts, text, blocks under it, metadata.

        A streamed reply ends with ``chat.stopStream``; a placeholder reply with ``chat.update``.
        """
        finals = [
            call
            for call in self.api.calls
            if call.method in ("chat.stopStream", "chat.update") and call.answer.get("ok")
        ]
        assert finals, f"no reply finished; calls: {[c.method for c in self.api.calls]}"
        final = finals[-1]
        if final.method == "chat.update":
            return {
                "ts": final.body["ts"],
                "text": final.body["text"],
                "blocks": final.body.get("blocks") or [],
                "metadata": final.body.get("metadata"),
            }
        stream = self.api.streams[final.body["ts"]]
        return {
            "ts": final.body["ts"],
            "text": stream["text"],
            "blocks": final.body.get("blocks") or [],
            "metadata": final.body.get("metadata"),
        }

    def ephemerals(self, user: str | None = None) -> list[str]:
        calls = self.api.calls_to("chat.postEphemeral")
        return [c.body["text"] for c in calls if user is None or c.body["user"] == user]


@pytest.fixture(autouse=True)
def listener_errors_fail_the_test(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bolt logs and swallows a listener's exception; here it fails the test instead."""
    caplog.set_level(logging.INFO)
    yield
    crashes = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and r.name.startswith(("brandvoice.bot.slack.bolt", "slack_bolt"))
    ]
    assert not crashes, f"a listener failed: {crashes}"


@pytest.fixture
def slack_api() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI(bot_user_id=BOT) as api:
        api.usergroups[GROUP] = [GROUP_MEMBER]
        yield api


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


def make_settings(api: FakeSlackAPI, **overrides: Any) -> Settings:
    """The bot's settings against ``api``; knowledge is off unless a test turns it on, so replies
    in tests that approve examples do not embed them (tests/slack/test_grounded_replies.py)."""
    values: dict[str, Any] = {
        "slack_bot_token": "xoxb-1-test",
        "slack_signing_secret": SECRET,
        "slack_api_url": api.api_url,
        "report_channel": REPORTS,
        "curation_channel": CURATION,
        "curators": CURATOR,
        "curator_group": GROUP,
        "approval_quorum": 2,
        "knowledge_enabled": False,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(slack_api: FakeSlackAPI) -> Settings:
    return make_settings(slack_api)


@asynccontextmanager
async def harness(
    settings: Settings,
    engine: Engine,
    slack_api: FakeSlackAPI,
    model: Any,
    knowledge: KnowledgeService | None = None,
) -> AsyncIterator[SlackHarness]:
    """The web app with the Slack bot built from ``settings``, answering with ``model``; the bot
    and the API share one ``knowledge`` service, as ``brandvoice web`` runs them."""
    provider = promoted_model_provider(engine, lambda version: model)
    knowledge = knowledge or KnowledgeService(settings)
    slack_app = create_slack_app(settings, engine, provider, knowledge=knowledge)
    app = create_app(settings, engine, slack_app=slack_app, knowledge=knowledge)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://brandvoice.test") as http:
        slack = SlackHarness(http, slack_api, model)
        yield slack
        await slack.settle()


@pytest.fixture
async def slack(
    settings: Settings, engine: Engine, slack_api: FakeSlackAPI, model: ScriptedModel
) -> AsyncIterator[SlackHarness]:
    async with harness(settings, engine, slack_api, model) as running:
        yield running
