"""Team knowledge in the store: reading files strictly, chunking along headings, redaction, and
adding, replacing and removing files (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

from brandvoice.inference.tokens import count_text_tokens
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.knowledge import (
    Chunk,
    KnowledgeFileError,
    chunk_markdown,
    decode_document,
    document_title,
    embed_documents,
    knowledge_version,
    list_documents,
    live_chunks,
    prepare_document,
    remove_document,
    store_documents,
    vectors_from_bytes,
)
from brandvoice.store.models import ExampleSource, KnowledgeChunk, KnowledgeDoc
from brandvoice.store.redact import AllowList, Redactor
from brandvoice.store.snapshots import snapshot_dataset

SHIPPING = """# Shipping

We ship from Denver.

## Times

Standard shipping takes 3-5 business days.

Express takes 1-2 business days.

## Returns

Write to help@acme.example or to bob@gmail.com within 30 days.

```
# not a heading
```
"""


def words(text: str) -> int:
    return len(text.split())


def hashed_embed(texts: Sequence[str]) -> np.ndarray:
    """Deterministic unit vectors from each text's hash: enough for the store, which never reads them."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(8)
        rows.append(vector / np.linalg.norm(vector))
    return np.asarray(rows, dtype=np.float32)


def prepare(text: str, name: str = "shipping.md", redactor: Redactor | None = None):  # type: ignore[no-untyped-def]
    doc = prepare_document(
        f"/docs/{name}",
        text.encode(),
        count_tokens=count_text_tokens,
        redactor=redactor or Redactor(),
    )
    embed_documents([doc], hashed_embed)
    return doc


def test_chunks_follow_headings_and_keep_the_heading_path_as_prefix():
    chunks = chunk_markdown(SHIPPING, words, max_tokens=40)
    assert [c.headings for c in chunks] == [
        ("Shipping",),
        ("Shipping", "Times"),
        ("Shipping", "Returns"),
    ]
    assert chunks[1].text == (
        "Shipping > Times\n\nStandard shipping takes 3-5 business days.\n\n"
        "Express takes 1-2 business days."
    )
    assert "# not a heading" in chunks[2].body
    assert document_title("shipping.md", SHIPPING) == "Shipping"
    assert document_title("notes.txt", "plain text") == "notes"


def test_paragraphs_pack_up_to_the_limit_and_long_ones_are_cut_at_sentences():
    paragraphs = [" ".join(f"w{p}x{i}" for i in range(10)) + "." for p in range(5)]
    chunks = chunk_markdown("\n\n".join(paragraphs), words, max_tokens=25)
    assert [c.body.count("\n\n") + 1 for c in chunks] == [2, 2, 1]
    long = " ".join(f"Sentence {i} has five words." for i in range(20))
    pieces = chunk_markdown(f"# Head\n\n{long}", words, max_tokens=20)
    assert len(pieces) > 1
    assert all(words(p.text) <= 20 for p in pieces)
    assert all(p.body.endswith(".") for p in pieces)
    assert " ".join(p.body for p in pieces) == long
    real = chunk_markdown(long * 10, count_text_tokens)
    assert all(count_text_tokens(c.text) <= 200 for c in real)
    assert chunk_markdown("no headings at all", words) == [Chunk((), "no headings at all")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "a binary file"),
        (b"caf\xe9 au lait", "not UTF-8"),
        (b"  \n\n\t", "empty"),
    ],
)
def test_bad_files_are_named_in_a_clear_error(data, problem):
    with pytest.raises(KnowledgeFileError, match=f"^logo.png: {problem}"):
        decode_document("logo.png", data)


def test_a_file_of_headings_alone_is_refused():
    with pytest.raises(KnowledgeFileError, match=r"^faq\.md: only headings"):
        prepare("# FAQ\n\n## Shipping\n", "faq.md")


