"""Which model answers: the promoted version from the registry, read for every reply.

``promoted_model_provider`` builds a :data:`~brandvoice.bot.slack.deps.ChatProvider` from a
loader (version -> backend), keeping the backend of the version in production until another one
is promoted, so a promotion (from Slack, the CLI or the API) takes effect on the next reply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.deps import ActiveModel, ChatProvider
from brandvoice.inference.chat import ChatBackend
from brandvoice.store.db import session_scope
from brandvoice.store.models import ModelVersion
from brandvoice.trainer.registry import promoted_version

BackendLoader = Callable[[ModelVersion | None], ChatBackend]
"""Makes the backend that serves a version (None: the base model)."""


def promoted_model_provider(engine: Engine, load: BackendLoader) -> ChatProvider:
    lock = threading.Lock()
    cache: dict[int | None, ActiveModel] = {}

    def provide() -> ActiveModel:
        with session_scope(engine) as session:
            version = promoted_version(session)
        key = version.id if version is not None else None
        with lock:
            if key not in cache:
                cache.clear()
                backend = load(version)
                name = version.name if version is not None else None
                cache[key] = ActiveModel(backend, name, key)
            return cache[key]

    return provide


def settings_backend_loader(settings: Settings) -> BackendLoader:
    """The default loader: hosted versions through their provider, local ones as base + adapter."""
    from brandvoice.inference.factory import make_chat_backend

    def load(version: ModelVersion | None) -> ChatBackend:
        if version is None:
            return make_chat_backend("local", settings.base_model, device=settings.device)
        if version.hosted_model_id:
            together = version.backend == "together"
            return make_chat_backend(
                "openai",
                version.hosted_model_id,
                base_url=settings.together_base_url if together else settings.openai_base_url,
                api_key=settings.together_api_key if together else settings.openai_api_key,
                timeout=settings.chat_timeout_s,
            )
        return make_chat_backend(
            "local", version.base_model, adapter=version.adapter_path, device=settings.device
        )

    return load
