"""Near-duplicate filtering of 100k generated candidates against 10k existing examples.

    .venv/bin/python bench/neardup.py [--candidates 100000] [--existing 10000] [--sample 2000]
                                      [--json result.json]

Each candidate is checked against every existing example and every candidate accepted before it
(Self-Instruct's rule: drop it when ROUGE-L > 0.7 with any of them). The baseline, run in the same
process on a random sample of candidates, computes ROUGE-L of every pair exactly, in its fastest
configuration: rapidfuzz's ``cdist`` (bit-parallel LCS in C++, every core, int32 results) over the
same pre-tokenized texts, so the ratio measures the index, not the tokenizer. Recall: the share of the sample's pairs above 0.7 that the index finds. Floors: 100k in
under 30 s on 2 cores, recall >= 0.95.

The texts are made from the sample brand's sentences and a general text: fresh ones are random
sentence mixes with a quarter of their words swapped, near copies are edits (swaps, deletions,
insertions, substitutions) of an existing example or an earlier candidate at rates from 0 to 45%,
so the pairs spread across the 0.7 line. The table goes to stdout and
``bench/results/neardup.json`` records it with the machine, versions and git sha.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from importlib.resources import files

import numpy as np
from bench_record import write_result
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import cdist

from brandvoice.datagen.neardup import ROUGE_L_THRESHOLD, NearDupIndex

FLOOR_SECONDS = 30.0
FLOOR_RECALL = 0.95


def sentence_pool() -> list[str]:
    samples = files("brandvoice.samples")
    texts = [samples.joinpath("general_text.txt").read_text()]
    for line in samples.joinpath("brand/examples.jsonl").read_text().splitlines():
        texts.extend(m["content"] for m in json.loads(line)["messages"] if m["role"] != "system")
    sentences = [s.strip() for t in texts for s in re.split(r"(?<=[.?!])\s+|\n+", t)]
    return [s for s in sentences if len(s.split()) >= 4]


class TextMaker:
    def __init__(self, pool: list[str], seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = pool
        self.vocab = sorted({w for s in pool for w in s.split()})

    def fresh(self) -> str:
        words = " ".join(self.rng.sample(self.pool, self.rng.randint(3, 5))).split()
        return " ".join(
            self.rng.choice(self.vocab) if self.rng.random() < 0.25 else w for w in words
        )

    def edit(self, text: str, rate: float) -> str:
        out: list[str] = []
        for word in text.split():
            r = self.rng.random()
            if r >= rate:
                out.append(word)
                continue
            op = self.rng.randrange(4)
            if op == 0:
                out.append(self.rng.choice(self.vocab))
            elif op == 1:
                out.extend([word, self.rng.choice(self.vocab)])
            elif op == 2 and out:
                out.insert(len(out) - 1, word)
            # op 3 (or a swap with nothing before): the word is deleted
        return " ".join(out)


def make_corpus(n_existing: int, n_candidates: int, seed: int) -> tuple[list[str], list[str]]:
    maker = TextMaker(sentence_pool(), seed)
    existing = [maker.fresh() for _ in range(n_existing)]
    candidates: list[str] = []
    for _ in range(n_candidates):
        r = maker.rng.random()
        if r < 0.2:
            candidates.append(maker.edit(maker.rng.choice(existing), maker.rng.uniform(0, 0.45)))
        elif r < 0.3 and candidates:
            candidates.append(maker.edit(maker.rng.choice(candidates), maker.rng.uniform(0, 0.45)))
        else:
            candidates.append(maker.fresh())
    return existing, candidates


def filter_with_index(
    existing: list[str], candidates: list[str]
) -> tuple[list[bool], float, float]:
    """Keep/drop for every candidate in order; accepted candidates join the index.

    Returns the verdicts, wall seconds and this process's CPU seconds (the machine may be shared).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    index = NearDupIndex(ROUGE_L_THRESHOLD)
    index.add_many(enumerate(existing))
    kept: list[bool] = []
    for i, prepared in enumerate(index.prepare(candidates)):
        duplicate = bool(index.matches(prepared))
        kept.append(not duplicate)
        if not duplicate:
            index.add(("c", i), prepared)
    return kept, time.perf_counter() - start, time.process_time() - cpu_start


