"""Dataset snapshots: immutable, hashed train/val files that a training run is pinned to.

The validation set holds real examples only. Synthetic examples follow their parent's split, so
a child of a validation example never reaches training, and each real example contributes at most
``synthetic_per_example`` children, the best scored first.

Preference pairs go beside them, in TRL's conversational DPO format (``preference_train.jsonl``,
``preference_val.jsonl``): the pairs derivable now, whose chosen example is approved, split by
their prompt so that no validation prompt is in ``preference_train``.

A snapshot also records the team knowledge it saw (``stats["knowledge"]``: chunk ids and a hash
of their contents, which joins the snapshot's hash); without knowledge, nothing changes.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from brandvoice.store.examples import DEFAULT_VAL_SHARE, hash_fraction
from brandvoice.store.jsonl import DEFAULT_MAX_TOKENS, write_jsonl
from brandvoice.store.knowledge import knowledge_snapshot_stats
from brandvoice.store.models import (
    DatasetSnapshot,
    Example,
    ExampleSource,
    ExampleStatus,
    PreferencePair,
    Split,
)
from brandvoice.store.preference_jsonl import trl_record, write_records
from brandvoice.store.preferences import derive_preference_pairs, split_pairs, trainable_pairs
from brandvoice.store.redact import Redactor

MIN_EXAMPLES_FOR_VALIDATION = 5
PREFERENCE_TRAIN_FILE = "preference_train.jsonl"
PREFERENCE_VAL_FILE = "preference_val.jsonl"
PREFERENCE_FILES = (PREFERENCE_TRAIN_FILE, PREFERENCE_VAL_FILE)


@dataclass(frozen=True)
class SnapshotOptions:
    synthetic_per_example: int = 3
    epochs: int = 3
    """Epochs of a hosted job, for the cost estimate."""
    eval_passes: int = 0
    """Passes over the validation set the hosted provider bills (Together: one per epoch)."""
    price_per_million_tokens: float = 0.0
    max_tokens_per_example: int = DEFAULT_MAX_TOKENS
    redactor: Redactor = field(default_factory=Redactor)
    """Redacts the texts of preference pairs derived while snapshotting (as for examples)."""
    val_share: float = DEFAULT_VAL_SHARE
    """Validation share of newly derived preference pairs (as for examples)."""


def estimate_training_cost(
    train_tokens: Iterable[int],
    val_tokens: Iterable[int],
    *,
    epochs: int,
    eval_passes: int,
    token_limit: int,
    price_per_million_tokens: float,
) -> tuple[int, float]:
    """(billed tokens, dollars) of a hosted job: every epoch over the training examples and every
    evaluation pass over the validation ones, each example cut at ``token_limit``. The one local
    estimate: snapshots and the hosted pre-flight both use it."""
    billed = epochs * sum(min(token_limit, t) for t in train_tokens) + eval_passes * sum(
        min(token_limit, t) for t in val_tokens
    )
    return billed, round(billed / 1_000_000 * price_per_million_tokens, 4)


def select_examples(
    session: Session, synthetic_per_example: int
) -> tuple[list[Example], list[Example]]:
    """The (train, val) examples a snapshot taken now would hold, in id order."""
    approved = list(
        session.exec(
            select(Example)
            .where(Example.status == ExampleStatus.APPROVED)
            .order_by(col(Example.id))
        )
    )
    real = [e for e in approved if e.source != ExampleSource.SYNTHETIC]
    _ensure_validation_example(session, real, approved)
    real_ids = {e.id: e for e in real}
    children: dict[int, list[Example]] = defaultdict(list)
    for example in approved:
        if example.source == ExampleSource.SYNTHETIC and example.parent_id in real_ids:
            children[example.parent_id].append(example)
    train = [e for e in real if e.split == Split.TRAIN]
    for parent in train:
        ranked = sorted(children.get(parent.id, []), key=lambda e: (-_score(e), e.id or 0))
        train.extend(ranked[:synthetic_per_example])
    train.sort(key=lambda e: e.id or 0)
    val = [e for e in real if e.split == Split.VAL]
    return train, val


def _score(example: Example) -> float:
    score = example.provenance.get("score") if example.provenance else None
    return float(score) if isinstance(score, int | float) else 0.0


def _ensure_validation_example(
    session: Session, real: list[Example], approved: list[Example]
) -> None:
    """With at least 5 real examples and none held out, hold out the one the hash ranks first.

    The change is stored, so the example keeps its split in every later snapshot.
    """
    if len(real) < MIN_EXAMPLES_FOR_VALIDATION or any(e.split == Split.VAL for e in real):
        return
    chosen = min(real, key=lambda e: hash_fraction(e.content_hash))
    chosen.split = Split.VAL
    session.add(chosen)
    for child in approved:
        if child.parent_id == chosen.id:
            child.split = Split.VAL
            session.add(child)
    session.flush()


def snapshot_hash(
    train: list[Example],
    val: list[Example],
    pair_train: Sequence[PreferencePair] = (),
    pair_val: Sequence[PreferencePair] = (),
    knowledge_hash: str | None = None,
) -> str:
    """Hash of what a snapshot holds; without pairs or knowledge, the same as before they existed."""
    digest = hashlib.sha256()
    for split, examples in (("train", train), ("val", val)):
        for content in sorted(e.content_hash for e in examples):
            digest.update(f"{split}:{content}\n".encode())
    for split, pairs in (("preference_train", pair_train), ("preference_val", pair_val)):
        for content in sorted(p.content_hash for p in pairs):
            digest.update(f"{split}:{content}\n".encode())
    if knowledge_hash is not None:
        digest.update(f"knowledge:{knowledge_hash}\n".encode())
    return digest.hexdigest()


def preference_paths(snapshot: DatasetSnapshot) -> tuple[Path, Path]:
    """Where a snapshot's preference pairs are: (train, val) beside its train and val files.

    Snapshots taken before pairs existed may lack them; read them as holding no pairs."""
    folder = Path(snapshot.train_path).parent
    return folder / PREFERENCE_TRAIN_FILE, folder / PREFERENCE_VAL_FILE


def preference_stats(
    pair_train: Sequence[PreferencePair], pair_val: Sequence[PreferencePair]
) -> dict[str, Any]:
    by_source: Counter[str] = Counter(str(p.source) for p in (*pair_train, *pair_val))
    return {
        "train": len(pair_train),
        "val": len(pair_val),
        "by_source": dict(sorted(by_source.items())),
        "train_ids": [p.id for p in pair_train],
        "val_ids": [p.id for p in pair_val],
    }


def snapshot_stats(
    train: list[Example], val: list[Example], options: SnapshotOptions
) -> dict[str, Any]:
    by_source: Counter[str] = Counter()
    for example in (*train, *val):
        by_source[str(example.source)] += 1
    train_tokens = sum(e.token_count for e in train)
    billed, cost = estimate_training_cost(
        (e.token_count for e in train),
        (e.token_count for e in val),
        epochs=options.epochs,
        eval_passes=options.eval_passes,
        token_limit=options.max_tokens_per_example,
        price_per_million_tokens=options.price_per_million_tokens,
    )
    return {
        "train": len(train),
        "val": len(val),
        "by_source": dict(sorted(by_source.items())),
        "real_train": sum(e.source != ExampleSource.SYNTHETIC for e in train),
        "synthetic_train": sum(e.source == ExampleSource.SYNTHETIC for e in train),
        "train_tokens": train_tokens,
        "val_tokens": sum(e.token_count for e in val),
        "epochs": options.epochs,
        "estimated_training_tokens": billed,
        "estimated_cost": cost,
    }


def snapshot_dataset(
    session: Session,
    artifacts_dir: Path,
    options: SnapshotOptions | None = None,
    actor: str | None = None,
) -> tuple[DatasetSnapshot, bool]:
    """Snapshot the approved examples and their preference pairs; returns (snapshot, created).
    The same content gives the same snapshot back instead of a new one.

    Pairs are derived first (corrections, 👎 replies answered well since), so every snapshot
    holds every pair the store implies."""
    options = options or SnapshotOptions()
    train, val = select_examples(session, options.synthetic_per_example)
    if not train:
        raise ValueError("no approved training examples to snapshot; import or approve some first")
    derive_preference_pairs(session, options.redactor, options.val_share)
    pair_train, pair_val = split_pairs(session, trainable_pairs(session))
    knowledge = knowledge_snapshot_stats(session)
    digest = snapshot_hash(
        train, val, pair_train, pair_val, str(knowledge["hash"]) if knowledge else None
    )
    existing = session.exec(
        select(DatasetSnapshot).where(DatasetSnapshot.content_hash == digest)
    ).first()
    folder = Path(artifacts_dir) / "snapshots" / digest[:16]
    train_path, val_path = folder / "train.jsonl", folder / "val.jsonl"
    if existing is not None:
        train_path, val_path = Path(existing.train_path), Path(existing.val_path)
    files = (train_path, val_path, *(train_path.parent / name for name in PREFERENCE_FILES))
    if existing is not None and all(path.is_file() for path in files):
        return existing, False
    write_jsonl(train_path, (e.messages for e in train))
    write_jsonl(val_path, (e.messages for e in val))
    for path, pairs in zip(files[2:], (pair_train, pair_val), strict=True):
        write_records(path, (trl_record(p.prompt_messages, p.chosen, p.rejected) for p in pairs))
    if existing is not None:
        return existing, False
    stats = snapshot_stats(train, val, options)
    stats["preference"] = preference_stats(pair_train, pair_val)
    if knowledge is not None:
        stats["knowledge"] = knowledge
    snapshot = DatasetSnapshot(
        content_hash=digest,
        example_ids=[e.id for e in (*train, *val) if e.id is not None],
        train_path=str(train_path),
        val_path=str(val_path),
        stats=stats,
        created_by=actor,
    )
    session.add(snapshot)
    session.flush()
    return snapshot, True


def latest_snapshot(session: Session) -> DatasetSnapshot | None:
    query = select(DatasetSnapshot).order_by(col(DatasetSnapshot.id).desc())
    return session.exec(query).first()
