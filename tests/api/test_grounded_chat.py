"""``/v1/chat/completions`` with team knowledge, driven by the real ``openai`` SDK: the prompt
carries what was retrieved, the response names it in an extra ``brandvoice`` field (plain and
streamed), and the interaction records it."""

from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from brandvoice.bot.knowledge import KnowledgeService, add_documents, read_documents
from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.inference.retrieval import CONTEXT_HEADER
from brandvoice.samples import sample_knowledge_paths
from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction
from tests.slack.conftest import ScriptedModel

TOKEN = "s3cret-token"
FILES = sample_knowledge_paths()
QUESTION = "How many days do I have to return something?"


@pytest.fixture
def known(engine, minilm, tmp_path) -> None:
    settings = Settings(redact_allow="pebbleandpine.example", _env_file=None)
    add_documents(engine, read_documents(FILES, settings), minilm)


def client(engine, tmp_path, model, minilm, **overrides) -> openai.OpenAI:
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None, **overrides)
    app = create_app(
        settings,
        engine,
        backend_loader=lambda version: model,
        knowledge=KnowledgeService(settings, embed=minilm),
    )
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=TOKEN, http_client=TestClient(app)
    )


def recorded(engine) -> list[Interaction]:
    with session_scope(engine) as session:
        return list(session.exec(select(Interaction).order_by(Interaction.id)))


def test_a_completion_is_grounded_and_names_its_sources(engine, tmp_path, minilm, known):
    model = ScriptedModel()
    sdk = client(engine, tmp_path, model, minilm)
    completion = sdk.chat.completions.create(
        model="brandvoice", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.choices[0].message.content.startswith("Happy to help")
    sources = completion.model_extra["brandvoice"]["sources"]
    assert sources and sources[0]["label"] == "Policies › Returns"
    assert "60 days" in sources[0]["snippet"]
    assert {"kind", "id", "title", "score", "label", "snippet"} == set(sources[0])

    [conversation] = model.conversations
    assert conversation[1]["role"] == "system"
    assert conversation[1]["content"].startswith(CONTEXT_HEADER)
    assert conversation[-1] == {"role": "user", "content": QUESTION}

    [interaction] = recorded(engine)
    assert [m["role"] for m in interaction.prompt_messages] == ["system", "user"]
    assert interaction.retrieved == [
        {k: s[k] for k in ("kind", "id", "title", "score")} for s in sources
    ]


def test_a_stream_names_its_sources_in_its_first_chunk(engine, tmp_path, minilm, known):
    model = ScriptedModel()
    sdk = client(engine, tmp_path, model, minilm)
    chunks = list(
        sdk.chat.completions.create(
            model="brandvoice", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    sources = chunks[0].model_extra["brandvoice"]["sources"]
    assert sources[0]["label"] == "Policies › Returns"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Happy to help")
    [interaction] = recorded(engine)
    assert [hit["id"] for hit in interaction.retrieved] == [s["id"] for s in sources]


def test_with_knowledge_off_the_prompt_is_unchanged(engine, tmp_path, minilm, known):
    model = ScriptedModel()
    sdk = client(engine, tmp_path, model, minilm, knowledge_enabled=False)
    completion = sdk.chat.completions.create(
        model="brandvoice", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.model_extra["brandvoice"] == {"sources": []}
    settings = Settings(_env_file=None)
    assert model.conversations == [
        [
            {"role": "system", "content": settings.system_prompt},
            {"role": "user", "content": QUESTION},
        ]
    ]
    [interaction] = recorded(engine)
    assert interaction.retrieved is None
