"""Which model answers: the promoted version from the registry, read for every reply.

``promoted_model_provider`` builds a :data:`~brandvoice.bot.slack.deps.ChatProvider` from a
loader (version -> backend, :meth:`brandvoice.bot.backends.Backends.load` in production, which
keeps loaded models cached), so a promotion (from Slack, the CLI or the API) takes effect on the
next reply.
"""

from __future__ import annotations

from sqlalchemy import Engine

from brandvoice.bot.slack.deps import ActiveModel, ChatProvider
from brandvoice.inference.backend_cache import BackendLoader
from brandvoice.store.db import session_scope
from brandvoice.trainer.registry import promoted_version


def promoted_model_provider(engine: Engine, load: BackendLoader) -> ChatProvider:
    def provide() -> ActiveModel:
        with session_scope(engine) as session:
            version = promoted_version(session)
        if version is None:
            return ActiveModel(load(None))
        return ActiveModel(load(version), version.name, version.id)

    return provide
