"""What the Slack listeners need, built once when the app is built and passed to every listener."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlmodel import Session

from brandvoice.bot.knowledge import KnowledgeService
from brandvoice.bot.settings import Settings
from brandvoice.bot.slack.auth import CuratorAuth
from brandvoice.inference.chat import ChatBackend
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.db import session_scope
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.redact import Redactor

T = TypeVar("T")


@dataclass(frozen=True)
class ActiveModel:
    """The model that answers right now: its backend and the registry version it serves."""

    backend: ChatBackend
    version_name: str | None = None
    """None when no version is promoted and the base model answers."""
    version_id: int | None = None

    @property
    def label(self) -> str:
        return self.version_name or "base model"


ChatProvider = Callable[[], ActiveModel]
"""Called for every reply (in a worker thread), so a promotion takes effect on the next message."""


@dataclass
class SlackDeps:
    settings: Settings
    engine: Engine
    client: AsyncWebClient
    chat_provider: ChatProvider
    auth: CuratorAuth
    count_tokens: TokenCounter = count_chat_tokens_batch
    redactor: Redactor = field(default_factory=Redactor)
    knowledge: KnowledgeService | None = None
    """What replies retrieve from; None answers without team knowledge."""

    async def in_session(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction on a worker thread, keeping the event loop free."""

        def run() -> T:
            with session_scope(self.engine) as session:
                return work(session)

        return await asyncio.to_thread(run)
