"""Validate and import 100k generated examples; print examples/s against naive baselines.

    .venv/bin/python bench/import_throughput.py [--n 100000]

Baselines, run side by side in this process: the cookbook's validation (every example's tokens
counted exactly) and import through the ORM with one ``session.add`` and commit per row. Floors: 20k/s validation, 5k/s import.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

from brandvoice.inference.tokens import count_chat_tokens, count_chat_tokens_batch
from brandvoice.store.db import make_engine, session_scope, upgrade
from brandvoice.store.examples import content_hash, split_for_hash
from brandvoice.store.importer import import_jsonl
from brandvoice.store.jsonl import DEFAULT_MAX_TOKENS, check_example, validate_file
from brandvoice.store.models import Example, ExampleSource, ExampleStatus

WORDS = [
    "trail",
    "pack",
    "tent",
    "boot",
    "jacket",
    "rain",
    "river",
    "summit",
    "camp",
    "map",
    "compass",
    "stove",
    "order",
    "refund",
    "size",
]


def write_examples(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for i in range(n):
            question = " ".join(rng.choices(WORDS, k=rng.randint(8, 20)))
            answer = " ".join(rng.choices(WORDS, k=rng.randint(30, 60)))
            messages = [
                {"role": "system", "content": "You are the Pebble & Pine assistant."},
                {"role": "user", "content": f"#{i} {question}?"},
                {"role": "assistant", "content": f"{answer}. Happy trails!"},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")


def cookbook_validate(path: Path) -> int:
    """The cookbook's way: parse, check and count every example's tokens exactly."""
    valid = 0
    for line in path.open():
        obj = json.loads(line)
        if check_example(obj) is None and count_chat_tokens(obj["messages"]) <= DEFAULT_MAX_TOKENS:
            valid += 1
    return valid


def naive_orm_import(engine, path: Path, limit: int) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        for line in path.open().readlines()[:limit]:
            messages = json.loads(line)["messages"]
            digest = content_hash(messages)
            session.add(
                Example(
                    messages=messages,
                    source=ExampleSource.IMPORT,
                    status=ExampleStatus.APPROVED,
                    content_hash=digest,
                    token_count=count_chat_tokens(messages),
                    split=split_for_hash(digest),
                )
            )
            session.commit()
    return limit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "examples.jsonl"
        write_examples(path, args.n)

        start = time.perf_counter()
        report = validate_file(path, count_chat_tokens_batch)
        validate_rate = args.n / (time.perf_counter() - start)
        assert report.ok and len(report.records) == args.n

        small = Path(tmp) / "small.jsonl"
        small.write_text("".join(path.open().readlines()[: args.baseline_n]))
        start = time.perf_counter()
        assert cookbook_validate(small) == args.baseline_n
        naive_validate_rate = args.baseline_n / (time.perf_counter() - start)

        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        start = time.perf_counter()
        with session_scope(engine) as session:
            result = import_jsonl(session, path, count_chat_tokens_batch)
        import_rate = args.n / (time.perf_counter() - start)
        assert result.inserted == args.n

        naive_engine = make_engine(f"sqlite:///{tmp}/naive.db")
        upgrade(naive_engine)
        start = time.perf_counter()
        naive_orm_import(naive_engine, path, args.baseline_n)
        naive_import_rate = args.baseline_n / (time.perf_counter() - start)

    print(f"{'step':<12}{'brandvoice ex/s':>18}{'baseline ex/s':>16}{'ratio':>8}{'floor':>9}")
    print(
        f"{'validate':<12}{validate_rate:>18,.0f}{naive_validate_rate:>16,.0f}"
        f"{validate_rate / naive_validate_rate:>7.1f}x{'20,000':>9}"
    )
    print(
        f"{'import':<12}{import_rate:>18,.0f}{naive_import_rate:>16,.0f}"
        f"{import_rate / naive_import_rate:>7.1f}x{'5,000':>9}"
    )
    print("baselines: cookbook validation (exact count of every example); ORM add+commit per row")


if __name__ == "__main__":
    main()
