"""Team knowledge for the running bot: adding files (MiniLM embeddings passed down to the store)
and the retrieved context a reply's prompt carries.

``KnowledgeService.augment`` is the one call a reply path makes: it returns the messages with the
context block inserted and the hits to record in the reply's metadata.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from brandvoice.bot.settings import Settings
from brandvoice.inference.retrieval import (
    KNOWLEDGE,
    Hit,
    Retriever,
    pack_context,
    with_context,
)
from brandvoice.store.db import session_scope
from brandvoice.store.knowledge import (
    HEADING_SEPARATOR,
    KnowledgeAddResult,
    PreparedDoc,
    embed_documents,
    prepare_document,
    store_documents,
    unchanged_names,
)

log = logging.getLogger(__name__)

SOURCE_PATH_SEPARATOR = " › "
SOURCES_SEPARATOR = " · "


def minilm_embedder(settings: Settings) -> Callable[[Sequence[str]], np.ndarray]:
    """The packaged MiniLM on the configured device."""
    from brandvoice.inference.embeddings import embed_texts

    return functools.partial(embed_texts, device=settings.device)


def count_text_tokens(text: str) -> int:
    from brandvoice.inference.tokens import count_text_tokens as count

    return count(text)


def read_documents(paths: Sequence[Path], settings: Settings) -> list[PreparedDoc]:
    """Read, chunk and redact every file, failing on the first bad one before anything is stored."""
    docs = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except IsADirectoryError:
            raise ValueError(f"{path}: a directory; pass the files in it") from None
        docs.append(
            prepare_document(
                str(path), data, count_tokens=count_text_tokens, redactor=settings.redactor
            )
        )
    return docs


def add_documents(
    engine: Engine,
    docs: Sequence[PreparedDoc],
    embed: Callable[[Sequence[str]], np.ndarray],
    added_by: str | None = None,
    on_embedded: Callable[[PreparedDoc], None] | None = None,
) -> KnowledgeAddResult:
    """Embed the files that changed (outside any transaction), then store all in one."""
    with session_scope(engine) as session:
        same = unchanged_names(session, docs)
    for doc in docs:
        if doc.name not in same:
            embed_documents([doc], embed)
        if on_embedded is not None:
            on_embedded(doc)
    with session_scope(engine) as session:
        return store_documents(session, docs, added_by)


@dataclass(frozen=True)
class Retrieved:
    messages: list[dict[str, Any]]
    """The request's messages with the context block after the system prompt."""
    hits: list[Hit] = field(default_factory=list)
    """What the block holds, best first (for the reply's metadata and its sources line)."""
    context: str = ""

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The hits as a reply's metadata records them."""
        return [hit.as_metadata() for hit in self.hits]


class KnowledgeService:
    """One per process: the retriever (its index and cached example vectors) and the settings."""

    def __init__(
        self,
        settings: Settings,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
        count_tokens: Callable[[str], int] = count_text_tokens,
    ) -> None:
        self.settings = settings
        self.count_tokens = count_tokens
        self.retriever = Retriever(embed or minilm_embedder(settings))

    def context_for(
        self, engine: Engine, query: str, exclude: Sequence[tuple[str, int]] = ()
    ) -> tuple[str, list[Hit]]:
        """The context block for ``query`` and the hits it holds; empty when knowledge is off,
        nothing is known, or nothing fits the budget."""
        top_k = self.settings.retrieval_top_k
        if not self.settings.knowledge_enabled or not top_k:
            return "", []
        with session_scope(engine) as session:
            hits = self.retriever.retrieve_text(session, query, top_k, exclude=exclude)
        if not hits:
            return "", []
        return pack_context(hits, self.settings.retrieval_token_budget, self.count_tokens)

    def context_block(
        self, engine: Engine, query: str, exclude: Sequence[tuple[str, int]] = ()
    ) -> str:
        """``context_for``'s block alone: what training examples are given (the pipeline's
        ``retrieve_context``)."""
        return self.context_for(engine, query, exclude)[0]

    def augment(
        self,
        engine: Engine,
        messages: Sequence[Mapping[str, Any]],
        exclude: Sequence[tuple[str, int]] = (),
    ) -> Retrieved:
        """Retrieve for the last user message and insert the context (see ``context_for``)."""
        plain = [dict(m) for m in messages]
        query = next((m.get("content") for m in reversed(plain) if m.get("role") == "user"), None)
        if not isinstance(query, str):
            return Retrieved(plain)
        context, used = self.context_for(engine, query, exclude)
        if not context:
            return Retrieved(plain)
        return Retrieved(with_context(plain, context), used, context)

    def augment_or_plain(
        self,
        engine: Engine,
        messages: Sequence[Mapping[str, Any]],
        exclude: Sequence[tuple[str, int]] = (),
    ) -> Retrieved:
        """``augment``, except that a failed retrieval (the embedding model missing, the database
        unreachable) is logged and the prompt goes out without context: it must not cost the reply."""
        try:
            return self.augment(engine, messages, exclude)
        except Exception:
            log.warning("retrieval failed; answering without team knowledge", exc_info=True)
            return Retrieved([dict(m) for m in messages])


def source_label(hit: Hit) -> str:
    """What a reader sees of one source: a file's heading path ("Policies › Returns", from the
    chunk's prefix) or "Approved reply #12"."""
    if hit.kind != KNOWLEDGE:
        return hit.title[:1].upper() + hit.title[1:]
    first_line = hit.text.strip().split("\n", 1)[0].strip()
    path = first_line.split(HEADING_SEPARATOR)
    if path[0] == hit.title and len(path) > 1:
        return SOURCE_PATH_SEPARATOR.join(path)
    return hit.title


def sources_line(hits: Sequence[Hit]) -> str:
    """One line naming the sources, each once, best first ("Sources: Policies › Returns ·
    Approved reply #12"); empty without hits."""
    labels = list(dict.fromkeys(source_label(hit) for hit in hits))
    return f"Sources: {SOURCES_SEPARATOR.join(labels)}" if labels else ""
