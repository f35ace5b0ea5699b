"""Builds the Bolt ``AsyncApp``: one WebClient, the curator check, the listeners.

HTTP mode serves it from the web app at ``/slack/events`` (signatures verified); Socket Mode
(``SLACK_APP_TOKEN``) connects out to Slack instead and needs no public URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from slack_bolt import BoltResponse
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine

from brandvoice.bot.knowledge import KnowledgeService
from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.auth import CuratorAuth, InstallationGuard
from brandvoice.bot.slack.client import make_client
from brandvoice.bot.slack.deps import ChatProvider, SlackDeps
from brandvoice.bot.slack.listeners import register_listeners
from brandvoice.bot.slack.provider import promoted_model_provider

log = logging.getLogger(__name__)


def slack_enabled(settings: Settings) -> bool:
    return bool(settings.slack_bot_token)


def build_deps(
    settings: Settings,
    engine: Engine,
    chat_provider: ChatProvider,
    client: AsyncWebClient | None = None,
    knowledge: KnowledgeService | None = None,
) -> SlackDeps:
    """``knowledge`` is the process's one service (shared with the API); a new one otherwise."""
    client = client or make_client(settings.slack_bot_token, settings.slack_api_url)
    auth = CuratorAuth(
        client, settings.curator_ids, settings.curator_group, ttl_s=settings.curator_cache_s
    )
    return SlackDeps(
        settings=settings,
        engine=engine,
        client=client,
        chat_provider=chat_provider,
        auth=auth,
        redactor=settings.redactor,
        knowledge=knowledge or KnowledgeService(settings),
    )


def build_slack_app(deps: SlackDeps) -> AsyncApp:
    """The Bolt app with every listener registered.

    Request signatures are verified once, by ``SlackEndpoint`` before the body is parsed (HTTP
    mode), so Bolt's own second check is off; Socket Mode has no signatures to check.
    """
    settings = deps.settings
    if not settings.slack_bot_token:
        raise ValueError("SLACK_BOT_TOKEN is not set, so the Slack bot cannot start")
    if not settings.slack_signing_secret and not settings.slack_app_token:
        raise ValueError(
            "set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode) to run the bot"
        )
    app = AsyncApp(
        client=deps.client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=False,
        name="brandvoice",
        logger=logging.getLogger("brandvoice.bot.slack.bolt"),
    )
    app.use(
        installation_check(InstallationGuard(deps.client, org_install=settings.slack_org_install))
    )
    register_listeners(app, deps)
    return app


def installation_check(guard: InstallationGuard) -> Callable[..., Awaitable[BoltResponse | None]]:
    """A Bolt middleware that drops requests meant for another workspace, org or app.

    A refused event is still acknowledged with 200: Slack retries anything else, and disables an
    app's event subscriptions when too many deliveries fail. Commands and clicks get 403.
    """

    async def only_this_installation(
        req: AsyncBoltRequest, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        reason = await guard.refusal(
            team_id=req.context.team_id,
            enterprise_id=req.context.enterprise_id,
            app_id=req.body.get("api_app_id"),
        )
        if reason is None:
            return await next()
        kind = req.body.get("type") or ("command" if req.body.get("command") else "request")
        log.warning("refused a Slack %s: %s", kind, reason)
        if kind == "event_callback":
            return BoltResponse(status=200, body="")
        return BoltResponse(
            status=403,
            body=json.dumps({"error": f"this bot does not serve this request: {reason}"}),
            headers={"content-type": "application/json"},
        )

    return only_this_installation


def create_slack_app(
    settings: Settings,
    engine: Engine,
    chat_provider: ChatProvider | None = None,
    client: AsyncWebClient | None = None,
    knowledge: KnowledgeService | None = None,
) -> AsyncApp:
    """The bot as ``brandvoice web`` runs it: the promoted version answers unless told otherwise.

    Pass the result to ``create_app(settings, engine, slack_app=...)`` (HTTP mode) or to
    :func:`start_socket_mode` when ``SLACK_APP_TOKEN`` is set.
    """
    if chat_provider is None:
        from brandvoice.bot.backends import Backends

        chat_provider = promoted_model_provider(engine, Backends(settings).load)
    return build_slack_app(build_deps(settings, engine, chat_provider, client, knowledge))


async def start_socket_mode(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Connect to Slack over Socket Mode; close the returned handler on shutdown."""
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()
    log.info("Slack bot connected in Socket Mode")
    return handler
