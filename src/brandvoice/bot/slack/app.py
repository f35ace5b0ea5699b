"""Builds the Bolt ``AsyncApp``: one WebClient, the curator check, the listeners.

HTTP mode serves it from the web app at ``/slack/events`` (signatures verified); Socket Mode
(``SLACK_APP_TOKEN``) connects out to Slack instead and needs no public URL.
"""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine

from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.auth import CuratorAuth
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
) -> SlackDeps:
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
    )


def build_slack_app(deps: SlackDeps) -> AsyncApp:
    """The Bolt app with every listener registered; request signatures are always verified."""
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
        name="brandvoice",
        logger=logging.getLogger("brandvoice.bot.slack.bolt"),
    )
    register_listeners(app, deps)
    return app


def create_slack_app(
    settings: Settings,
    engine: Engine,
    chat_provider: ChatProvider | None = None,
    client: AsyncWebClient | None = None,
) -> AsyncApp:
    """The bot as ``brandvoice web`` runs it: the promoted version answers unless told otherwise.

    Pass the result to ``create_app(settings, engine, slack_app=...)`` (HTTP mode) or to
    :func:`start_socket_mode` when ``SLACK_APP_TOKEN`` is set.
    """
    if chat_provider is None:
        from brandvoice.bot.backends import Backends

        chat_provider = promoted_model_provider(engine, Backends(settings).load)
    return build_slack_app(build_deps(settings, engine, chat_provider, client))


async def start_socket_mode(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Connect to Slack over Socket Mode; close the returned handler on shutdown."""
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()
    log.info("Slack bot connected in Socket Mode")
    return handler
