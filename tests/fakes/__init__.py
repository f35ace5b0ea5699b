"""Loopback fakes of the services brandvoice talks to, speaking their real wire formats.

Fixtures here are re-exported by the conftest of each test folder that needs them
(``from tests.fakes import openai_server``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import (
    FakeOpenAIServer,
    FakeResponse,
    RecordedRequest,
    chat_completion,
    openai_error,
)

__all__ = [
    "FakeOpenAIServer",
    "FakeResponse",
    "RecordedRequest",
    "chat_completion",
    "openai_error",
    "openai_server",
]


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fresh fake OpenAI server per test, on a random loopback port."""
    with FakeOpenAIServer() as server:
        yield server
