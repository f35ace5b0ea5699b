"""Adding, deduplicating, curating and exporting training examples.

Every way into the store (import, Slack approval, correction, synthetic generation) goes through
``add_examples``: redaction, a normalized content hash (unique, so duplicates are skipped even
when two processes insert at once), a token count and a split fixed by the hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from brandvoice.store.audit import record_audit
from brandvoice.store.db import MAX_ROW_ID, insert_skipping_conflicts
from brandvoice.store.jsonl import DEFAULT_MAX_TOKENS, TokenCounter, check_messages
from brandvoice.store.models import Example, ExampleSource, ExampleStatus, Split, utcnow
from brandvoice.store.redact import ALLOWED, RedactionCounts, Redactor

DEFAULT_VAL_SHARE = 0.2
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def content_hash(messages: Sequence[Mapping[str, Any]]) -> str:
    """Hash of roles, names and normalized contents: whitespace, case and weights don't matter."""
    canonical = [
        [m.get("role"), m.get("name"), normalize_text(m.get("content") or "")] for m in messages
    ]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


def example_ids_for(
    session: Session, conversations: Sequence[Sequence[Mapping[str, Any]]]
) -> list[int | None]:
    """The stored example id of each conversation (by content hash), None where it is not stored:
    how a snapshot's rows, which carry no ids, are traced back to their examples."""
    hashes = [content_hash(c) for c in conversations]
    found: dict[str, int | None] = {}
    for start in range(0, len(hashes), 500):
        batch = set(hashes[start : start + 500])
        query = select(Example.content_hash, Example.id).where(col(Example.content_hash).in_(batch))
        found.update(session.exec(query).all())
    return [found.get(h) for h in hashes]


def hash_fraction(digest: str) -> float:
    """A stable number in [0, 1) derived from a content hash."""
    return int(digest[:12], 16) / 16**12


def split_for_hash(digest: str, val_share: float = DEFAULT_VAL_SHARE) -> Split:
    """The split an example belongs to, decided by its hash alone so it never moves."""
    return Split.VAL if hash_fraction(digest) < val_share else Split.TRAIN


@dataclass
class NewExample:
    messages: list[dict[str, Any]]
    source: ExampleSource
    status: ExampleStatus = ExampleStatus.APPROVED
    approvers: list[str] = field(default_factory=list)
    parent_id: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    interaction_id: int | None = None
    created_by: str | None = None
    token_count: int | None = None
    """Known token count (e.g. from validation); recounted if redaction changes the text."""


@dataclass
class AddResult:
    inserted_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    redactions: dict[str, int] = field(default_factory=dict)
    allowed: int = 0
    """Matches kept because ``REDACT_ALLOW`` names them (the team's own contact points)."""


def stored_redactions(counts: RedactionCounts) -> dict[str, int]:
    """What an example records: redactions by kind, and how many matches the allow list kept."""
    allowed = sum(counts.allowed.values())
    return {**counts, ALLOWED: allowed} if allowed else dict(counts)


