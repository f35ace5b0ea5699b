"""Team knowledge: markdown or text files the bot retrieves facts from.

A file is read strictly (UTF-8 text, not empty), chunked along its headings and paragraphs with
the heading path kept as each chunk's prefix, redacted with the examples' redactor, and embedded by
a function the caller passes in (the store imports no model code). Adding the same file again
changes nothing; a changed file replaces its chunks in one transaction. Replaced and removed files
keep their rows (``removed_at`` set), so the chunk ids a snapshot recorded stay readable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, col, select

from brandvoice.store.models import KnowledgeChunk, KnowledgeDoc, utcnow
from brandvoice.store.redact import Redactor

DEFAULT_CHUNK_TOKENS = 200
HEADING_SEPARATOR = " > "

Embedder = Callable[[Sequence[str]], np.ndarray]
"""Texts to unit-length vectors, one row per text (MiniLM from ``bot/``)."""
TextTokenCounter = Callable[[str], int]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class KnowledgeFileError(ValueError):
    """A file that cannot be knowledge (binary, not UTF-8, empty); the message names it."""


@dataclass(frozen=True)
class Chunk:
    headings: tuple[str, ...]
    body: str

    @property
    def text(self) -> str:
        prefix = HEADING_SEPARATOR.join(self.headings)
        return f"{prefix}\n\n{self.body}" if prefix else self.body


def decode_document(name: str, data: bytes) -> str:
    """The file's text, or a ``KnowledgeFileError`` that says what is wrong with ``name``."""
    if b"\x00" in data[:8192]:
        raise KnowledgeFileError(f"{name}: a binary file, not markdown or text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KnowledgeFileError(
            f"{name}: not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
        ) from None
    if not text.strip():
        raise KnowledgeFileError(f"{name}: empty, nothing to learn from")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def document_title(name: str, text: str) -> str:
    """The first top-level heading, else the file name without its extension."""
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match and len(match.group(1)) == 1:
            return match.group(2).strip()
    return PurePath(name).stem


def _sections(text: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, paragraphs) in order; fenced code stays one paragraph and is never a heading."""
    sections: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
    path: list[tuple[int, str]] = []
    paragraph: list[str] = []
    fenced = False

    def close() -> None:
        if paragraph and "".join(paragraph).strip():
            sections[-1][1].append("\n".join(paragraph).strip("\n"))
        paragraph.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            paragraph.append(line)
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            close()
            level = len(heading.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, heading.group(2).strip()))
            sections.append((tuple(title for _, title in path), []))
        elif not fenced and not line.strip():
            close()
        else:
            paragraph.append(line.rstrip())
    close()
    return [(headings, paras) for headings, paras in sections if paras]


def _split_long(paragraph: str, budget: int, count_tokens: TextTokenCounter) -> list[str]:
    """A paragraph over ``budget`` tokens cut at sentence ends, then between words."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        if count_tokens(sentence) <= budget:
            pieces.append(sentence)
            continue
        words: list[str] = []
        for word in sentence.split(" "):
            if words and count_tokens(" ".join([*words, word])) > budget:
                pieces.append(" ".join(words))
                words = []
            words.append(word)
        if words:
            pieces.append(" ".join(words))
    return _pack(pieces, budget, count_tokens, " ")


def _pack(pieces: list[str], budget: int, count_tokens: TextTokenCounter, joiner: str) -> list[str]:
    packed: list[str] = []
    for piece in pieces:
        if packed and count_tokens(packed[-1] + joiner + piece) <= budget:
            packed[-1] = packed[-1] + joiner + piece
        else:
            packed.append(piece)
    return packed


