"""REDACT_ALLOW on the OpenAI-compatible endpoint: recorded interactions keep allowed values."""

from __future__ import annotations

import openai
from fastapi.testclient import TestClient
from sqlmodel import select

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction
from tests.slack.conftest import ScriptedModel

TOKEN = "s3cret-token"


def test_recorded_interactions_keep_the_allowed_contact_points(engine, tmp_path):
    model = ScriptedModel()
    model.next_reply = "Call +1 415 555 0100 or mail help@acme.example; Ana is ana@gmail.com."
    settings = Settings(
        api_token=TOKEN,
        artifacts_dir=tmp_path,
        redact_allow="acme.example,+14155550100",
        _env_file=None,
    )
    app = create_app(settings, engine, backend_loader=lambda version: model)
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=TOKEN, http_client=TestClient(app))
    sdk.chat.completions.create(
        model="brandvoice",
        messages=[{"role": "user", "content": "I'm bob@example.org, who do I call?"}],
    )
    with session_scope(engine) as session:
        (interaction,) = session.exec(select(Interaction)).all()
    assert interaction.prompt_messages[-1]["content"] == "I'm <EMAIL>, who do I call?"
    assert interaction.reply == ("Call +1 415 555 0100 or mail help@acme.example; Ana is <EMAIL>.")
