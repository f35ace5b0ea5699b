"""Retrieval: the team knowledge and approved examples nearest to a request, and the prompt block
that carries them.

Search is exact cosine over one float32 matrix of unit vectors (a matrix-vector product and a
partial sort): at 100k chunks that is a few milliseconds, so no index server or approximation is
needed (``bench/retrieval_scale.py``). The matrix is loaded once and rebuilt only when the
knowledge or the approved examples change; an example's vector (its request and reply) is
embedded once per process and cached by its content hash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, col, select

from brandvoice.store.knowledge import Embedder, knowledge_version, live_chunks, vectors_from_bytes
from brandvoice.store.models import Example, ExampleStatus

KNOWLEDGE = "knowledge"
EXAMPLE = "example"
CONTEXT_HEADER = (
    "Team knowledge for this request. Take facts from it; do not state facts it does not support."
)
SNIPPET_CHARS = 160


@dataclass(frozen=True)
class Hit:
    kind: str
    """``knowledge`` (a chunk of a file) or ``example`` (an approved example)."""
    id: int
    """The chunk's or the example's id."""
    title: str
    text: str
    score: float

    @property
    def snippet(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"

    def as_metadata(self) -> dict[str, Any]:
        """What a reply records of its sources."""
        return {
            "kind": self.kind,
            "id": self.id,
            "title": self.title,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Entry:
    kind: str
    id: int
    title: str
    text: str


class VectorIndex:
    """Rows of unit vectors with what each one is; immutable once built."""

    def __init__(self, vectors: np.ndarray, entries: Sequence[Entry]) -> None:
        if len(entries) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0]} vectors for {len(entries)} entries")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.entries = list(entries)
        self._rows = {(e.kind, e.id): row for row, e in enumerate(self.entries)}
        self._kinds = np.array([e.kind for e in self.entries], dtype=object)

    def __len__(self) -> int:
        return len(self.entries)

    def retrieve(
        self,
        query_vector: np.ndarray,
        k: int,
        *,
        kinds: Iterable[str] | None = None,
        exclude: Iterable[tuple[str, int]] = (),
        min_score: float = -1.0,
    ) -> list[Hit]:
        """The ``k`` entries most similar to ``query_vector`` (cosine, best first), leaving out
        ``exclude`` ((kind, id) pairs, e.g. the example being trained on) and other ``kinds``."""
        if k <= 0 or not self.entries:
            return []
        scores = self.vectors @ np.asarray(query_vector, dtype=np.float32)
        ranked = scores
        skipped = [self._rows[key] for key in exclude if key in self._rows]
        if kinds is not None or skipped:
            ranked = scores.copy()
            if kinds is not None:
                ranked[~np.isin(self._kinds, list(kinds))] = -np.inf
            ranked[skipped] = -np.inf
        return [
            Hit(entry.kind, entry.id, entry.title, entry.text, float(scores[row]))
            for row in top_k(ranked, k)
            if np.isfinite(ranked[row]) and scores[row] >= min_score
            for entry in (self.entries[row],)
        ]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the ``k`` highest scores, highest first (ties by row number)."""
    k = min(k, scores.shape[0])
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    return candidates[np.lexsort((candidates, -scores[candidates]))]


