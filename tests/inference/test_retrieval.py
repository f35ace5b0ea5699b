"""Retrieval: exact search, the token budget of the context block, and the real MiniLM finding
the chunk that answers real questions among the sample brand's knowledge and approved examples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from brandvoice.bot.knowledge import KnowledgeService, add_documents, read_documents
from brandvoice.bot.settings import Settings
from brandvoice.inference.retrieval import (
    CONTEXT_HEADER,
    EXAMPLE,
    KNOWLEDGE,
    Entry,
    Hit,
    Retriever,
    VectorIndex,
    build_context,
    pack_context,
    top_k,
    with_context,
)
from brandvoice.inference.tokens import count_text_tokens
from brandvoice.samples import sample_knowledge_paths
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.knowledge import remove_document
from brandvoice.store.models import ExampleSource

KNOWLEDGE_FILES = sample_knowledge_paths()


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_exact_search_agrees_with_a_full_sort_and_honours_exclusions():
    vectors = unit_rows(500)
    entries = [Entry(KNOWLEDGE if i % 2 else EXAMPLE, i, f"t{i}", f"text {i}") for i in range(500)]
    index = VectorIndex(vectors, entries)
    query = unit_rows(1, seed=1)[0]
    expected = np.argsort(-(vectors.astype(np.float64) @ query))[:5]
    hits = index.retrieve(query, 5)
    assert [h.id for h in hits] == list(expected)
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    best = hits[0]
    rest = index.retrieve(query, 5, exclude=[(best.kind, best.id)])
    assert best.id not in [h.id for h in rest] and [h.id for h in rest][:4] == list(expected[1:])
    assert {h.kind for h in index.retrieve(query, 5, kinds=[EXAMPLE])} == {EXAMPLE}
    assert len(index.retrieve(query, 1000)) == 500
    assert list(top_k(np.array([0.1, 0.5, 0.5, 0.2]), 3)) == [1, 2, 3]
    assert VectorIndex(np.zeros((0, 0), np.float32), []).retrieve(query, 3) == []


def hit(i: int, words: int, score: float) -> Hit:
    return Hit(KNOWLEDGE, i, f"doc {i}", " ".join(["fact"] * words), score)


@pytest.mark.parametrize("budget", [0, 20, 70, 120, 400])
def test_the_context_block_stays_within_its_token_budget(budget):
    hits = [hit(1, 50, 0.9), hit(2, 5, 0.8), hit(3, 30, 0.7), hit(4, 200, 0.6)]
    block, kept = pack_context(hits, budget, count_text_tokens)
    assert count_text_tokens(block) <= budget
    assert block == build_context(hits, budget, count_text_tokens)
    if block:
        assert block.startswith(CONTEXT_HEADER)
        assert [h.id for h in kept] == sorted(h.id for h in kept), "best first"
    if budget == 70:
        assert [h.id for h in kept] == [2, 3], "what does not fit is skipped for what does"
    if budget == 0:
        assert (block, kept) == ("", [])


def test_the_context_goes_after_the_system_prompt():
    messages = [{"role": "system", "content": "Be Acme."}, {"role": "user", "content": "Hi"}]
    assert with_context(messages, "CTX") == [
        messages[0],
        {"role": "system", "content": "CTX"},
        messages[1],
    ]
    assert with_context(messages, "") == messages


QUESTIONS = {
    "Is the Ridgeline 40 pack waterproof?": "Ridgeline 40",
    "Can I return a jacket I already wore?": "Returns",
    "Do you deliver to London?": "Where we ship",
    "Will the Burrow 2 stand up without stakes?": "Burrow 2",
    "How much does it cost to join the co-op?": "Co-op membership",
}


@pytest.fixture
def knowledge(engine, minilm):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, redact_allow="pebbleandpine.example")
    add_documents(engine, read_documents(KNOWLEDGE_FILES, settings), minilm, "test")
    return settings


def test_real_questions_retrieve_the_chunk_that_answers_them(engine, minilm, knowledge):
    """Within the 4 chunks a reply's context holds (RETRIEVAL_TOP_K), and first for most."""
    retriever = Retriever(minilm)
    firsts = 0
    with session_scope(engine) as session:
        for question, heading in QUESTIONS.items():
            hits = retriever.retrieve_text(session, question, 4)
            answering = [f"> {heading}\n" in hit.text for hit in hits]
            assert any(answering), (question, [h.text[:60] for h in hits])
            firsts += answering[0]
        contact = retriever.retrieve_text(session, "What's your support email?", 1)[0]
    assert firsts >= len(QUESTIONS) - 1
    assert "help@pebbleandpine.example" in contact.text, "REDACT_ALLOW keeps the public address"


def test_the_index_follows_the_knowledge_and_approved_examples(
    engine, minilm, knowledge, count_tokens
):
    again = add_documents(engine, read_documents(KNOWLEDGE_FILES, knowledge), minilm)
    assert (len(again.unchanged), again.chunks) == (len(KNOWLEDGE_FILES), 0)
    retriever = Retriever(minilm)
    with session_scope(engine) as session:
        first = retriever.refresh(session)
        assert retriever.refresh(session) is first, "unchanged: not rebuilt"
        remove_document(session, "shipping.md")
    with session_scope(engine) as session:
        without = retriever.refresh(session)
        assert len(without) < len(first)
        assert not any("UK" in e.text for e in without.entries)
        added = add_examples(
            session,
            [
                NewExample(
                    [
                        {"role": "user", "content": "Do you sell gift cards?"},
                        {"role": "assistant", "content": "Yes! Gift cards never expire."},
                    ],
                    ExampleSource.IMPORT,
                )
            ],
            count_tokens,
        )
    with session_scope(engine) as session:
        hits = retriever.retrieve_text(session, "does a gift card expire", 1)
        assert (hits[0].kind, hits[0].id) == (EXAMPLE, added.inserted_ids[0])
        assert hits[0].text == "Q: Do you sell gift cards?\nA: Yes! Gift cards never expire."
        excluded = retriever.retrieve_text(
            session, "does a gift card expire", 1, exclude=[(EXAMPLE, added.inserted_ids[0])]
        )
        assert excluded[0].kind == KNOWLEDGE


def test_augment_puts_the_answering_chunk_in_the_prompt_within_budget(engine, minilm, knowledge):
    service = KnowledgeService(knowledge.model_copy(update={"retrieval_top_k": 2}), minilm)
    messages = [
        {"role": "system", "content": "Be Pebble & Pine."},
        {"role": "user", "content": "Is the Ridgeline 40 waterproof?"},
    ]
    retrieved = service.augment(engine, messages)
    assert [m["role"] for m in retrieved.messages] == ["system", "system", "user"]
    assert "water-resistant, not waterproof" in retrieved.messages[1]["content"]
    assert count_text_tokens(retrieved.context) <= knowledge.retrieval_token_budget
    assert 1 <= len(retrieved.hits) <= 2
    off = KnowledgeService(knowledge.model_copy(update={"knowledge_enabled": False}), minilm)
    assert off.augment(engine, messages).messages == messages
