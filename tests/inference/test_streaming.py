"""Replies as streams: pieces arrive as they are generated, and a reader who leaves stops the model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from brandvoice.inference import OpenAIChat, Sampling
from brandvoice.inference.chat import ChatDelta, Usage, collect_deltas, stream_from_thread
from tests.fakes import FakeOpenAIServer, FakeResponse, chat_completion

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_openai_stream_yields_the_servers_chunks_then_the_counts(openai_server):
    openai_server.script(
        "POST",
        "/v1/chat/completions",
        FakeResponse(200, chat_completion("It ships today.", prompt_tokens=7)),
    )
    chat = OpenAIChat("m", base_url=openai_server.base_url, max_retries=0)

    deltas = [delta async for delta in chat.stream(MESSAGES, Sampling(max_tokens=20))]

    assert [d.text for d in deltas] == ["It", " ships", " today.", ""]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == Usage(7, 3)
    (request,) = openai_server.requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


async def test_openai_stream_and_complete_agree(openai_server: FakeOpenAIServer):
    chat = OpenAIChat("m", base_url=openai_server.base_url, max_retries=0)

    streamed = collect_deltas([d async for d in chat.stream(MESSAGES)], "m")
    plain = chat.complete(MESSAGES)

    assert streamed == plain
    assert plain.text == "echo: Where is my order?"


async def test_a_reader_that_leaves_stops_the_producer():
    produced: list[int] = []
    finished = threading.Event()

    def endless(stop: threading.Event) -> Iterator[ChatDelta]:
        try:
            count = 0
            while not stop.is_set():
                count += 1
                produced.append(count)
                yield ChatDelta(f"{count} ")
                time.sleep(0.01)
        finally:
            finished.set()

    async with aclosing(stream_from_thread(endless)) as deltas:
        async for delta in deltas:
            if delta.text == "3 ":
                break

    assert await asyncio.to_thread(finished.wait, 5)
    assert len(produced) < 50


async def test_a_producer_error_reaches_the_reader():
    def failing(stop: threading.Event) -> Iterator[ChatDelta]:
        yield ChatDelta("Hel")
        raise RuntimeError("model crashed")

    seen: list[str] = []
    with pytest.raises(RuntimeError, match="model crashed"):
        async for delta in stream_from_thread(failing):
            seen.append(delta.text)
    assert seen == ["Hel"]


async def test_a_producer_that_sets_its_own_stop_event_still_delivers_its_last_delta():
    def tidy(stop: threading.Event) -> Iterator[ChatDelta]:
        yield ChatDelta("Done")
        stop.set()  # e.g. cleaning up its own generation
        yield ChatDelta("", "stop", Usage(1, 1))

    deltas = await asyncio.wait_for(_all(stream_from_thread(tidy)), 5)
    assert [d.text for d in deltas] == ["Done", ""]
    assert deltas[-1].finish_reason == "stop"


async def _all(deltas) -> list[ChatDelta]:  # type: ignore[no-untyped-def]
    return [delta async for delta in deltas]
