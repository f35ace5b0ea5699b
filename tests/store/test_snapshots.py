from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from brandvoice.samples import sample_examples_path
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.importer import import_jsonl
from brandvoice.store.models import Example, ExampleSource, Split
from brandvoice.store.snapshots import SnapshotOptions, snapshot_dataset


def _examples(n: int, prefix: str = "q") -> list[NewExample]:
    return [
        NewExample(
            messages=[
                {"role": "user", "content": f"{prefix} question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ],
            source=ExampleSource.IMPORT,
        )
        for i in range(n)
    ]


def _lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_snapshot_is_deterministic_and_immutable(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        import_jsonl(session, sample_examples_path(), count_tokens)
    with session_scope(engine) as session:
        first, created = snapshot_dataset(session, tmp_path)
        assert created
    with session_scope(engine) as session:
        again, created = snapshot_dataset(session, tmp_path)
        assert not created and again.id == first.id
    stats = first.stats
    assert stats["train"] + stats["val"] == len(first.example_ids)
    assert len(_lines(first.train_path)) == stats["train"]
    assert len(_lines(first.val_path)) == stats["val"]
    # 20% validation share, decided by hashing: roughly a fifth of the examples.
    assert 0.1 <= stats["val"] / (stats["train"] + stats["val"]) <= 0.3


def test_an_example_keeps_its_split_in_every_snapshot(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        add_examples(session, _examples(30), count_tokens)
        first, _ = snapshot_dataset(session, tmp_path)
        val_before = {json.dumps(m) for m in _lines(first.val_path)}
    with session_scope(engine) as session:
        add_examples(session, _examples(30, prefix="more"), count_tokens)
        second, created = snapshot_dataset(session, tmp_path)
        assert created and second.content_hash != first.content_hash
        val_after = {json.dumps(m) for m in _lines(second.val_path)}
        train_after = {json.dumps(m) for m in _lines(second.train_path)}
    assert val_before <= val_after
    assert not val_before & train_after


def test_at_least_one_validation_example_from_five(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        add_examples(session, _examples(5), count_tokens, val_share=0.0)
        snapshot, _ = snapshot_dataset(session, tmp_path)
    assert snapshot.stats["val"] == 1 and snapshot.stats["train"] == 4


def test_synthetic_examples_follow_their_parent_and_never_leak_into_training(
    engine, count_tokens, tmp_path
):
    with session_scope(engine) as session:
        ids = add_examples(session, _examples(20), count_tokens).inserted_ids
        parents = {e.id: e.split for e in session.exec(select(Example))}
        val_parent = next(i for i in ids if parents[i] == Split.VAL)
        train_parent = next(i for i in ids if parents[i] == Split.TRAIN)
        children = []
        for parent, tag in ((val_parent, "val"), (train_parent, "train")):
            for k in range(5):
                children.append(
                    NewExample(
                        messages=[
                            {"role": "user", "content": f"{tag} child {k}"},
                            {"role": "assistant", "content": f"child answer {k}"},
                        ],
                        source=ExampleSource.SYNTHETIC,
                        parent_id=parent,
                        provenance={"score": k / 10},
                    )
                )
        add_examples(session, children, count_tokens)
        snapshot, _ = snapshot_dataset(session, tmp_path, SnapshotOptions(synthetic_per_example=3))
    train_users = [m["messages"][0]["content"] for m in _lines(snapshot.train_path)]
    val_users = [m["messages"][0]["content"] for m in _lines(snapshot.val_path)]
    assert not any(u.startswith("val child") for u in train_users + val_users)
    # at most 3 children of the train parent, the best scored first
    assert sorted(u for u in train_users if u.startswith("train child")) == [
        "train child 2",
        "train child 3",
        "train child 4",
    ]
    assert snapshot.stats["synthetic_train"] == 3


def test_snapshot_stats_estimate_tokens_and_cost(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        add_examples(session, _examples(10), count_tokens)
        options = SnapshotOptions(epochs=4, price_per_million_tokens=8.0)
        snapshot, _ = snapshot_dataset(session, tmp_path, options)
        train_tokens = snapshot.stats["train_tokens"]
    assert snapshot.stats["estimated_training_tokens"] == 4 * train_tokens
    assert snapshot.stats["estimated_cost"] == pytest.approx(4 * train_tokens / 1e6 * 8.0, abs=1e-4)


def test_nothing_to_snapshot_is_a_clear_error(engine, tmp_path):
    with session_scope(engine) as session, pytest.raises(ValueError, match="no approved"):
        snapshot_dataset(session, tmp_path)
