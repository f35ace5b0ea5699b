"""One retry policy for every call that crosses a network: chat servers and hosted fine-tuning.

A transient failure (rate limit, timeout, lost connection, server error) is tried again after an
exponential backoff with jitter, never sooner than the server's ``Retry-After``, and only while
the total deadline allows: a retry that could not start before the deadline (or whose
``Retry-After`` reaches past it) is not made, and :class:`RetriesExhausted` carries the last
error. The SDKs' own retries are off wherever this is used, so a call makes at most
``attempts`` HTTP requests. The loop is tenacity's; time comes from the injected ``clock`` and
``sleep``, so tests can let hours pass instantly.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int | None = 5
    """Requests in all, the first included; None: as many as the deadline allows."""
    initial_wait_s: float = 0.5
    """First backoff; doubled after every failure, up to ``max_wait_s``."""
    max_wait_s: float = 30.0
    deadline_s: float = 120.0
    """No retry starts later than this after the first attempt began."""
    jitter: float = 0.25
    """Up to this fraction is added at random to each backoff (never to a ``Retry-After``)."""

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.deadline_s < 0 or self.initial_wait_s < 0:
            raise ValueError("retry waits and deadline must not be negative")


class RetriesExhausted(Exception):
    """The last transient error, after the policy stopped retrying it."""

    def __init__(self, last: BaseException, attempts: int, elapsed_s: float) -> None:
        super().__init__(f"{last} (gave up after {attempts} attempt(s) over {elapsed_s:.0f} s)")
        self.last, self.attempts, self.elapsed_s = last, attempts, elapsed_s


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    transient: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = lambda exc: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, retried by ``policy`` while ``transient(error)``; other errors propagate as
    they are. Raises :class:`RetriesExhausted` when a transient error is not retried again."""
    started = clock()
    plans: dict[int, float | None] = {}

    def plan(state: tenacity.RetryCallState) -> float | None:
        """The wait before the next attempt, or None to stop (decided once per attempt)."""
        number = state.attempt_number
        if number not in plans:
            error = state.outcome.exception() if state.outcome else None
            plans[number] = _next_wait(policy, number, clock() - started, error, retry_after)
        return plans[number]

    def announce(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s; retrying in %.1f s (attempt %d failed)", error, plan(state), state.attempt_number
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(transient),
        stop=lambda state: plan(state) is None,
        wait=lambda state: plan(state) or 0.0,
        before_sleep=announce,
        sleep=sleep,
        reraise=False,
    )
    try:
        return retrying(call)
    except tenacity.RetryError as exc:
        last = exc.last_attempt.exception()
        assert last is not None
        raise RetriesExhausted(last, exc.last_attempt.attempt_number, clock() - started) from last


def _next_wait(
    policy: RetryPolicy,
    attempt: int,
    elapsed: float,
    error: BaseException | None,
    retry_after: Callable[[BaseException], float | None],
) -> float | None:
    if policy.attempts is not None and attempt >= policy.attempts:
        return None
    remaining = policy.deadline_s - elapsed
    asked = retry_after(error) if error is not None else None
    if remaining <= 0 or (asked is not None and asked > remaining):
        return None
    backoff = min(policy.initial_wait_s * 2 ** (attempt - 1), policy.max_wait_s)
    backoff *= 1 + random.random() * policy.jitter
    return max(min(backoff, remaining), asked or 0.0)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, ``retry-after`` seconds or date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
