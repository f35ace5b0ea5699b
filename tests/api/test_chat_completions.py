"""The OpenAI-compatible endpoint driven by the real ``openai`` SDK, answering with SmolLM2."""

from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.inference.local_chat import LocalChat
from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction

TOKEN = "s3cret-token"


@pytest.fixture
def sdk(engine, tmp_path) -> openai.OpenAI:
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=lambda version: LocalChat())
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=TOKEN, http_client=TestClient(app)
    )


def test_completion_answers_with_the_base_model_and_records_the_interaction(sdk, engine):
    completion = sdk.chat.completions.create(
        model="brandvoice",
        messages=[{"role": "user", "content": "Say hello to our new members."}],
        temperature=0,
        max_tokens=12,
    )
    text = completion.choices[0].message.content
    assert text and completion.model == "base"
    assert 0 < completion.usage.completion_tokens <= 12
    with session_scope(engine) as session:
        (interaction,) = session.exec(select(Interaction)).all()
    assert interaction.channel == "api" and interaction.reply == text
    assert interaction.prompt_messages[-1]["content"] == "Say hello to our new members."
    assert interaction.model_version_id is None


def test_streaming_yields_the_same_text_as_a_plain_completion(sdk):
    request = {
        "model": "brandvoice",
        "messages": [{"role": "user", "content": "Name one hiking essential."}],
        "temperature": 0,
        "max_tokens": 10,
    }
    plain = sdk.chat.completions.create(**request).choices[0].message.content
    chunks = list(sdk.chat.completions.create(**request, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_a_wrong_key_is_refused_by_the_sdk(engine, tmp_path):
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=lambda version: LocalChat())
    client = openai.OpenAI(
        base_url="http://testserver/v1", api_key="wrong", http_client=TestClient(app)
    )
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
