"""Chat through any server that speaks OpenAI's ``/v1/chat/completions``: OpenAI, vLLM, Ollama, llama.cpp.

Opening a request is retried on timeouts, lost connections, 408, 409, 429 and 5xx by the project's
one policy (:mod:`brandvoice.inference.retry`: backoff with jitter, never sooner than
``Retry-After``, within a total deadline); the SDK's own retries are off, so ``max_retries`` bounds
the HTTP requests of one reply at ``max_retries + 1``. A stream that breaks after text arrived is
not retried (the text is already out). What still fails becomes a :class:`ChatBackendError`
carrying the provider's message.

Every request streams (``stream: true`` with ``stream_options.include_usage``): ``stream`` hands the
chunks on as they arrive, and ``complete`` collects the same chunks, so both share one code path.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

import openai

from brandvoice.inference.chat import (
    ChatDelta,
    ChatResult,
    Messages,
    Sampling,
    Usage,
    collect_deltas,
    stream_from_thread,
)
from brandvoice.inference.errors import ChatBackendError, ChatTimeoutError
from brandvoice.inference.retry import (
    RetriesExhausted,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
NO_API_KEY = "no-key"
"""Sent when no key is given: local servers ignore it, and OpenAI answers 401 with a clear message."""

_HINTS = {
    400: "the server rejected the request",
    401: "check the API key",
    403: "the API key may not use this model or endpoint",
    404: "check the model name and the base URL",
    429: "rate limited; lower the concurrency or try later",
}
_RETRYABLE = {408, 409, 429}


class OpenAIChat:
    """A :class:`~brandvoice.inference.chat.ChatBackend` over the official ``openai`` SDK (sync client)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        supports_json: bool = True,
        token_limit_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        """``max_retries``: requests after the first; ``retry``: the waits and total deadline.
        ``token_limit_field``: OpenAI's reasoning models accept only ``max_completion_tokens``,
        while llama.cpp and older servers know only ``max_tokens``."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.model_name = model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry = replace(retry or RetryPolicy(), attempts=max_retries + 1)
        self.concurrency = concurrency
        self.supports_json = supports_json
        self.token_limit_field = token_limit_field
        self.client = openai.OpenAI(
            api_key=api_key or NO_API_KEY,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,
            default_headers=dict(default_headers or {}),
        )

    def request_body(self, messages: Messages, sampling: Sampling) -> dict[str, Any]:
        """The JSON body sent for one conversation (public so callers can log or test it)."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [dict(message) for message in messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            self.token_limit_field: sampling.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.json_output:
            body["response_format"] = {"type": "json_object"}
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        return body

    def stream(
        self, messages: Messages, sampling: Sampling | None = None
    ) -> AsyncIterator[ChatDelta]:
        chosen = sampling or Sampling()
        return stream_from_thread(lambda stop: self._deltas(messages, chosen, stop))

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        deltas = self._deltas(messages, sampling or Sampling(), threading.Event())
        return collect_deltas(deltas, self.model_name)

    def _deltas(
        self, messages: Messages, sampling: Sampling, stop: threading.Event
    ) -> Iterator[ChatDelta]:
        """The server's chunks as deltas, then one with the finish reason and the counts."""
        chunks = self._open(self.request_body(messages, sampling))
        parts: list[str] = []
        model, finish_reason, usage, answered = self.model_name, None, None, False
        with chunks, self._errors_as_ours():
            for chunk in chunks:
                if stop.is_set():
                    return
                model = chunk.model or model
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    answered = True
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta and choice.delta.content:
                        parts.append(choice.delta.content)
                        yield ChatDelta(choice.delta.content, model=model)
        if not answered:
            raise ChatBackendError(
                f"{self.base_url} returned no choices for model {self.model_name!r}"
            )
        yield ChatDelta("", finish_reason, _usage(usage, messages, "".join(parts)), model)

    def _open(self, body: dict[str, Any]) -> Any:
        """The request's stream, opened under the retry policy."""

        def once() -> Any:
            with self._errors_as_ours():
                return self.client.chat.completions.create(**body)

        try:
            return call_with_retries(
                once,
                self.retry,
                transient=lambda exc: isinstance(exc, ChatBackendError) and exc.retryable,
                retry_after=lambda exc: getattr(exc, "retry_after", None),
            )
        except RetriesExhausted as exc:
            raise _after_retries(exc) from exc.last.__cause__

    @contextmanager
    def _errors_as_ours(self) -> Iterator[None]:
        """The SDK's exceptions as :class:`ChatBackendError` (``retryable`` when passing)."""
        try:
            yield
        except openai.APITimeoutError as exc:
            raise ChatTimeoutError(
                f"no reply from {self.base_url} (model {self.model_name!r}) within "
                f"{self.timeout:g} s"
            ) from exc
        except openai.APIConnectionError as exc:
            raise ChatBackendError(
                f"cannot reach {self.base_url} (model {self.model_name!r}): {exc.__cause__ or exc}",
                retryable=True,
            ) from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except openai.APIError as exc:  # e.g. a reply that is not a chat completion
            raise ChatBackendError(
                f"unexpected reply from {self.base_url} (model {self.model_name!r}): {exc}"
            ) from exc

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        """Replies in input order, at most ``concurrency`` requests in flight; the first error wins."""
        if not conversations:
            return []
        workers = min(self.concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-chat") as pool:
            futures = [pool.submit(self.complete, messages, sampling) for messages in conversations]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f in done and f.exception()), None)
            if failed is not None:
                for future in futures:
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]
            return [future.result() for future in futures]

    def _status_error(self, exc: openai.APIStatusError) -> ChatBackendError:
        status = exc.status_code
        provider_message = _provider_message(exc)
        hint = _HINTS.get(status, "server error" if status >= 500 else "")
        code = f" ({exc.code})" if exc.code else ""
        return ChatBackendError(
            f"{self.base_url} answered {status}{code} for model {self.model_name!r}: "
            f"{provider_message}" + (f" — {hint}" if hint else ""),
            status_code=status,
            provider_message=provider_message,
            retryable=status in _RETRYABLE or status >= 500,
            retry_after=parse_retry_after(exc.response.headers),
        )


def _after_retries(exhausted: RetriesExhausted) -> ChatBackendError:
    """The last error, its message saying how many requests were made over how long."""
    last = exhausted.last
    assert isinstance(last, ChatBackendError)
    if exhausted.attempts > 1:
        last.args = (f"{last} ({exhausted.attempts} requests over {exhausted.elapsed_s:.0f} s)",)
    return last


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message


def _usage(usage: Any, messages: Messages, text: str) -> Usage:
    """The server's counts; an estimate with tiktoken when a server leaves them out."""
    if usage is not None and usage.prompt_tokens is not None:
        return Usage(usage.prompt_tokens, usage.completion_tokens or 0)
    from brandvoice.inference.tokens import count_chat_tokens, count_text_tokens

    return Usage(count_chat_tokens(messages), count_text_tokens(text))
