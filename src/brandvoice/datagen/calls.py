"""Model calls for generation: bounded concurrency, and retries with backoff for passing failures.

Each candidate has its own seed, so calls go one conversation at a time through ``complete``; a
thread pool keeps at most ``concurrency`` of them in flight (a local backend serializes them
itself). A retryable failure (rate limit, timeout, server error) is retried with exponential
backoff and jitter; what still fails comes back as the exception, for the caller to count. A
failure that retrying cannot fix (a bad key, a missing model) stops the run at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from brandvoice.inference.chat import ChatBackend, ChatResult, Messages, Sampling
from brandvoice.inference.errors import ChatBackendError


class GenerationAborted(RuntimeError):
    """A backend failure that retrying will not fix; the message says which backend and why."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: float = 1.0
    """First wait; doubled after every failed attempt, with up to 25% jitter."""
    max_backoff_s: float = 30.0


@dataclass(frozen=True)
class Call:
    messages: Messages
    sampling: Sampling


def complete_with_retries(
    backend: ChatBackend,
    call: Call,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> ChatResult:
    for attempt in range(1, policy.attempts + 1):
        try:
            return backend.complete(call.messages, call.sampling)
        except ChatBackendError as exc:
            if not exc.retryable:
                raise GenerationAborted(f"{backend.model_name}: {exc}") from exc
            if attempt == policy.attempts:
                raise
            wait = min(policy.backoff_s * 2 ** (attempt - 1), policy.max_backoff_s)
            sleep(wait * (1 + random.random() / 4))
    raise AssertionError("unreachable")


def run_calls(
    backend: ChatBackend, calls: Sequence[Call], concurrency: int, policy: RetryPolicy
) -> list[ChatResult | ChatBackendError]:
    """Results in input order; a call that failed after its retries is its error."""
    if not calls:
        return []

    def one(call: Call) -> ChatResult | ChatBackendError:
        try:
            return complete_with_retries(backend, call, policy)
        except GenerationAborted:
            raise
        except ChatBackendError as exc:
            return exc

    if concurrency <= 1 or len(calls) == 1:
        return [one(call) for call in calls]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(calls))) as pool:
        return list(pool.map(one, calls))
