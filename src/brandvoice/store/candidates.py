"""Every candidate the generator produced, kept or dropped, with what made it and why it was judged so.

One row per (parent, strategy, index, template version): a rerun skips what is already here, and
every drop stays explainable (its reason, the score of every filter, the raw model output).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, Session, SQLModel, col, select, update

from brandvoice.store.db import insert_skipping_conflicts

# Not imported from ``models``: that module imports this one at its end to register the table,
# so importing it here would be circular whenever this module is imported first.


def utcnow() -> datetime:
    return datetime.now(UTC)


class CandidateVerdict(StrEnum):
    KEEP = "keep"
    DROP = "drop"


_VERDICT_TYPE = SAEnum(
    CandidateVerdict, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e]
)


class GenerationCandidate(SQLModel, table=True):
    """One generated variation of an approved example, and the filters' verdict on it."""

    __table_args__ = (
        UniqueConstraint(
            "parent_id", "strategy", "item_index", "template_version", name="uq_candidate_key"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    parent_id: int = Field(foreign_key="example.id", index=True)
    strategy: str = Field(max_length=32)
    item_index: int
    template_version: str = Field(max_length=200)
    """The ``name@version`` of every template used, joined by ``+``."""
    generator_model: str
    responder_model: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    seed: int
    raw_text: str
    """What the generator wrote, unparsed."""
    raw_reply: str | None = None
    """What the responder wrote, unparsed (strategies that answer a new request)."""
    messages: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    verdict: CandidateVerdict = Field(sa_column=Column(_VERDICT_TYPE, nullable=False, index=True))
    reason: str | None = Field(default=None, max_length=64)
    detail: str | None = None
    scores: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    score: float | None = None
    example_id: int | None = Field(default=None, foreign_key="example.id")
    created_at: datetime = Field(default_factory=utcnow)


class CandidateKey(NamedTuple):
    parent_id: int
    strategy: str
    item_index: int
    template_version: str


def generated_keys(session: Session, parent_ids: Iterable[int] | None = None) -> set[CandidateKey]:
    """Keys already generated (kept or dropped), optionally only for some parents."""
    query = select(
        GenerationCandidate.parent_id,
        GenerationCandidate.strategy,
        GenerationCandidate.item_index,
        GenerationCandidate.template_version,
    )
    if parent_ids is not None:
        query = query.where(col(GenerationCandidate.parent_id).in_(list(parent_ids)))
    return {CandidateKey(*row) for row in session.exec(query).all()}


def insert_candidates(
    session: Session, rows: Sequence[Mapping[str, Any]]
) -> dict[CandidateKey, int]:
    """Insert candidate rows, skipping keys another run stored first; returns the new ids by key."""
    if not rows:
        return {}
    created: dict[CandidateKey, int] = {}
    now = utcnow()
    values = [{"created_at": now, **row} for row in rows]
    for start in range(0, len(values), 500):
        statement = (
            insert_skipping_conflicts(
                session,
                GenerationCandidate,
                ["parent_id", "strategy", "item_index", "template_version"],
            )
            .values(values[start : start + 500])
            .returning(
                GenerationCandidate.id,
                GenerationCandidate.parent_id,
                GenerationCandidate.strategy,
                GenerationCandidate.item_index,
                GenerationCandidate.template_version,
            )
        )
        for id_, *key in session.exec(statement).all():  # type: ignore[call-overload]
            created[CandidateKey(*key)] = id_
    return created


def link_example(session: Session, candidate_id: int, example_id: int) -> None:
    session.exec(
        update(GenerationCandidate)
        .where(col(GenerationCandidate.id) == candidate_id)
        .values(example_id=example_id)
    )  # type: ignore[call-overload]


def mark_dropped(session: Session, candidate_id: int, reason: str, detail: str) -> None:
    """Turn a keep into a drop discovered at insert time (an example stored meanwhile)."""
    session.exec(
        update(GenerationCandidate)
        .where(col(GenerationCandidate.id) == candidate_id)
        .values(verdict=CandidateVerdict.DROP, reason=reason, detail=detail)
    )  # type: ignore[call-overload]


def list_candidates(
    session: Session,
    *,
    verdict: CandidateVerdict | None = None,
    reason: str | None = None,
    parent_id: int | None = None,
    limit: int | None = 100,
) -> list[GenerationCandidate]:
    query = select(GenerationCandidate).order_by(col(GenerationCandidate.id))
    if verdict is not None:
        query = query.where(GenerationCandidate.verdict == verdict)
    if reason is not None:
        query = query.where(GenerationCandidate.reason == reason)
    if parent_id is not None:
        query = query.where(GenerationCandidate.parent_id == parent_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())
