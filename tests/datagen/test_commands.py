"""The plain functions behind ``brandvoice generate`` and ``brandvoice guidelines set|show``."""

from __future__ import annotations

import pytest
from rich.console import Console

from brandvoice.bot.cli.generate import run_generate, set_guidelines_from_file, show_guidelines
from brandvoice.inference.openai_chat import OpenAIChat
from brandvoice.store.candidates import CandidateVerdict, list_candidates
from brandvoice.store.db import session_scope
from tests.datagen.brand import ANSWERS, SYSTEM, FakeWriter
from tests.fakes import FakeResponse, chat_completion


def test_generate_prints_a_summary_table_by_reason(
    engine, seeded, openai_server, embed, count_tokens
):
    openai_server.add_route("POST", "/v1/chat/completions", FakeWriter())
    openai_server.script("POST", "/v1/chat/completions", FakeResponse(200, chat_completion("{")))
    console = Console(record=True, width=200)
    backend = OpenAIChat("fake-generator", base_url=openai_server.base_url, api_key="sk-test")

    summary = run_generate(
        engine,
        backend,
        embed,
        per_example=1,
        strategies=["paraphrase"],
        count_tokens=count_tokens,
        concurrency=1,
        console=console,
    )

    assert (summary.generated, summary.kept) == (4, 3)
    text = console.export_text()
    assert "generation summary" in text
    assert "kept" in text and "75%" in text
    assert "dropped: parse error" in text and "parse failure, generator: invalid json" in text
    assert "generator fake-generator" in text
    assert "kept variations (3), beside their parents" in text
    # the parent's request and its kept paraphrase, side by side
    assert "How warm is the Fernhollow 20 sleeping bag really?" in text
    assert "What temperature is the Fernhollow 20 bag actually comfortable at?" in text


def test_guidelines_are_set_from_a_file_and_shown(engine, tmp_path):
    assert show_guidelines(engine) is None
    path = tmp_path / "voice.md"
    path.write_text("  Be warm and brief. Sign off with 'Happy trails!'  \n")
    assert set_guidelines_from_file(engine, path, actor="U1") == (
        "Be warm and brief. Sign off with 'Happy trails!'"
    )
    assert show_guidelines(engine) == "Be warm and brief. Sign off with 'Happy trails!'"

    path.write_text("   \n")
    with pytest.raises(ValueError, match="guidelines are empty"):
        set_guidelines_from_file(engine, path)
    with pytest.raises(ValueError, match=r"cannot read guidelines file .*missing\.md"):
        set_guidelines_from_file(engine, tmp_path / "missing.md")


INVENTED_HOURS = {
    "clinic": ANSWERS["clinic"].replace("this Saturday.", "this Saturday from 10 to 2.")
}
"""A writer that invents the clinic's hours, which no source states."""


class Quiet:
    def progress(self, fraction, stage=None, metrics=None) -> None:
        pass


def server_settings(openai_server, artifacts):  # type: ignore[no-untyped-def]
    """Settings with the loopback server as the generator."""
    from brandvoice.bot.settings import Settings

    return Settings(
        openai_base_url=openai_server.base_url,
        openai_api_key="sk-test",
        generator_model="fake-generator",
        artifacts_dir=artifacts,
        _env_file=None,
    )


def test_the_retrain_pipeline_step_generates_with_the_configured_server(
    engine, seeded, openai_server, tmp_path
):
    from brandvoice.bot.backends import Backends
    from brandvoice.bot.generation import pipeline_generate_step

    openai_server.add_route("POST", "/v1/chat/completions", FakeWriter(INVENTED_HOURS))
    settings = server_settings(openai_server, tmp_path)
    reported: list[tuple[float, str | None]] = []

    class Recorder:
        def progress(self, fraction, stage=None, metrics=None) -> None:
            reported.append((fraction, stage))

    result = pipeline_generate_step(Backends(settings))(engine, Recorder())

    assert (result["generated"], result["kept"]) == (12, 11)
    assert result["generator_model"] == "fake-generator"
    assert reported and reported[-1] == (pytest.approx(0.25), "generate")
    assert all(0.05 <= fraction <= 0.25 for fraction, _ in reported)
    with session_scope(engine) as session:
        (dropped,) = list_candidates(session, verdict=CandidateVerdict.DROP)
    assert dropped.reason == "claims" and "'10'" in dropped.detail
    assert "repair clinic this Saturday from 10 to 2" in dropped.messages[-1]["content"]


def test_a_synthetic_reply_may_state_what_the_knowledge_says(
    engine, seeded, openai_server, embed, tmp_path
):
    """The claims filter reads the team's knowledge: the clinic's hours, invented in the test
    above, are a fact here."""
    from brandvoice.bot.backends import Backends
    from brandvoice.bot.generation import pipeline_generate_step
    from brandvoice.bot.knowledge import add_documents, read_documents

    openai_server.add_route("POST", "/v1/chat/completions", FakeWriter(INVENTED_HOURS))
    settings = server_settings(openai_server, tmp_path)
    doc = tmp_path / "events.md"
    doc.write_text("# Events\n\nOur fall repair clinic runs on Saturday from 10 to 2.\n")
    add_documents(engine, read_documents([doc], settings), embed, "test")

    result = pipeline_generate_step(Backends(settings))(engine, Quiet())

    assert (result["generated"], result["kept"]) == (12, 12)


def test_the_voice_model_answers_new_requests_with_the_knowledge_replies_get(
    engine, seeded, openai_server, embed, tmp_path
):
    """The responder is asked as the bot serves it: a context-trained model asked bare is off
    the distribution it learned."""
    from brandvoice.bot.backends import Backends
    from brandvoice.bot.generation import pipeline_generate_step
    from brandvoice.bot.knowledge import KnowledgeService, add_documents, read_documents
    from brandvoice.inference.retrieval import CONTEXT_HEADER
    from brandvoice.store.models import ModelVersion, VersionStatus

    openai_server.add_route("POST", "/v1/chat/completions", FakeWriter())
    settings = server_settings(openai_server, tmp_path)
    doc = tmp_path / "repairs.md"
    doc.write_text("# Repairs\n\nRepairs on our own gear are free for life, zippers included.\n")
    add_documents(engine, read_documents([doc], settings), embed, "test")
    with session_scope(engine) as session:
        session.add(
            ModelVersion(
                name="v1",
                base_model="gpt-4o-mini",
                backend="openai",
                hosted_model_id="ft:brand-v1",
                status=VersionStatus.PROMOTED,
            )
        )

    knowledge = KnowledgeService(settings, embed=embed)
    result = pipeline_generate_step(Backends(settings), knowledge)(engine, Quiet())

    asked = [
        r.body["messages"]
        for r in openai_server.requests_to("POST", "/v1/chat/completions")
        if r.body["model"] == "ft:brand-v1"
    ]
    assert result["responder_model"] == "ft:brand-v1" and result["generated"] == 12
    assert len(asked) >= 4, "new requests and rewordings are answered by the promoted model"
    for messages in asked:
        assert messages[0]["content"].startswith(SYSTEM) and messages[-1]["role"] == "user"
        context = [m for m in messages if m["content"].startswith(CONTEXT_HEADER)]
        assert context == [messages[1]] and messages[1]["role"] == "system", messages
    assert any("free for life, zippers" in m[1]["content"] for m in asked), "the file is retrieved"
