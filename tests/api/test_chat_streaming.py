"""``/v1/chat/completions`` with ``stream: true`` over real HTTP: chunks leave as the model writes
them, usage comes last when asked, and a client that hangs up stops the model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import openai
import pytest
import uvicorn
from sqlmodel import select

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.inference.chat import (
    ChatDelta,
    ChatResult,
    Messages,
    Sampling,
    Usage,
    collect_deltas,
    stream_from_thread,
)
from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction

TOKEN = "s3cret-token"
QUESTION = [{"role": "user", "content": "Say hello."}]


class PacedModel:
    """A backend whose words come ``gap`` seconds apart, and which notes when it was stopped."""

    model_name = "paced"
    supports_json = False

    def __init__(self, words: int, gap: float) -> None:
        self.words, self.gap = words, gap
        self.produced = 0
        self.stopped = threading.Event()
        self.first_word_sent = threading.Event()
        self.release = threading.Event()
        """The second word waits for this, so a test can see the first arrive alone."""

    def _produce(self, stop: threading.Event) -> Iterator[ChatDelta]:
        for index in range(self.words):
            if stop.is_set():
                self.stopped.set()
                return
            if index == 1:
                self.release.wait(10)
            self.produced += 1
            yield ChatDelta(f"w{index} " if index < self.words - 1 else f"w{index}")
            if index == 0:
                self.first_word_sent.set()
            time.sleep(self.gap)
        yield ChatDelta("", "stop", Usage(5, self.words), self.model_name)

    def stream(
        self, messages: Messages, sampling: Sampling | None = None
    ) -> AsyncIterator[ChatDelta]:
        return stream_from_thread(self._produce)

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        return collect_deltas(self._produce(threading.Event()), self.model_name)

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        return [self.complete(c, sampling) for c in conversations]


def serve(app: Any) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web app did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def model() -> PacedModel:
    return PacedModel(words=6, gap=0.0)


@pytest.fixture
def sdk(engine, tmp_path, model) -> Iterator[openai.OpenAI]:
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=lambda version: model)
    for base_url in serve(app):
        yield openai.OpenAI(base_url=base_url, api_key=TOKEN, max_retries=0)


def test_the_first_chunk_arrives_before_the_model_has_finished(sdk, model, engine):
    stream = sdk.chat.completions.create(model="brandvoice", messages=QUESTION, stream=True)
    chunks = iter(stream)
    first = next(chunks)
    assert first.choices[0].delta.role == "assistant"
    content = next(chunks)
    # The model is held after its first word until we release it: this chunk came alone.
    assert content.choices[0].delta.content == "w0 "
    assert model.produced == 1
    model.release.set()
    rest = list(chunks)
    text = "w0 " + "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5"
    assert rest[-1].choices[0].finish_reason == "stop"
    assert rest[-1].usage is None
    with session_scope(engine) as session:
        (interaction,) = session.exec(select(Interaction)).all()
    assert interaction.reply == text


def test_usage_comes_in_a_last_chunk_when_asked(sdk, model):
    model.release.set()
    chunks = list(
        sdk.chat.completions.create(
            model="brandvoice",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 6)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_a_client_that_hangs_up_stops_the_model_and_nothing_is_recorded(engine, tmp_path):
    model = PacedModel(words=400, gap=0.02)  # 8 s if nobody stopped it
    model.release.set()
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=lambda version: model)
    for base_url in serve(app):
        client = openai.OpenAI(base_url=base_url, api_key=TOKEN, max_retries=0)
        stream = client.chat.completions.create(model="brandvoice", messages=QUESTION, stream=True)
        for index, _ in enumerate(stream):
            if index == 3:
                break
        stream.close()
        assert model.stopped.wait(5), "the model kept generating for a client that left"
        assert model.produced < 400
        time.sleep(0.3)
    with session_scope(engine) as session:
        assert session.exec(select(Interaction)).all() == []
