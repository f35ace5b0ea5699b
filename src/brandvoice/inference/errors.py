"""The one error type chat backends raise, so callers (and the CLI) never see provider tracebacks."""

from __future__ import annotations


class ChatBackendError(RuntimeError):
    """A model could not answer: final provider errors, exhausted retries, timeouts, bad adapters.

    ``status_code`` is the HTTP status when a server answered; ``retryable`` tells a scheduler
    whether trying again later may help (rate limits, server errors, timeouts); ``retry_after``
    is how long the server asked to wait first, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider_message: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.provider_message = provider_message
        self.retryable = retryable
        self.retry_after = retry_after


class ChatTimeoutError(ChatBackendError):
    """No answer within the configured timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
