"""Retrieval at 100k knowledge chunks: query latency of our exact search against two baselines.

    .venv/bin/python bench/retrieval_scale.py [--chunks 100000] [--queries 30] [--k 4]
                                              [--json result.json]

Ours: ``VectorIndex.retrieve`` as the bot runs it (float32 unit vectors in one C-contiguous
matrix, one BLAS matrix-vector product, ``argpartition`` for the top k, then the k sorted), over
a matrix rebuilt from the stored float32 blobs the way ``Retriever.refresh`` does it (timed too).

Baselines, run in the same process on the same vectors and queries:
- naive: exact cosine in numpy as most code writes it: float64 vectors (numpy's default) and a
  full ``argsort`` of every score. Its best configuration: one BLAS product over a contiguous
  matrix, never a Python loop or a per-row ``np.dot`` (which would only flatter us).
- sklearn: ``NearestNeighbors(algorithm="brute", metric="euclidean")`` on the unit vectors, which
  ranks exactly as cosine does. That is its fastest exact configuration: trees lose to brute
  force at 384 dimensions, and euclidean (unlike ``metric="cosine"``, which renormalizes every
  row on every query) runs its parallel Cython ArgKmin reduction. faiss is not a dependency;
  where it is installed, ``faiss.IndexFlatIP`` is timed too (its exact inner-product index).

Vectors: 384-d like MiniLM, drawn around 2,000 topic centres (a file's chunks resemble each
other), unit length; queries are noisy copies of random chunks, so the top hits are close and
the scores spread as real ones do. Agreement: the share of queries whose top k equal the naive
baseline's. About ten seconds on two shared cores (most of it the baselines); the table goes
to stdout and ``bench/results/retrieval_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
from bench_record import write_result

from brandvoice.inference.retrieval import KNOWLEDGE, Entry, VectorIndex
from brandvoice.store.knowledge import vector_to_bytes, vectors_from_bytes

DIM = 384
TOPICS = 2000


def make_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((TOPICS, DIM), dtype=np.float32)
    rows = centres[rng.integers(0, TOPICS, n)] + 0.8 * rng.standard_normal((n, DIM), np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_queries(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    picked = vectors[rng.integers(0, len(vectors), count)]
    noisy = picked + 0.05 * rng.standard_normal(picked.shape, np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def timed(search: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[list, list]:
    search(queries[0])
    seconds, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(search(query))
        seconds.append(time.perf_counter() - start)
    return seconds, results


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    rng = np.random.default_rng(7)

    vectors = make_vectors(args.chunks, rng)
    queries = make_queries(vectors, args.queries, rng)
    blobs = [vector_to_bytes(v) for v in vectors]
    entries = [Entry(KNOWLEDGE, i, f"doc {i // 12}", "") for i in range(args.chunks)]
    start = time.perf_counter()
    index = VectorIndex(vectors_from_bytes(blobs), entries)
    load_s = time.perf_counter() - start
    k = args.k

    rows: dict[str, dict[str, float]] = {}
    ours_s, ours = timed(lambda q: [h.id for h in index.retrieve(q, k)], queries)
    rows["ours: float32 matvec + argpartition"] = percentiles(ours_s)
    skip = [(KNOWLEDGE, 0)]
    excl_s, _ = timed(lambda q: [h.id for h in index.retrieve(q, k, exclude=skip)], queries)
    rows["ours, excluding one entry (training)"] = percentiles(excl_s)

    as64 = vectors.astype(np.float64)
    naive_s, naive = timed(lambda q: list(np.argsort(-(as64 @ q))[:k]), queries)
    rows["naive: float64 matvec + full argsort"] = percentiles(naive_s)

    from sklearn.neighbors import NearestNeighbors

    knn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean").fit(vectors)
    sk_s, _ = timed(lambda q: list(knn.kneighbors(q[None, :], return_distance=False)[0]), queries)
    rows["sklearn: brute euclidean (ArgKmin)"] = percentiles(sk_s)

    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        faiss = None
    if faiss is not None:
        flat = faiss.IndexFlatIP(DIM)
        flat.add(vectors)
        fa_s, _ = timed(lambda q: list(flat.search(q[None, :], k)[1][0]), queries)
        rows["faiss: IndexFlatIP"] = percentiles(fa_s)

    agreement = float(np.mean([list(a) == list(b) for a, b in zip(ours, naive, strict=True)]))
    base = rows["ours: float32 matvec + argpartition"]["p50_ms"]
    print(f"{args.chunks:,} chunks x {DIM} dims, {args.queries} queries, k={k}")
    print(f"matrix from stored blobs: {load_s * 1000:.0f} ms, {vectors.nbytes / 2**20:.0f} MiB")
    print(f"{'method':40} {'p50 ms':>8} {'p99 ms':>8} {'p50 vs ours':>12}")
    for name, row in rows.items():
        ratio = row["p50_ms"] / base
        print(f"{name:40} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {ratio:11.1f}x")
    print(f"top-{k} agreement with naive: {agreement:.3f}")

    payload = {
        "chunks": args.chunks,
        "dims": DIM,
        "queries": args.queries,
        "k": k,
        "load_ms": load_s * 1000,
        "matrix_mib": vectors.nbytes / 2**20,
        "latency": rows,
        "speedup_p50_vs_naive": rows["naive: float64 matvec + full argsort"]["p50_ms"] / base,
        "agreement_with_naive": agreement,
    }
    write_result("retrieval_scale", payload, ["numpy", "scikit-learn"])
    if args.json:
        with open(args.json, "w") as out:
            json.dump(payload, out, indent=2)


if __name__ == "__main__":
    main()