def index_pairs(existing: list[str], sample: list[str]) -> tuple[set[tuple[int, int]], float]:
    """Pairs (sample i, target j) above the threshold found by the index; targets are the existing
    examples (j < len(existing)) and earlier sample candidates (j = len(existing) + k)."""
    start = time.perf_counter()
    index = NearDupIndex(ROUGE_L_THRESHOLD)
    index.add_many(enumerate(existing))
    pairs: set[tuple[int, int]] = set()
    for i, prepared in enumerate(index.prepare(sample)):
        pairs.update((i, int(m.key)) for m in index.matches(prepared))  # type: ignore[call-overload]
        index.add(len(existing) + i, prepared)
    return pairs, time.perf_counter() - start


def naive_pairs(existing: list[str], sample: list[str]) -> tuple[set[tuple[int, int]], float]:
    """Every pair's exact ROUGE-L: the sample against the existing examples and itself."""
    start = time.perf_counter()
    codec = NearDupIndex()
    coded = [p.codes for p in codec.prepare(existing + sample)]
    targets = coded
    queries = coded[len(existing) :]
    lcs = cdist(queries, targets, scorer=LCSseq.similarity, dtype=np.int32, workers=-1)
    lengths = np.array([len(c) for c in coded], dtype=np.float64)
    score = 2.0 * lcs / (lengths[len(existing) :, None] + lengths[None, :]).clip(min=1)
    pairs = set()
    for i, j in zip(*np.nonzero(score > ROUGE_L_THRESHOLD), strict=True):
        if j < len(existing) + i:  # existing examples, and sample candidates before this one
            pairs.add((int(i), int(j)))
    return pairs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--existing", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    existing, candidates = make_corpus(args.existing, args.candidates, args.seed)
    kept, seconds, cpu_seconds = filter_with_index(existing, candidates)

    sample = random.Random(args.seed + 1).sample(candidates, args.sample)
    truth, naive_seconds = naive_pairs(existing, sample)
    found, index_sample_seconds = index_pairs(existing, sample)
    recall = len(truth & found) / len(truth) if truth else 1.0
    naive_pairs_done = args.sample * args.existing + args.sample * (args.sample - 1) / 2
    full_pairs = args.candidates * args.existing + args.candidates * (args.candidates - 1) / 2
    naive_full_estimate = naive_seconds * full_pairs / naive_pairs_done

    result = {
        "candidates": args.candidates,
        "existing": args.existing,
        "kept": sum(kept),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "load_average": os.getloadavg(),
        "candidates_per_second": round(args.candidates / seconds),
        "sample": args.sample,
        "sample_index_seconds": round(index_sample_seconds, 3),
        "sample_naive_seconds": round(naive_seconds, 3),
        "sample_speedup": round(naive_seconds / index_sample_seconds, 1),
        "naive_full_estimate_seconds": round(naive_full_estimate, 1),
        "full_speedup_estimate": round(naive_full_estimate / seconds, 1),
        "sample_pairs_above_threshold": len(truth),
        "recall": round(recall, 4),
        "baseline": "exact ROUGE-L of every pair: rapidfuzz cdist, all cores",
    }
    load = os.getloadavg()[0]
    print(f"near-duplicate filter, ROUGE-L > {ROUGE_L_THRESHOLD}, {os.cpu_count()} cpus")
    print(f"{'workload':<44}{'seconds':>10}{'ratio':>9}{'floor':>9}")
    print(
        f"{f'{args.candidates:,} candidates vs {args.existing:,} examples (LSH)':<44}"
        f"{seconds:>10.2f}{'':>9}{f'<{FLOOR_SECONDS:.0f} s':>9}"
    )
    print(
        f"{'  same, naive pairwise (estimated)':<44}{naive_full_estimate:>10.0f}"
        f"{naive_full_estimate / seconds:>8.0f}x"
    )
    print(f"{f'{args.sample:,}-candidate sample, LSH':<44}{index_sample_seconds:>10.2f}")
    print(
        f"{f'{args.sample:,}-candidate sample, naive pairwise':<44}{naive_seconds:>10.2f}"
        f"{naive_seconds / index_sample_seconds:>8.1f}x"
    )
    print("baseline: exact ROUGE-L of every pair with rapidfuzz's cdist (C++, all cores)")
    print(f"(process CPU time of the LSH run: {cpu_seconds:.2f} s; load average {load:.1f})")
    print(
        f"recall on the sample: {recall:.4f} of {len(truth)} pairs above {ROUGE_L_THRESHOLD} "
        f"(floor {FLOOR_RECALL}); kept {sum(kept):,} of {args.candidates:,}"
    )
    write_result("neardup", result, ["datasketch", "rapidfuzz", "numpy"])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