def add_examples(
    session: Session,
    new: Sequence[NewExample],
    count_tokens: TokenCounter,
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> AddResult:
    """Insert examples, skipping any whose content hash is already stored (or repeated in ``new``).

    Synthetic examples take their parent's split, so a child of a validation example is never
    trained on. The caller's transaction decides when it all becomes visible.
    """
    redactor = redactor or Redactor()
    result = AddResult()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    redacted_all = [redactor.redact_messages(item.messages) for item in new]
    token_counts = _token_counts(new, redacted_all, count_tokens)
    parent_splits = _parent_splits(session, {i.parent_id for i in new if i.parent_id is not None})
    now = utcnow()
    for item, (messages, redactions), tokens in zip(new, redacted_all, token_counts, strict=True):
        digest = content_hash(messages)
        if digest in seen:
            result.duplicates += 1
            continue
        seen.add(digest)
        for kind, n in redactions.items():
            result.redactions[kind] = result.redactions.get(kind, 0) + n
        result.allowed += sum(redactions.allowed.values())
        split = (
            parent_splits[item.parent_id]
            if item.parent_id is not None
            else split_for_hash(digest, val_share)
        )
        rows.append(
            {
                "messages": messages,
                "source": item.source.value,
                "status": item.status.value,
                "approvers": item.approvers,
                "parent_id": item.parent_id,
                "content_hash": digest,
                "token_count": tokens,
                "split": split.value,
                "redactions": stored_redactions(redactions),
                "provenance": item.provenance,
                "interaction_id": item.interaction_id,
                "created_by": item.created_by,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        result.inserted_ids = _insert_ignoring_duplicates(session, rows)
    result.duplicates += len(rows) - len(result.inserted_ids)
    return result


def _token_counts(
    new: Sequence[NewExample],
    redacted: list[tuple[list[dict[str, Any]], RedactionCounts]],
    count_tokens: TokenCounter,
) -> list[int]:
    """Reuse known counts; count only what is unknown or was changed by redaction."""
    todo = [i for i, item in enumerate(new) if item.token_count is None or redacted[i][1]]
    counts = [item.token_count or 0 for item in new]
    for index, tokens in zip(todo, count_tokens([redacted[i][0] for i in todo]), strict=True):
        counts[index] = tokens
    return counts


def _parent_splits(session: Session, parent_ids: set[int]) -> dict[int, Split]:
    if not parent_ids:
        return {}
    found = dict(
        session.exec(select(Example.id, Example.split).where(col(Example.id).in_(parent_ids))).all()
    )
    missing = parent_ids - set(found)
    if missing:
        raise ValueError(f"parent example(s) {sorted(missing)} do not exist")
    return {k: Split(v) for k, v in found.items()}


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT ... ON CONFLICT (content_hash) DO NOTHING as one executemany; returns the new ids.

    A compiled statement with many parameter sets lets SQLAlchemy batch the rows ("insertmanyvalues")
    instead of compiling a huge multi-VALUES statement.
    """
    table = Example.__table__  # type: ignore[attr-defined]
    statement = insert_skipping_conflicts(session, table, ["content_hash"]).returning(table.c.id)
    return list(session.connection().execute(statement, rows).scalars())


def set_example_status(
    session: Session, example_id: int, status: ExampleStatus, actor: str, note: str | None = None
) -> Example:
    """Approve, reject or retire one example, recording who did it."""
    example = _get_example(session, example_id)
    previous = example.status
    example.status = status
    if status == ExampleStatus.APPROVED and actor not in example.approvers:
        example.approvers = [*example.approvers, actor]
    example.updated_at = utcnow()
    session.add(example)
    record_audit(
        session,
        actor,
        f"example.{status.value}",
        f"example:{example_id}",
        {"from": str(previous), "note": note} if note else {"from": str(previous)},
    )
    return example


def edit_example(
    session: Session,
    example_id: int,
    messages: list[dict[str, Any]],
    actor: str,
    count_tokens: TokenCounter,
    redactor: Redactor | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Example:
    """Replace an example's messages (redacted, re-hashed, re-counted); its split stays put.

    The new messages pass the checks an imported line passes (InvalidExample otherwise), so an
    edit cannot store what an import would refuse.
    """
    example = _get_example(session, example_id)
    check_messages(messages, count_tokens, max_tokens)
    redacted, redactions = (redactor or Redactor()).redact_messages(messages)
    digest = content_hash(redacted)
    clash = session.exec(
        select(Example.id).where(Example.content_hash == digest, Example.id != example_id)
    ).first()
    if clash is not None:
        raise ValueError(f"example {clash} already has exactly this content")
    example.messages, example.content_hash = redacted, digest
    example.redactions = stored_redactions(redactions)
    example.token_count = count_tokens([redacted])[0]
    example.updated_at = utcnow()
    session.add(example)
    record_audit(session, actor, "example.edit", f"example:{example_id}")
    return example


def _get_example(session: Session, example_id: int) -> Example:
    """The example, or LookupError; ids outside the column's range are simply absent."""
    example = session.get(Example, example_id) if 1 <= example_id <= MAX_ROW_ID else None
    if example is None:
        raise LookupError(f"example {example_id} does not exist")
    return example


def list_examples(
    session: Session,
    status: ExampleStatus | None = None,
    source: ExampleSource | None = None,
    split: Split | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[Example]:
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError(f"limit and offset must not be negative (got {limit}, {offset})")
    query = select(Example).order_by(col(Example.id))
    if status is not None:
        query = query.where(Example.status == status)
    if source is not None:
        query = query.where(Example.source == source)
    if split is not None:
        query = query.where(Example.split == split)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query.offset(offset)).all())


def example_counts(session: Session) -> dict[str, dict[str, int]]:
    """Counts by status, source and split, and the matches ``REDACT_ALLOW`` kept (approved only
    for all but status)."""
    counts: dict[str, dict[str, int]] = {"status": {}, "source": {}, "split": {}}
    for status, n in session.exec(select(Example.status, func.count()).group_by(Example.status)):
        counts["status"][str(status)] = n
    approved = Example.status == ExampleStatus.APPROVED
    for column, key in ((Example.source, "source"), (Example.split, "split")):
        for value, n in session.exec(select(column, func.count()).where(approved).group_by(column)):
            counts[key][str(value)] = n
    allowed = col(Example.redactions)[ALLOWED].as_integer()
    kept = session.exec(select(func.coalesce(func.sum(allowed), 0)).where(approved)).one()
    counts["redaction"] = {"allowed by REDACT_ALLOW": int(kept)}
    return counts
