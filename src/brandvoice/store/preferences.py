"""Preference pairs: the reply people preferred and one they did not, for the same prompt.

Two sources: a correction (chosen = what a person wrote, rejected = the bot's reply it replaced),
and a 👎 reply whose request got an approved reply (an approved reply or a correction) in another
interaction. Derivation reads the store and inserts what is missing; a pair is unique by its
normalized content, so deriving twice, or in two processes at once, adds nothing.

Texts pass the same redactor as examples. The split is decided by the prompt's hash with the
examples' validation share, and a pair whose prompt is (or later becomes) a validation example's
prompt is validation too, so no validation prompt is ever trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from brandvoice.store.db import insert_skipping_conflicts
from brandvoice.store.examples import (
    DEFAULT_VAL_SHARE,
    content_hash,
    normalize_text,
    split_for_hash,
    stored_redactions,
)
from brandvoice.store.models import (
    Example,
    ExampleSource,
    ExampleStatus,
    FeedbackVote,
    Interaction,
    PreferencePair,
    PreferenceSource,
    Split,
    VoteKind,
    utcnow,
)
from brandvoice.store.redact import RedactionCounts, Redactor

CHOSEN_SOURCES = (ExampleSource.APPROVED_REPLY, ExampleSource.CORRECTION)
"""Examples whose last reply a person vouched for, so it can be the chosen side of a pair."""


def prompt_hash(prompt: Sequence[Mapping[str, Any]]) -> str:
    """The hash that decides a pair's split: the same normalization as an example's."""
    return content_hash(prompt)


def request_key(prompt: Sequence[Mapping[str, Any]]) -> str:
    """Names a request whatever the system prompt of the version that answered it: the thread's
    messages without system messages, normalized."""
    return content_hash([m for m in prompt if m.get("role") != "system"])


def pair_hash(prompt: Sequence[Mapping[str, Any]], chosen: str, rejected: str) -> str:
    """Unique per pair: the prompt's hash and both replies, normalized (whitespace, case)."""
    canonical = [prompt_hash(prompt), normalize_text(chosen), normalize_text(rejected)]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


@dataclass
class NewPair:
    prompt: list[dict[str, Any]]
    chosen: str
    rejected: str
    source: PreferenceSource
    example_id: int
    """The example whose last reply is ``chosen``."""
    interaction_id: int | None = None
    """The bot reply that is ``rejected``."""
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairResult:
    inserted_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    """Pairs already stored (or given twice)."""
    identical: int = 0
    """Pairs left out because chosen and rejected are the same reply (nothing to learn)."""
    redactions: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    """New pairs by source."""


def add_pairs(
    session: Session,
    new: Sequence[NewPair],
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
    validation_prompts: set[str] | None = None,
) -> PairResult:
    """Redact, hash, split and insert pairs, skipping any already stored.

    A pair is validation when its prompt's hash says so, when its own example is a validation
    example, or when ``validation_prompts`` (hashes of validation examples' prompts) holds its
    prompt; snapshots repeat the last check, so a prompt that becomes validation later follows.
    """
    redactor = redactor or Redactor()
    result = PairResult()
    if not new:
        return result
    example_splits = _example_splits(session, {p.example_id for p in new})
    rows: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    seen: set[str] = set()
    now = utcnow()
    for item in new:
        counts = RedactionCounts()
        prompt, prompt_counts = redactor.redact_messages(item.prompt)
        chosen, chosen_counts = redactor.redact_text(item.chosen.strip())
        rejected, rejected_counts = redactor.redact_text(item.rejected.strip())
        for part in (prompt_counts, chosen_counts, rejected_counts):
            for kind, n in part.items():
                counts[kind] = counts.get(kind, 0) + n
            for kind, n in part.allowed.items():
                counts.allowed[kind] = counts.allowed.get(kind, 0) + n
        if normalize_text(chosen) == normalize_text(rejected):
            result.identical += 1
            continue
        digest = pair_hash(prompt, chosen, rejected)
        if digest in seen:
            result.duplicates += 1
            continue
        seen.add(digest)
        for kind, n in counts.items():
            result.redactions[kind] = result.redactions.get(kind, 0) + n
        prompt_digest = prompt_hash(prompt)
        validation = (
            split_for_hash(prompt_digest, val_share) == Split.VAL
            or example_splits.get(item.example_id) == Split.VAL
            or prompt_digest in (validation_prompts or ())
        )
        sources[digest] = item.source.value
        rows.append(
            {
                "prompt_messages": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "source": item.source.value,
                "example_id": item.example_id,
                "interaction_id": item.interaction_id,
                "prompt_hash": prompt_digest,
                "content_hash": digest,
                "split": (Split.VAL if validation else Split.TRAIN).value,
                "redactions": stored_redactions(counts),
                "provenance": item.provenance,
                "created_at": now,
            }
        )
    if rows:
        table = PreferencePair.__table__  # type: ignore[attr-defined]
        statement = insert_skipping_conflicts(session, table, ["content_hash"]).returning(
            table.c.id, table.c.content_hash
        )
        for pair_id, digest in session.connection().execute(statement, rows):
            result.inserted_ids.append(pair_id)
            source = sources[digest]
            result.by_source[source] = result.by_source.get(source, 0) + 1
    result.duplicates += len(rows) - len(result.inserted_ids)
    return result


