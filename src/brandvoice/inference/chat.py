"""The one interface everything uses to make a model speak: replies, generation and judging.

Backends: ``OpenAIChat`` (any OpenAI-compatible server) and ``LocalChat`` (transformers + peft).
Each produces a reply as a stream of :class:`ChatDelta` pieces: ``stream`` hands them to async
callers as they are generated, and ``complete`` is the same stream collected, so a streamed and a
plain reply cannot drift apart.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
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
    stop: tuple[str, ...] = ()
    """Strings that end the output (not included in it): how a completion-style prompt says
    "one item, then stop" to a model too small to follow an instruction."""


@dataclass(frozen=True)
class ChatDelta:
    """A piece of a reply as it is generated; the last piece says how the reply ended."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    """Token counts, on the last piece only."""
    model: str = ""


DeltaProducer = Callable[[threading.Event], Iterator[ChatDelta]]
"""A blocking generator of deltas that stops early once the event is set."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def collect_deltas(deltas: Iterable[ChatDelta], model: str = "") -> ChatResult:
    """The reply a stream adds up to: its text without surrounding whitespace, its last counts."""
    parts: list[str] = []
    usage, finish_reason = Usage(), None
    for delta in deltas:
        parts.append(delta.text)
        model = delta.model or model
        usage = delta.usage or usage
        finish_reason = delta.finish_reason or finish_reason
    return ChatResult("".join(parts).strip(), usage, model, finish_reason)


async def stream_from_thread(produce: DeltaProducer) -> AsyncIterator[ChatDelta]:
    """Run a blocking producer on a worker thread and yield its deltas without blocking the loop.

    When the consumer stops early (it breaks out, is cancelled, or its client hung up), the
    producer's stop event is set so the model stops generating instead of finishing unheard.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    reader_gone = threading.Event()

    def post(kind: str, item: Any) -> None:
        if reader_gone.is_set():
            return  # its loop may be closed already
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
        except RuntimeError:  # the loop closed between the check and the call
            reader_gone.set()
            stop.set()

    def run() -> None:
        try:
            for delta in produce(stop):
                post("delta", delta)
                if reader_gone.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, who raises it
            post("error", exc)
        else:
            post("end", None)

    worker = threading.Thread(target=run, name="chat-stream", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = await queue.get()
            if kind == "delta":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        reader_gone.set()
        stop.set()


@runtime_checkable
class ChatBackend(Protocol):
    model_name: str
    supports_json: bool
    """Whether the backend can be asked for JSON (structured output) reliably."""

    def stream(
        self, messages: Messages, sampling: Sampling | None = None
    ) -> AsyncIterator[ChatDelta]:
        """One reply, piece by piece as it is generated; stopping early stops generation."""
        ...

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        """One reply to one conversation: the same stream, collected."""
        ...

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        """Replies to many conversations, in order, with the backend's bounded concurrency."""
        ...


@runtime_checkable
class CompletionBackend(Protocol):
    """A backend that also continues raw text (no chat template): few-shot prompts for a model
    that is too small to follow instructions but continues a pattern well."""

    model_name: str

    def complete_text_batch(
        self, prompts: Sequence[str], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        """Continuations of each prompt, in order, up to a stop string or ``max_tokens``."""
        ...
