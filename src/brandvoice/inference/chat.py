"""The one interface everything uses to make a model speak: replies, generation and judging.

Backends: ``OpenAIChat`` (any OpenAI-compatible server) and ``LocalChat`` (transformers + peft).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Messages = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None


@dataclass(frozen=True)
class Sampling:
    """How to sample; ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.7
    max_tokens: int = 256
    top_p: float = 1.0
    seed: int | None = None
    json_output: bool = False


@runtime_checkable
class ChatBackend(Protocol):
    model_name: str
    supports_json: bool
    """Whether the backend can be asked for JSON (structured output) reliably."""

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        """One reply to one conversation."""
        ...

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        """Replies to many conversations, in order, with the backend's bounded concurrency."""
        ...
