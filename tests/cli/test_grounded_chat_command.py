"""``brandvoice chat`` with team knowledge: the prompt carries it, the sources follow the reply.

The promoted version is a hosted one, so the model on the far side of the wire is the loopback
OpenAI server and no local model is loaded.
"""

from __future__ import annotations

from brandvoice.bot.knowledge import add_documents, read_documents
from brandvoice.bot.settings import Settings
from brandvoice.inference.retrieval import CONTEXT_HEADER
from brandvoice.samples import sample_knowledge_paths
from brandvoice.store.db import session_scope
from brandvoice.trainer.registry import promote_version, register_candidate
from tests.cli.test_data_commands import run  # noqa: F401  (the fixture)
from tests.fakes.openai_server import FakeOpenAIServer

FILES = sample_knowledge_paths()
QUESTION = "How many days do I have to return something?"


def test_chat_is_grounded_and_prints_its_sources_after_the_reply(run, engine, minilm):  # noqa: F811
    add_documents(engine, read_documents(FILES, Settings(_env_file=None)), minilm)
    with session_scope(engine) as session:
        version = register_candidate(
            session, base_model="gpt-4o-mini", backend="openai", hosted_model_id="ft:acme:1"
        )
        promote_version(session, version.name, "test")

    with FakeOpenAIServer() as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test", "COLUMNS": "200"}
        grounded = run("chat", QUESTION, env=env)
        plain = run("chat", QUESTION, env={**env, "KNOWLEDGE_ENABLED": "false"})
        with_context, without = server.requests_to("POST", "/v1/chat/completions")

    assert grounded.returncode == 0, grounded.stderr
    reply, sources = grounded.stdout.strip().splitlines()
    assert reply == f"v1: echo: {QUESTION}"
    assert sources.startswith("Sources: Policies › Returns")
    roles = [m["role"] for m in with_context.body["messages"]]
    assert roles == ["system", "system", "user"]
    assert with_context.body["messages"][1]["content"].startswith(CONTEXT_HEADER)

    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == f"v1: echo: {QUESTION}"
    assert [m["role"] for m in without.body["messages"]] == ["system", "user"]
