"""Validate and import 100k generated examples; print examples/s against the baselines at their best.

    .venv/bin/python bench/import_throughput.py [--n 100000]

Baselines, run side by side in this process on the same file:
- validation: OpenAI's data-prep cookbook (parse, check, count every example's tokens exactly with
  tiktoken) in its fastest form, a plain loop (tiktoken's batch thread pool measured slower);
- import: the ORM's bulk INSERT (SQLAlchemy 2's ``session.execute(insert(Example), rows)``, one
  statement batched by insertmanyvalues, one transaction) of the same rows with their content
  hash, split and token count; the per-row ``session.add`` and commit it replaced is far slower
  and no fair yardstick.
Floors: 20k/s validation, 5k/s import. The table goes to stdout and
``bench/results/import_throughput.json`` records it with the machine, versions and git sha.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from bench_record import write_result
from sqlalchemy import insert
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


def orm_bulk_import(engine, path: Path, limit: int) -> int:  # type: ignore[no-untyped-def]
    """The ORM's fastest insert path: one bulk INSERT of every row in one transaction."""
    rows = []
    for line in path.open().readlines()[:limit]:
        messages = json.loads(line)["messages"]
        digest = content_hash(messages)
        example = Example(
            messages=messages,
            source=ExampleSource.IMPORT,
            status=ExampleStatus.APPROVED,
            content_hash=digest,
            token_count=count_chat_tokens(messages),
            split=split_for_hash(digest),
        )
        rows.append(example.model_dump(exclude={"id"}))
    with Session(engine) as session:
        session.execute(insert(Example), rows)
        session.commit()
    return limit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, help="rows for the baselines (default: --n)")
    args = parser.parse_args()
    baseline_n = args.baseline_n or args.n
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "examples.jsonl"
        write_examples(path, args.n)

        start = time.perf_counter()
        report = validate_file(path, count_chat_tokens_batch)
        validate_rate = args.n / (time.perf_counter() - start)
        assert report.ok and len(report.records) == args.n

        small = Path(tmp) / "small.jsonl"
        small.write_text("".join(path.open().readlines()[:baseline_n]))
        start = time.perf_counter()
        assert cookbook_validate(small) == baseline_n
        naive_validate_rate = baseline_n / (time.perf_counter() - start)

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
        orm_bulk_import(naive_engine, path, baseline_n)
        naive_import_rate = baseline_n / (time.perf_counter() - start)

    rows = [
        ("validate", validate_rate, naive_validate_rate, 20_000, "cookbook validation, plain loop"),
        ("import", import_rate, naive_import_rate, 5_000, "ORM bulk INSERT, one transaction"),
    ]
    print(
        f"{'step':<10}{'brandvoice ex/s':>17}{'baseline ex/s':>15}{'ratio':>8}{'floor':>9}  baseline"
    )
    for step, ours, baseline, floor, name in rows:
        print(
            f"{step:<10}{ours:>17,.0f}{baseline:>15,.0f}{ours / baseline:>7.1f}x{floor:>9,}  {name}"
        )
    write_result(
        "import_throughput",
        {
            "n": args.n,
            "baseline_n": baseline_n,
            "steps": {
                step: {
                    "examples_per_s": ours,
                    "baseline_examples_per_s": baseline,
                    "ratio": ours / baseline,
                    "floor": floor,
                    "baseline": name,
                    "passes": ours >= floor,
                }
                for step, ours, baseline, floor, name in rows
            },
        },
        ["sqlalchemy", "sqlmodel", "tiktoken"],
    )


if __name__ == "__main__":
    main()