def chunk_markdown(
    text: str, count_tokens: TextTokenCounter, max_tokens: int = DEFAULT_CHUNK_TOKENS
) -> list[Chunk]:
    """Split on headings, then pack whole paragraphs up to ``max_tokens`` per chunk (heading
    path included); a paragraph too long on its own is cut at sentences, then words."""
    if max_tokens < 16:
        raise ValueError(f"chunks need at least 16 tokens, not {max_tokens}")
    chunks: list[Chunk] = []
    for headings, paragraphs in _sections(text):
        prefix = HEADING_SEPARATOR.join(headings)
        budget = max(max_tokens - (count_tokens(prefix + "\n\n") if prefix else 0), 8)
        pieces: list[str] = []
        for paragraph in paragraphs:
            if count_tokens(paragraph) > budget:
                pieces.extend(_split_long(paragraph, budget, count_tokens))
            else:
                pieces.append(paragraph)
        chunks.extend(Chunk(headings, body) for body in _pack(pieces, budget, count_tokens, "\n\n"))
    return chunks


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vectors_from_bytes(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings as one float32 matrix, one row per blob."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class PreparedChunk:
    text: str
    token_count: int
    redactions: dict[str, int]
    content_hash: str
    embedding: bytes = b""


@dataclass
class PreparedDoc:
    """A file read, chunked and redacted (and embedded unless already stored unchanged)."""

    name: str
    path: str
    title: str
    content_hash: str
    chunks: list[PreparedChunk]


def prepare_document(
    path: str,
    data: bytes,
    *,
    count_tokens: TextTokenCounter,
    redactor: Redactor,
    max_tokens: int = DEFAULT_CHUNK_TOKENS,
    name: str | None = None,
) -> PreparedDoc:
    """Read, chunk and redact one file (no embedding yet: see ``embed_documents``)."""
    name = name or PurePath(path).name
    text = decode_document(name, data)
    chunks: list[PreparedChunk] = []
    for chunk in chunk_markdown(text, count_tokens, max_tokens):
        redacted, counts = redactor.redact_text(chunk.text)
        chunks.append(
            PreparedChunk(redacted, count_tokens(redacted), dict(counts), _sha256(redacted))
        )
    if not chunks:
        raise KnowledgeFileError(f"{name}: only headings, no text to learn from")
    title, _ = redactor.redact_text(document_title(name, text))
    digest = _sha256("\n".join(c.content_hash for c in chunks))
    return PreparedDoc(name, path, title, digest, chunks)


def embed_documents(docs: Sequence[PreparedDoc], embed: Embedder) -> None:
    """Fill in every chunk's embedding with one call to ``embed``."""
    chunks = [c for doc in docs for c in doc.chunks]
    if not chunks:
        return
    vectors = np.asarray(embed([c.text for c in chunks]), dtype=np.float32)
    if vectors.shape[0] != len(chunks):
        raise ValueError(
            f"the embedder returned {vectors.shape[0]} vectors for {len(chunks)} texts"
        )
    for chunk, vector in zip(chunks, vectors, strict=True):
        chunk.embedding = vector_to_bytes(vector)


def live_docs(session: Session) -> dict[str, KnowledgeDoc]:
    query = select(KnowledgeDoc).where(col(KnowledgeDoc.removed_at).is_(None))
    return {doc.name: doc for doc in session.exec(query)}


@dataclass
class KnowledgeAddResult:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks: int = 0
    """Chunks written."""
    redactions: dict[str, int] = field(default_factory=dict)


def store_documents(
    session: Session, docs: Sequence[PreparedDoc], added_by: str | None = None
) -> KnowledgeAddResult:
    """Write prepared (and embedded) files in the caller's transaction: an unchanged file is left
    alone, a changed one retires its old row and chunks for new ones."""
    names = [d.name for d in docs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two files are named {', '.join(twice)}; knowledge is named by file name")
    result = KnowledgeAddResult()
    current = live_docs(session)
    now = utcnow()
    for prepared in docs:
        old = current.get(prepared.name)
        if old is not None and old.content_hash == prepared.content_hash:
            result.unchanged.append(prepared.name)
            continue
        missing = [c for c in prepared.chunks if not c.embedding]
        if missing:
            raise ValueError(f"{prepared.name}: {len(missing)} chunk(s) were never embedded")
        if old is not None:
            old.removed_at = now
            session.add(old)
            session.flush()
            result.replaced.append(prepared.name)
        else:
            result.added.append(prepared.name)
        doc = KnowledgeDoc(
            name=prepared.name,
            path=prepared.path,
            title=prepared.title,
            content_hash=prepared.content_hash,
            added_by=added_by,
            created_at=now,
        )
        session.add(doc)
        session.flush()
        for ordinal, chunk in enumerate(prepared.chunks):
            session.add(
                KnowledgeChunk(
                    doc_id=doc.id,  # type: ignore[arg-type]
                    ordinal=ordinal,
                    text=chunk.text,
                    token_count=chunk.token_count,
                    redactions=chunk.redactions,
                    embedding=chunk.embedding,
                    content_hash=chunk.content_hash,
                )
            )
            for kind, n in chunk.redactions.items():
                result.redactions[kind] = result.redactions.get(kind, 0) + n
        result.chunks += len(prepared.chunks)
    session.flush()
    return result


def unchanged_names(session: Session, docs: Sequence[PreparedDoc]) -> set[str]:
    """Names whose live file has the same content: they need no embedding."""
    current = live_docs(session)
    return {
        d.name for d in docs if d.name in current and current[d.name].content_hash == d.content_hash
    }


def remove_document(session: Session, name: str) -> KnowledgeDoc:
    """Retire a live file by name; its chunks stop being retrieved."""
    doc = live_docs(session).get(name)
    if doc is None:
        known = ", ".join(sorted(live_docs(session))) or "none"
        raise LookupError(f"no knowledge file named {name!r} (known: {known})")
    doc.removed_at = utcnow()
    session.add(doc)
    session.flush()
    return doc


@dataclass(frozen=True)
class DocSummary:
    doc: KnowledgeDoc
    chunks: int
    tokens: int


def list_documents(session: Session) -> list[DocSummary]:
    """Live files by name, with their chunk and token counts."""
    query = (
        select(
            KnowledgeDoc, func.count(col(KnowledgeChunk.id)), func.sum(KnowledgeChunk.token_count)
        )
        .join(KnowledgeChunk, col(KnowledgeChunk.doc_id) == col(KnowledgeDoc.id), isouter=True)
        .where(col(KnowledgeDoc.removed_at).is_(None))
        .group_by(col(KnowledgeDoc.id))
        .order_by(col(KnowledgeDoc.name))
    )
    return [DocSummary(doc, int(n or 0), int(t or 0)) for doc, n, t in session.exec(query)]


def live_chunks(session: Session) -> list[tuple[KnowledgeChunk, str]]:
    """Every retrievable chunk with its file's title, in id order."""
    query = (
        select(KnowledgeChunk, KnowledgeDoc.title)
        .join(KnowledgeDoc, col(KnowledgeChunk.doc_id) == col(KnowledgeDoc.id))
        .where(col(KnowledgeDoc.removed_at).is_(None))
        .order_by(col(KnowledgeChunk.id))
    )
    return [(chunk, title) for chunk, title in session.exec(query)]


def knowledge_version(session: Session) -> tuple[int, int]:
    """Changes whenever the live knowledge does: (newest file id, retired files)."""
    newest = session.exec(select(func.max(KnowledgeDoc.id))).one()
    retired = session.exec(
        select(func.count(col(KnowledgeDoc.id))).where(col(KnowledgeDoc.removed_at).is_not(None))
    ).one()
    return int(newest or 0), int(retired or 0)


def knowledge_snapshot_stats(session: Session) -> dict[str, object] | None:
    """What a snapshot records of the knowledge it saw (None when there is none): its files, chunk
    ids and a hash of the chunks' contents."""
    chunks = [chunk for chunk, _ in live_chunks(session)]
    if not chunks:
        return None
    return {
        "docs": len({c.doc_id for c in chunks}),
        "chunks": len(chunks),
        "chunk_ids": [c.id for c in chunks],
        "hash": _sha256("\n".join(sorted(c.content_hash for c in chunks))),
    }
