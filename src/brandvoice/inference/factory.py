"""Build the configured chat backend from plain arguments (the bot's settings pass them in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from brandvoice.inference.base_model import DEFAULT_BASE_MODEL
from brandvoice.inference.chat import ChatBackend

BACKENDS = ("local", "openai")


def make_chat_backend(
    backend: Literal["local", "openai"] = "local",
    model: str | None = None,
    *,
    adapter: str | Path | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    max_retries: int = 4,
    concurrency: int = 8,
    device: str | None = None,
    batch_size: int | None = None,
    **options: Any,
) -> ChatBackend:
    """``local``: ``model`` is a base (default SmolLM2) with an optional ``adapter`` directory.
    ``openai``: ``model`` is the server's model id, ``base_url`` any OpenAI-compatible server."""
    if backend == "local":
        from brandvoice.inference.local_chat import GENERATION_BATCH, LocalChat

        return LocalChat(
            model or DEFAULT_BASE_MODEL,
            adapter,
            device=device,
            batch_size=batch_size or GENERATION_BATCH,
            **options,
        )
    if backend == "openai":
        if not model:
            raise ValueError("the openai chat backend needs a model id (e.g. 'gpt-4o-mini')")
        if adapter is not None:
            raise ValueError("adapters apply to the local backend; a hosted model has its own id")
        from brandvoice.inference.openai_chat import OPENAI_BASE_URL, OpenAIChat

        return OpenAIChat(
            model,
            base_url=base_url or OPENAI_BASE_URL,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            concurrency=concurrency,
            **options,
        )
    raise ValueError(f"unknown chat backend {backend!r}; choose one of {', '.join(BACKENDS)}")