def _example_splits(session: Session, example_ids: set[int]) -> dict[int, Split]:
    query = select(Example.id, Example.split).where(col(Example.id).in_(sorted(example_ids)))
    found = {example_id: Split(split) for example_id, split in session.exec(query)}
    missing = example_ids - set(found)
    if missing:
        raise ValueError(f"example(s) {sorted(missing)} do not exist; a pair needs its example")
    return found


def validation_prompt_hashes(session: Session) -> set[str]:
    """Hashes of the prompts of every validation example (any status, any source)."""
    query = select(Example.messages).where(Example.split == Split.VAL)
    return {prompt_hash(messages[:-1]) for messages in session.exec(query) if messages}


# --- corrections --------------------------------------------------------------------------------


def correction(
    prompt: Sequence[Mapping[str, Any]],
    corrected: str,
    rejected: str,
    *,
    example_id: int,
    interaction_id: int | None,
    corrected_by: str | None,
    rejected_version: int | None,
    voters: Sequence[str] = (),
) -> NewPair:
    """A correction as a pair: what a person wrote (chosen) against the bot's reply (rejected)."""
    return NewPair(
        prompt=[dict(m) for m in prompt],
        chosen=corrected,
        rejected=rejected,
        source=PreferenceSource.CORRECTION,
        example_id=example_id,
        interaction_id=interaction_id,
        provenance={
            "interaction_id": interaction_id,
            "chosen_example_id": example_id,
            "chosen_interaction_id": interaction_id,
            "corrected_by": corrected_by,
            "voters": list(voters),
            "rejected_model_version_id": rejected_version,
            "chosen_model_version_id": None,
            "model_version_ids": _versions(rejected_version),
        },
    )


def correction_pair(example: Example, voters: Sequence[str] = ()) -> NewPair | None:
    """The pair a correction example holds: its reply (chosen) against the bot's reply it
    replaced (``provenance["rejected_reply"]``); None when it has no such reply."""
    provenance = example.provenance or {}
    rejected = provenance.get("rejected_reply")
    messages = example.messages or []
    if (
        example.id is None
        or example.source != ExampleSource.CORRECTION
        or not isinstance(rejected, str)
        or not rejected.strip()
        or len(messages) < 2
        or messages[-1].get("role") != "assistant"
        or not isinstance(messages[-1].get("content"), str)
    ):
        return None
    interaction_id = example.interaction_id or provenance.get("interaction_id")
    version = provenance.get("model_version_id")
    return correction(
        messages[:-1],
        messages[-1]["content"],
        rejected,
        example_id=example.id,
        interaction_id=interaction_id if isinstance(interaction_id, int) else None,
        corrected_by=example.created_by,
        rejected_version=version if isinstance(version, int) else None,
        voters=voters,
    )