def test_redaction_keeps_the_teams_own_address():
    redactor = Redactor(allow=AllowList.parse("acme.example"))
    doc = prepare(SHIPPING, redactor=redactor)
    returns = doc.chunks[-1]
    assert "help@acme.example" in returns.text
    assert "bob@gmail.com" not in returns.text and "<EMAIL>" in returns.text
    assert returns.redactions == {"EMAIL": 1}


def chunk_texts(engine) -> list[str]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return [chunk.text for chunk, _ in live_chunks(session)]


def test_adding_is_idempotent_a_change_replaces_and_remove_retires(engine):
    with session_scope(engine) as session:
        first = store_documents(session, [prepare(SHIPPING)], "alice")
        version = knowledge_version(session)
    assert (first.added, first.chunks) == (["shipping.md"], 3)
    with session_scope(engine) as session:
        again = store_documents(session, [prepare(SHIPPING)], "alice")
        assert knowledge_version(session) == version
    assert (again.unchanged, again.chunks) == (["shipping.md"], 0)

    changed = SHIPPING.replace("3-5", "2-4")
    with session_scope(engine) as session:
        replaced = store_documents(session, [prepare(changed), prepare("Hi.", "faq.txt")], "bob")
        assert knowledge_version(session) != version
    assert (replaced.replaced, replaced.added) == (["shipping.md"], ["faq.txt"])
    texts = chunk_texts(engine)
    assert len(texts) == 4 and any("2-4 business days" in t for t in texts)
    assert not any("3-5" in t for t in texts)

    with session_scope(engine) as session:
        listed = [(d.doc.name, d.chunks, d.doc.added_by) for d in list_documents(session)]
        chunks = session.exec(select(KnowledgeChunk)).all()
        vectors = vectors_from_bytes([c.embedding for c in chunks])
    assert listed == [("faq.txt", 1, "bob"), ("shipping.md", 3, "bob")]
    assert len(chunks) == 7, "the replaced version's chunks are kept for snapshots"
    assert vectors.shape == (7, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)

    with session_scope(engine) as session:
        remove_document(session, "shipping.md")
    assert chunk_texts(engine) == ["Hi."]
    with session_scope(engine) as session, pytest.raises(LookupError, match=r"known: faq\.txt"):
        remove_document(session, "shipping.md")


def test_a_failed_add_leaves_the_store_as_it_was(engine):
    with session_scope(engine) as session:
        store_documents(session, [prepare(SHIPPING)])
    unembedded = prepare_document(
        "/docs/faq.txt", b"new facts", count_tokens=count_text_tokens, redactor=Redactor()
    )
    with pytest.raises(ValueError, match=r"faq\.txt: 1 chunk"), session_scope(engine) as session:
        store_documents(session, [prepare(SHIPPING.replace("3-5", "9")), unembedded])
    assert any("3-5" in t for t in chunk_texts(engine))
    with session_scope(engine) as session:
        assert len(session.exec(select(KnowledgeDoc)).all()) == 1


def test_snapshots_record_the_knowledge_they_saw(engine, tmp_path: Path, count_tokens):
    with session_scope(engine) as session:
        add_examples(
            session,
            [
                NewExample([{"role": "user", "content": f"q{i}"}], ExampleSource.IMPORT)
                for i in range(3)
            ],
            count_tokens,
        )
        plain, _ = snapshot_dataset(session, tmp_path)
        assert "knowledge" not in plain.stats
        store_documents(session, [prepare(SHIPPING)])
        grounded, created = snapshot_dataset(session, tmp_path)
        ids = [chunk.id for chunk, _ in live_chunks(session)]
    assert created and grounded.content_hash != plain.content_hash
    assert grounded.stats["knowledge"]["chunk_ids"] == ids
    assert grounded.stats["knowledge"]["docs"] == 1
    with session_scope(engine) as session:
        same, created = snapshot_dataset(session, tmp_path)
    assert not created and same.id == grounded.id
