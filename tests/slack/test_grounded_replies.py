"""Grounded replies in Slack: the team knowledge nearest to a question goes into the prompt, the
reply shows its sources in one line, and the interaction and the message metadata record them."""

from __future__ import annotations

import pytest
from sqlmodel import select

from brandvoice.bot.knowledge import (
    KnowledgeService,
    add_documents,
    read_documents,
    source_label,
    sources_line,
)
from brandvoice.bot.slack.blocks import SOURCES_LIMIT, build_reply_footer
from brandvoice.inference.retrieval import CONTEXT_HEADER, EXAMPLE, KNOWLEDGE, Hit
from brandvoice.samples import sample_knowledge_paths
from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction
from tests.slack.conftest import harness, make_settings

pytestmark = pytest.mark.anyio

FILES = sample_knowledge_paths()
QUESTION = "How many days do I have to return something?"


def interactions(engine) -> list[Interaction]:
    with session_scope(engine) as session:
        return list(session.exec(select(Interaction).order_by(Interaction.id)))


def add_knowledge(engine, settings, embed) -> None:
    """What ``brandvoice knowledge add`` does with the sample brand's files."""
    add_documents(engine, read_documents(FILES, settings), embed)


async def test_a_mention_is_answered_with_the_knowledge_for_it_and_shows_its_sources(
    slack_api, engine, model, minilm
):
    settings = make_settings(
        slack_api, knowledge_enabled=True, redact_allow="pebbleandpine.example"
    )
    add_knowledge(engine, settings, minilm)
    knowledge = KnowledgeService(settings, embed=minilm)
    async with harness(settings, engine, slack_api, model, knowledge) as slack:
        await slack.mention(QUESTION)
        reply = slack.last_reply()

    [conversation] = model.conversations
    system, context, question = conversation
    assert system == {"role": "system", "content": settings.system_prompt}
    assert context["role"] == "system" and context["content"].startswith(CONTEXT_HEADER)
    assert "60 days from delivery" in context["content"]
    assert question == {"role": "user", "content": QUESTION}

    sources, hint, actions = reply["blocks"]
    line = sources["elements"][0]["text"]
    assert sources["type"] == "context" and line.startswith("Sources: Policies › Returns")
    assert "Improve this reply" in hint["elements"][0]["text"]
    assert actions["type"] == "context_actions"

    [interaction] = interactions(engine)
    assert interaction.prompt_messages == [system, question], "recorded without the context"
    assert interaction.retrieved, "what was retrieved is recorded"
    first = interaction.retrieved[0]
    assert (first["kind"], first["title"]) == (KNOWLEDGE, "Policies")
    assert set(first) == {"kind", "id", "title", "score"}
    scores = [hit["score"] for hit in interaction.retrieved]
    assert scores == sorted(scores, reverse=True)
    assert reply["metadata"]["event_payload"] == {
        "interaction_id": interaction.id,
        "model_version": "base",
        "sources": [f"{hit['kind']}:{hit['id']}" for hit in interaction.retrieved],
    }


async def test_with_knowledge_off_the_prompt_and_the_reply_are_as_before(
    slack_api, engine, model, minilm
):
    settings = make_settings(slack_api, knowledge_enabled=False)
    add_knowledge(engine, settings, minilm)
    async with harness(settings, engine, slack_api, model) as slack:
        await slack.mention(QUESTION)
        reply = slack.last_reply()

    [conversation] = model.conversations
    assert conversation == [
        {"role": "system", "content": settings.system_prompt},
        {"role": "user", "content": QUESTION},
    ]
    hint, actions = reply["blocks"]
    assert "Sources" not in hint["elements"][0]["text"]
    assert actions["type"] == "context_actions"
    [interaction] = interactions(engine)
    assert interaction.retrieved is None
    assert "sources" not in reply["metadata"]["event_payload"]


async def test_with_nothing_known_the_embedding_model_is_never_called(slack_api, engine, model):
    settings = make_settings(slack_api, knowledge_enabled=True)
    embedded: list[list[str]] = []

    def embed(texts):  # type: ignore[no-untyped-def]
        embedded.append(list(texts))
        raise AssertionError("an empty index embedded a text")

    knowledge = KnowledgeService(settings, embed=embed)
    async with harness(settings, engine, slack_api, model, knowledge) as slack:
        await slack.mention(QUESTION)
        reply = slack.last_reply()

    assert embedded == []
    assert [m["role"] for m in model.conversations[0]] == ["system", "user"]
    assert len(reply["blocks"]) == 2


def test_sources_are_one_compact_line_each_source_once():
    returns = Hit(KNOWLEDGE, 3, "Policies", "Policies > Returns\n\nYou have 60 days…", 0.8)
    also_returns = Hit(KNOWLEDGE, 4, "Policies", "Policies > Returns\n\nRefunds reach…", 0.7)
    untitled = Hit(KNOWLEDGE, 9, "notes", "Just a paragraph with no heading.", 0.6)
    approved = Hit(EXAMPLE, 12, "approved reply #12", "Q: hi\nA: hello", 0.5)
    assert source_label(returns) == "Policies › Returns"
    assert source_label(untitled) == "notes"
    assert sources_line([returns, also_returns, untitled, approved]) == (
        "Sources: Policies › Returns · notes · Approved reply #12"
    )
    assert sources_line([]) == ""

    many = [
        Hit(KNOWLEDGE, i, f"File {i} & co", f"File {i} & co > Part\n\ntext", 0.1) for i in range(99)
    ]
    sources, hint, actions = build_reply_footer("hint", 7, sources_line(many))
    text = sources["elements"][0]["text"]
    assert text.endswith("…") and "&amp; co" in text and "& co" not in text
    assert len(text) <= SOURCES_LIMIT + 4 * text.count("&amp;")
    assert build_reply_footer("hint", 7) == [hint, actions]
