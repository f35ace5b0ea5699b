"""Model calls for generation: bounded concurrency, one call per candidate.

Each candidate has its own seed, so calls go one conversation at a time through ``complete``; a
thread pool keeps at most ``concurrency`` of them in flight (a local backend serializes them
itself). Passing failures are already retried inside the backend by the project's one retry
policy (:mod:`brandvoice.inference.retry`); what still fails comes back as the exception, for the
caller to count and the next run to try again. A failure that retrying cannot fix (a bad key, a
missing model) stops the run at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from brandvoice.inference.chat import ChatBackend, ChatResult, Messages, Sampling
from brandvoice.inference.errors import ChatBackendError


class GenerationAborted(RuntimeError):
    """A backend failure that retrying will not fix; the message says which backend and why."""


@dataclass(frozen=True)
class Call:
    messages: Messages
    sampling: Sampling


def run_calls(
    backend: ChatBackend, calls: Sequence[Call], concurrency: int
) -> list[ChatResult | ChatBackendError]:
    """Results in input order; a call that still failed after the backend's retries is its error."""
    if not calls:
        return []

    def one(call: Call) -> ChatResult | ChatBackendError:
        try:
            return backend.complete(call.messages, call.sampling)
        except ChatBackendError as exc:
            if not exc.retryable:
                raise GenerationAborted(f"{backend.model_name}: {exc}") from exc
            return exc

    if concurrency <= 1 or len(calls) == 1:
        return [one(call) for call in calls]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(calls))) as pool:
        return list(pool.map(one, calls))