def example_text(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """An approved example as retrievable text: its last request and the reply to it."""
    request = next((m.get("content") or "" for m in reversed(messages) if m["role"] == "user"), "")
    reply = next(
        (m.get("content") or "" for m in reversed(messages) if m["role"] == "assistant"), ""
    )
    return str(request), str(reply)


class Retriever:
    """The process's index of live knowledge chunks and approved examples, refreshed when either
    changes; safe to share between threads."""

    def __init__(self, embed: Embedder, *, include_examples: bool = True) -> None:
        self.embed = embed
        self.include_examples = include_examples
        self._lock = threading.Lock()
        self._version: tuple[Any, ...] | None = None
        self._index = VectorIndex(np.zeros((0, 0), dtype=np.float32), [])
        self._example_vectors: dict[str, np.ndarray] = {}

    @property
    def index(self) -> VectorIndex:
        return self._index

    def version(self, session: Session) -> tuple[Any, ...]:
        version: tuple[Any, ...] = knowledge_version(session)
        if self.include_examples:
            approved = col(Example.status) == ExampleStatus.APPROVED
            row = session.exec(
                select(
                    func.count(col(Example.id)), func.max(Example.id), func.max(Example.updated_at)
                ).where(approved)
            ).one()
            version += (int(row[0] or 0), int(row[1] or 0), str(row[2]))
        return version

    def refresh(self, session: Session) -> VectorIndex:
        """The current index, rebuilt first if the knowledge or the approved examples changed."""
        version = self.version(session)
        with self._lock:
            if version == self._version:
                return self._index
            chunks = live_chunks(session)
            entries = [Entry(KNOWLEDGE, c.id or 0, title, c.text) for c, title in chunks]
            matrices = [vectors_from_bytes([c.embedding for c, _ in chunks])] if chunks else []
            if self.include_examples:
                examples = session.exec(
                    select(Example)
                    .where(col(Example.status) == ExampleStatus.APPROVED)
                    .order_by(col(Example.id))
                ).all()
                texts = {e.content_hash: example_text(e.messages) for e in examples}
                new = [h for h in texts if h not in self._example_vectors]
                if new:
                    vectors = self.embed([f"{texts[h][0]}\n{texts[h][1]}" for h in new])
                    self._example_vectors.update(zip(new, np.asarray(vectors), strict=True))
                for example in examples:
                    request, reply = texts[example.content_hash]
                    entries.append(
                        Entry(
                            EXAMPLE,
                            example.id or 0,
                            f"approved reply #{example.id}",
                            f"Q: {request}\nA: {reply}",
                        )
                    )
                if examples:
                    matrices.append(
                        np.stack([self._example_vectors[e.content_hash] for e in examples])
                    )
            vectors = np.concatenate(matrices) if matrices else np.zeros((0, 0), dtype=np.float32)
            self._index = VectorIndex(vectors, entries)
            self._version = version
            return self._index

    def retrieve_text(self, session: Session, text: str, k: int, **options: Any) -> list[Hit]:
        """Refresh if needed, embed ``text`` and retrieve (see ``VectorIndex.retrieve``)."""
        index = self.refresh(session)
        if not len(index):
            return []
        return index.retrieve(self.embed([text])[0], k, **options)


def pack_context(
    hits: Sequence[Hit], token_budget: int, count_tokens: Callable[[str], int]
) -> tuple[str, list[Hit]]:
    """The context block and the hits it holds: the best hits that fit in ``token_budget`` tokens
    (the whole block counted); a hit too long for what is left is skipped for the next."""
    lines = [CONTEXT_HEADER]
    used = count_tokens(CONTEXT_HEADER)
    if used > token_budget:
        return "", []
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: -h.score):
        label = hit.title if hit.kind == KNOWLEDGE else hit.title.capitalize()
        entry = f"\n[{len(kept) + 1}] {label}\n{hit.text.strip()}"
        cost = count_tokens("\n".join([*lines, entry])) - used
        if used + cost > token_budget:
            continue
        lines.append(entry)
        used += cost
        kept.append(hit)
    return ("\n".join(lines), kept) if kept else ("", [])


def build_context(
    hits: Sequence[Hit], token_budget: int, count_tokens: Callable[[str], int]
) -> str:
    """A system-message block of the best hits within ``token_budget``; empty when none fits."""
    return pack_context(hits, token_budget, count_tokens)[0]


def with_context(messages: Sequence[Mapping[str, Any]], context: str) -> list[dict[str, Any]]:
    """``messages`` with the context block as a system message after the leading system prompt."""
    copy = [dict(m) for m in messages]
    if not context:
        return copy
    at = 0
    while at < len(copy) and copy[at].get("role") == "system":
        at += 1
    return [*copy[:at], {"role": "system", "content": context}, *copy[at:]]
