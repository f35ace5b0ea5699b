"""The web app: Slack events, the REST API, the OpenAI-compatible chat endpoint and health checks."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import Engine

import brandvoice
from brandvoice.bot.api import chat_completions, health, rest
from brandvoice.bot.api.guards import RequestGuards
from brandvoice.bot.knowledge import KnowledgeService
from brandvoice.bot.settings import Settings
from brandvoice.inference.backend_cache import BackendLoader
from brandvoice.store.db import make_engine, upgrade


def freeze_startup_heap() -> None:
    """Exempt everything loaded so far (torch, transformers, the app) from garbage collection.

    It lives as long as the server does; left to the collector, every full collection walks it
    and pauses all requests for 100+ ms (the p99 of Slack's acks). Call it once, just before
    serving, in a process that serves one app.
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    backend_loader: BackendLoader | None = None,
    slack_app: Any = None,
    knowledge: KnowledgeService | None = None,
) -> FastAPI:
    """Build the app; the database is migrated first so every route sees the newest schema.

    ``slack_app`` is a slack-bolt ``AsyncApp``. In HTTP mode its events, commands, shortcuts and
    interactivity all arrive at ``/slack/events`` (signature verified before the body is parsed);
    with ``SLACK_APP_TOKEN`` set it connects out over Socket Mode for the app's lifetime instead.
    ``knowledge`` is the process's retrieval service; pass the Slack app's own so both share one
    index (a new one otherwise).
    """
    if engine is None:
        engine = make_engine(settings.database_url)
        upgrade(engine)
    if backend_loader is None:
        from brandvoice.bot.backends import Backends

        backend_loader = Backends(settings).load
    socket_mode = slack_app is not None and bool(settings.slack_app_token)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if slack_app is None:
            yield
            return
        from brandvoice.bot.slack.app import start_socket_mode
        from brandvoice.bot.slack.client import pooled_connections

        async with pooled_connections(slack_app.client):
            handler = None
            if socket_mode:
                handler = await start_socket_mode(slack_app, settings.slack_app_token or "")
            try:
                yield
            finally:
                if handler is not None:
                    await handler.close_async()

    app = FastAPI(
        lifespan=lifespan,
        title="brandvoice",
        version=brandvoice.__version__,
        description="Curate, retrain and serve your team's brand-voice model.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.backend_loader = backend_loader
    app.state.knowledge = knowledge or KnowledgeService(settings)
    app.add_middleware(RequestGuards, settings=settings)
    if slack_app is not None and not socket_mode:
        from brandvoice.bot.slack.endpoint import SlackEndpoint

        endpoint = SlackEndpoint(slack_app, settings.slack_signing_secret or "")

        # First, so the busiest route is matched before any other is tried.
        @app.post("/slack/events", include_in_schema=False)
        async def slack_events(request: Request) -> Any:
            return await endpoint.handle(request)

    app.include_router(health.router)
    app.include_router(rest.router)
    app.include_router(chat_completions.router)
    return app