def down_voters(session: Session, interaction_ids: Iterable[int]) -> dict[int, list[str]]:
    """Users with a counted (not withdrawn) 👎 on each reply, in vote order."""
    ids = sorted(set(interaction_ids))
    voters: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return voters
    query = (
        select(FeedbackVote.interaction_id, FeedbackVote.user)
        .where(
            col(FeedbackVote.interaction_id).in_(ids),
            FeedbackVote.kind == VoteKind.DOWN,
            col(FeedbackVote.retracted_at).is_(None),
        )
        .order_by(col(FeedbackVote.created_at), col(FeedbackVote.id))
    )
    for interaction_id, user in session.exec(query):
        if user not in voters[interaction_id]:
            voters[interaction_id].append(user)
    return voters


def add_correction_pair(
    session: Session,
    interaction: Interaction,
    corrected: str,
    *,
    example_id: int,
    corrected_by: str | None,
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> int | None:
    """Store the pair of a correction of ``interaction`` kept as example ``example_id``, in the
    caller's transaction; returns the new pair's id, None when it is already stored (or the
    correction repeats the reply)."""
    voters = down_voters(session, [interaction.id] if interaction.id is not None else [])
    pair = correction(
        interaction.prompt_messages or [],
        corrected,
        interaction.reply,
        example_id=example_id,
        interaction_id=interaction.id,
        corrected_by=corrected_by,
        rejected_version=interaction.model_version_id,
        voters=voters.get(interaction.id or 0, []),
    )
    inserted = add_pairs(session, [pair], redactor, val_share).inserted_ids
    return inserted[0] if inserted else None


def correction_pairs(session: Session) -> list[NewPair]:
    """The pair of every correction example that recorded the reply it replaced."""
    corrections = list(
        session.exec(
            select(Example)
            .where(Example.source == ExampleSource.CORRECTION)
            .order_by(col(Example.id))
        )
    )
    voters = down_voters(session, (e.interaction_id for e in corrections if e.interaction_id))
    pairs = (correction_pair(e, voters.get(e.interaction_id or 0, [])) for e in corrections)
    return [p for p in pairs if p is not None]


# --- 👎 replies later answered well -----------------------------------------------------------


def downvote_pairs(session: Session, redactor: Redactor) -> list[NewPair]:
    """A pair for each 👎 reply (counted, not withdrawn) and each approved reply or correction
    to the same request (same thread messages, normalized, whatever the system prompt).

    The pair takes the approved example's prompt and reply as chosen and the 👎 reply as
    rejected. A 👎 reply that was itself approved is left out: the team's approval stands.
    """
    voters = down_voters(session, _downvoted_ids(session))
    if not voters:
        return []
    approved = list(
        session.exec(
            select(Example)
            .where(
                Example.status == ExampleStatus.APPROVED,
                col(Example.source).in_([s.value for s in CHOSEN_SOURCES]),
            )
            .order_by(col(Example.id))
        )
    )
    approved_replies = {
        e.interaction_id for e in approved if e.source == ExampleSource.APPROVED_REPLY
    }
    by_request: dict[str, list[Example]] = defaultdict(list)
    for example in approved:
        messages = example.messages or []
        if len(messages) >= 2 and messages[-1].get("role") == "assistant":
            by_request[request_key(messages[:-1])].append(example)
    interactions = session.exec(
        select(Interaction)
        .where(col(Interaction.id).in_(sorted(voters)))
        .order_by(col(Interaction.id))
    )
    pairs: list[NewPair] = []
    for interaction in interactions:
        if interaction.id is None or interaction.id in approved_replies:
            continue
        prompt, _ = redactor.redact_messages(interaction.prompt_messages or [])
        for example in by_request.get(request_key(prompt), []):
            if example.id is None:
                continue
            chosen_version = (example.provenance or {}).get("model_version_id")
            if example.source == ExampleSource.CORRECTION:
                chosen_version = None  # a person wrote it
            pairs.append(
                NewPair(
                    prompt=[dict(m) for m in example.messages[:-1]],
                    chosen=str(example.messages[-1].get("content") or ""),
                    rejected=interaction.reply,
                    source=PreferenceSource.DOWNVOTE,
                    example_id=example.id,
                    interaction_id=interaction.id,
                    provenance={
                        "interaction_id": interaction.id,
                        "chosen_example_id": example.id,
                        "chosen_interaction_id": example.interaction_id,
                        "chosen_source": str(example.source),
                        "corrected_by": example.created_by
                        if example.source == ExampleSource.CORRECTION
                        else None,
                        "voters": voters[interaction.id],
                        "rejected_model_version_id": interaction.model_version_id,
                        "chosen_model_version_id": chosen_version,
                        "model_version_ids": _versions(
                            interaction.model_version_id, chosen_version
                        ),
                    },
                )
            )
    return pairs


def _downvoted_ids(session: Session) -> list[int]:
    query = (
        select(FeedbackVote.interaction_id)
        .where(FeedbackVote.kind == VoteKind.DOWN, col(FeedbackVote.retracted_at).is_(None))
        .distinct()
    )
    return list(session.exec(query))


def _versions(*ids: Any) -> list[int]:
    return sorted({i for i in ids if isinstance(i, int)})


# --- derivation ---------------------------------------------------------------------------------


def derive_preference_pairs(
    session: Session,
    redactor: Redactor | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> PairResult:
    """Store every pair the store implies and does not hold yet (corrections first, then 👎
    replies answered well elsewhere); running it again adds nothing."""
    redactor = redactor or Redactor()
    new = [*correction_pairs(session), *downvote_pairs(session, redactor)]
    return add_pairs(session, new, redactor, val_share, validation_prompt_hashes(session))


# --- reading ------------------------------------------------------------------------------------


def list_pairs(
    session: Session,
    source: PreferenceSource | None = None,
    split: Split | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[PreferencePair]:
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError(f"limit and offset must not be negative (got {limit}, {offset})")
    query = select(PreferencePair).order_by(col(PreferencePair.id))
    if source is not None:
        query = query.where(PreferencePair.source == source)
    if split is not None:
        query = query.where(PreferencePair.split == split)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query.offset(offset)).all())


def pair_counts(session: Session) -> dict[str, dict[str, int]]:
    """Stored pairs by source and by split."""
    counts: dict[str, dict[str, int]] = {"source": {}, "split": {}}
    for column, key in ((PreferencePair.source, "source"), (PreferencePair.split, "split")):
        for value, n in session.exec(select(column, func.count()).group_by(column)):
            counts[key][str(value)] = n
    return counts


def trainable_pairs(session: Session) -> list[PreferencePair]:
    """Pairs a snapshot taken now may hold, in id order: their chosen example is approved, and
    a 👎 pair's reply still has a counted 👎 and was not approved since."""
    pairs = list(
        session.exec(
            select(PreferencePair)
            .join(Example, col(Example.id) == col(PreferencePair.example_id))
            .where(Example.status == ExampleStatus.APPROVED)
            .order_by(col(PreferencePair.id))
        )
    )
    downvoted = {p.interaction_id for p in pairs if p.source == PreferenceSource.DOWNVOTE}
    still_down = set(down_voters(session, (i for i in downvoted if i is not None)))
    approved = set(
        session.exec(
            select(Example.interaction_id).where(
                col(Example.interaction_id).in_(sorted(i for i in downvoted if i is not None)),
                Example.source == ExampleSource.APPROVED_REPLY,
                Example.status == ExampleStatus.APPROVED,
            )
        )
    )
    return [
        p
        for p in pairs
        if p.source != PreferenceSource.DOWNVOTE
        or (p.interaction_id in still_down and p.interaction_id not in approved)
    ]


def split_pairs(
    session: Session, pairs: list[PreferencePair]
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, val) of ``pairs``. A training pair whose prompt is now a validation example's
    prompt, or another validation pair's, moves to validation for good (stored)."""
    val_pairs = select(PreferencePair.prompt_hash).where(PreferencePair.split == Split.VAL)
    held_out = validation_prompt_hashes(session) | set(session.exec(val_pairs))
    moved = False
    for pair in pairs:
        if pair.split == Split.TRAIN and pair.prompt_hash in held_out:
            pair.split = Split.VAL
            session.add(pair)
            moved = True
    if moved:
        session.flush()
    return [p for p in pairs if p.split == Split.TRAIN], [p for p in pairs if p.split == Split.VAL]


def export_pairs(session: Session, split: Split | None = None) -> list[PreferencePair]:
    """The pairs a snapshot taken now would hold (of ``split``, or all), in id order."""
    train, val = split_pairs(session, trainable_pairs(session))
    if split is None:
        return sorted((*train, *val), key=lambda p: p.id or 0)
    return train if split == Split.TRAIN else val
