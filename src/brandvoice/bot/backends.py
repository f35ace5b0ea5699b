"""Every chat backend the running product uses, built from settings in one place.

A registry version is served by its provider's OpenAI-compatible endpoint when it has a hosted
model id, else by the local base model with its LoRA adapter; no version means the base model.
The generator is the OpenAI-compatible server when ``OPENAI_BASE_URL`` is set, else the local
base; the judge needs ``JUDGE_MODEL``. Loaded backends live in one bounded cache per process
(``MAX_LOADED_MODELS`` backends, ``MAX_ADAPTER_MB`` of adapter weights, least recently used out
first), shared by the Slack bot, ``/v1/chat/completions``, the CLI and the worker's pipeline.
"""

from __future__ import annotations

from sqlalchemy import Engine

from brandvoice.bot.settings import Settings
from brandvoice.inference.backend_cache import BackendCache
from brandvoice.inference.chat import ChatBackend
from brandvoice.inference.factory import make_chat_backend
from brandvoice.inference.openai_chat import OPENAI_BASE_URL
from brandvoice.store.db import session_scope
from brandvoice.store.models import ModelVersion, VersionStatus
from brandvoice.trainer.registry import list_versions, promoted_version

MIB = 1 << 20


def version_key(version: ModelVersion | None) -> tuple[str | None, ...]:
    """What a version is served from, so a candidate and the version it becomes share a backend."""
    if version is None:
        return ("base",)
    if version.hosted_model_id:
        return ("hosted", version.backend, version.hosted_model_id)
    return ("local", version.base_model, version.adapter_path)


class Backends:
    """``Backends(settings).load(version)`` (a ``BackendLoader``), ``generator()``, ``judge()``."""

    def __init__(self, settings: Settings, cache: BackendCache | None = None) -> None:
        self.settings = settings
        self.cache = cache or BackendCache(
            max_backends=settings.max_loaded_models,
            max_adapter_bytes=settings.max_adapter_mb * MIB,
        )

    def load(self, version: ModelVersion | None) -> ChatBackend:
        """The backend that serves ``version`` (None: the base model), loaded once and cached."""
        return self.cache.get(version_key(version), lambda: self._build(version))

    def _build(self, version: ModelVersion | None) -> ChatBackend:
        settings = self.settings
        if version is None:
            return make_chat_backend("local", settings.base_model, device=settings.device)
        if version.hosted_model_id:
            together = version.backend == "together"
            return make_chat_backend(
                "openai",
                version.hosted_model_id,
                base_url=settings.together_base_url if together else self._openai_url,
                api_key=settings.together_api_key if together else settings.openai_api_key,
                timeout=settings.chat_timeout_s,
                concurrency=settings.chat_concurrency,
            )
        return make_chat_backend(
            "local", version.base_model, adapter=version.adapter_path, device=settings.device
        )

    def generator(self) -> ChatBackend:
        """The OpenAI-compatible server when ``OPENAI_BASE_URL`` is set, else the local base."""
        if not self.settings.openai_base_url:
            return self.load(None)
        return self._server_model(self.settings.generator_model)

    def judge(self) -> ChatBackend | None:
        """The pairwise judge, when a judge model on an OpenAI-compatible server is configured."""
        if not self.settings.judge_model:
            return None
        return self._server_model(self.settings.judge_model)

    def promoted(self, engine: Engine) -> ChatBackend | None:
        """The promoted version's backend (adapter or hosted model); None if none is promoted."""
        with session_scope(engine) as session:
            version = promoted_version(session)
        return None if version is None else self.load(version)

    def latest_trained(self, engine: Engine) -> ChatBackend | None:
        """The newest version not discarded (a candidate just trained, or the promoted one): the
        model that already speaks in the voice with the most approved examples behind it; None
        before the first training."""
        with session_scope(engine) as session:
            versions = [v for v in list_versions(session) if v.status != VersionStatus.DISCARDED]
        return self.load(versions[-1]) if versions else None

    @property
    def _openai_url(self) -> str:
        return self.settings.openai_base_url or OPENAI_BASE_URL

    def _server_model(self, model: str) -> ChatBackend:
        settings = self.settings
        return self.cache.get(
            ("server", self._openai_url, model),
            lambda: make_chat_backend(
                "openai",
                model,
                base_url=self._openai_url,
                api_key=settings.openai_api_key,
                timeout=settings.chat_timeout_s,
                concurrency=settings.chat_concurrency,
            ),
        )
