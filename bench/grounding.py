"""Facts from the team's knowledge, voice from fine-tuning: five configurations on the sample brand.

The sample brand's knowledge files (``src/brandvoice/samples/brand/knowledge/``) and its approved
training examples (``bench/brands/pebble_pine/train.jsonl``) go into a fresh store, as a team's
would; replies retrieve from it through the bot's own ``KnowledgeService`` (top 4, 400 tokens).
Five configurations answer the same prompts, greedy:

- ``base``: SmolLM2-135M-Instruct, the brand's system prompt and the request;
- ``base + retrieval``: the same with the retrieved context;
- ``fine-tuned``: a LoRA adapter trained with ``TrainConfig()``'s defaults on the plain examples;
- ``fine-tuned + retrieval``: that adapter, answering with the retrieved context;
- ``context-trained + retrieval``: an adapter trained the same way on examples carrying the
  context retrieval finds for them (``trainer/context_data.py``: the example itself left out, 20%
  given another request's context), answering with the retrieved context.

Measured on:

- fact accuracy on ``fact_probes.jsonl`` (held-out questions whose answers are in the knowledge):
  a reply is correct when every required fact appears (any of its spellings) and no forbidden
  claim does; also split by whether the fact appears in any training example;
- unsupported-claim rate of those replies: the evaluation's deterministic check
  (``datagen/claims.py``) against the question, all knowledge files and the guidelines;
- voice similarity (MiniLM cosine to the reference) and sign-off rate on ``test.jsonl``, never
  trained on;
- reply latency, one request at a time as the bot serves them: the context-trained adapter with
  retrieval (embedding the request, search, the longer prompt) against the same adapter without,
  for whole replies (up to 112 tokens, where each ends by itself) and for their first 48 tokens
  (where the longer prompt's share of the time is largest).

Floors (issue 15): context-trained + retrieval improves fact accuracy by >= 25 points over
fine-tuned alone, voice similarity within 0.02 of it; latency with retrieval within +15%.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/grounding.py [--threads 2] [--adapters DIR]

``--adapters DIR`` keeps the two trained adapters there and reuses them, and the configurations
already scored, on the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from brand_sets import read_jsonl, split_train_val

from brandvoice.bot.knowledge import KnowledgeService, add_documents, read_documents
from brandvoice.bot.settings import Settings
from brandvoice.datagen.claims import unsupported_claims
from brandvoice.inference.chat import Sampling
from brandvoice.inference.embeddings import cosine_similarity, embed_texts
from brandvoice.inference.local_chat import LocalChat
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.samples import SIGN_OFF, sample_guidelines_path, sample_knowledge_paths
from brandvoice.store.db import make_engine, session_scope, upgrade
from brandvoice.store.examples import example_ids_for
from brandvoice.store.importer import import_jsonl
from brandvoice.trainer.checkpoint import git_sha, package_versions
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.context_data import contextualize
from brandvoice.trainer.lora import train_lora
from brandvoice.trainer.sft_data import read_chat_jsonl

ROOT = Path(__file__).resolve().parents[1]
BRAND = ROOT / "bench/brands/pebble_pine"
RESULTS = ROOT / "bench/results/grounding.json"
MAX_TOKENS = 112
"""Room for a whole reply and its sign-off (voice on the test split)."""
PROBE_TOKENS = 80
"""Facts come first in this voice ("answer first"): a probe's reply needs less room."""
LATENCY_TOKENS = 48
LATENCY_PROBES = 12


def fact_correct(reply: str, probe: dict[str, Any]) -> bool:
    text = " ".join(reply.casefold().replace("\u2011", "-").split())
    has_facts = all(any(alt.casefold() in text for alt in group) for group in probe["facts"])
    return has_facts and not any(bad.casefold() in text for bad in probe["forbidden"])


def build_store(folder: Path, settings: Settings) -> Any:
    """A fresh store with the brand's training examples approved and its knowledge added."""
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    upgrade(engine)
    with session_scope(engine) as session:
        import_jsonl(session, BRAND / "train.jsonl", count_chat_tokens_batch, actor="bench")
    docs = read_documents(sample_knowledge_paths(), settings)
    add_documents(engine, docs, embed_texts, "bench")
    return engine


def example_ids(engine: Any, conversations: Sequence[list[dict[str, Any]]]) -> list[int | None]:
    with session_scope(engine) as session:
        return example_ids_for(session, conversations)


def train_adapter(
    name: str,
    train: list[list[dict[str, Any]]],
    val: list[list[dict[str, Any]]],
    folder: Path,
    threads: int,
) -> tuple[Path, dict[str, Any]]:
    out = folder / name
    if (out / "adapter_model.safetensors").exists():
        return out, json.loads((out / "bench.json").read_text())
    data = folder / f"{name}-data"
    data.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("val", val)):
        text = "".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in rows)
        (data / f"{split}.jsonl").write_text(text, encoding="utf-8")
    config = TrainConfig(num_threads=threads, device="cpu")
    started = time.monotonic()
    result = train_lora(data / "train.jsonl", data / "val.jsonl", out, config)
    info = {
        "seconds": round(time.monotonic() - started, 1),
        "steps": result.steps,
        "best_step": result.best_step,
        "trained_tokens": result.trained_tokens,
    }
    (out / "bench.json").write_text(json.dumps(info))
    return out, info


def prompt(system: str, request: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": request}]


def answer(
    chat: LocalChat,
    conversations: list[list[dict[str, Any]]],
    knowledge: KnowledgeService | None,
    engine: Any,
    max_tokens: int,
) -> list[str]:
    if knowledge is not None:
        conversations = [knowledge.augment(engine, c).messages for c in conversations]
    sampling = Sampling(temperature=0, max_tokens=max_tokens)
    return [r.text for r in chat.complete_batch(conversations, sampling)]


def latency(
    chat: LocalChat,
    conversations: list[list[dict[str, Any]]],
    knowledge: KnowledgeService,
    engine: Any,
    max_tokens: int,
) -> dict[str, dict[str, float]]:
    """Seconds per reply, one request at a time, with retrieval (included in the time) and without,
    alternating request by request so a change in the machine's load hits both alike."""
    sampling = Sampling(temperature=0, max_tokens=max_tokens)
    timings: dict[str, list[tuple[float, int]]] = {"with_retrieval": [], "without": []}
    for conversation in conversations:
        for name in timings:
            started = time.perf_counter()
            messages = conversation
            if name == "with_retrieval":
                messages = knowledge.augment(engine, conversation).messages
            result = chat.complete(messages, sampling)
            tokens = result.usage.completion_tokens if result.usage else LATENCY_TOKENS
            timings[name].append((time.perf_counter() - started, tokens))
    return {
        name: {
            "p50_seconds": round(statistics.median(s for s, _ in rows), 3),
            "mean_seconds": round(statistics.fmean(s for s, _ in rows), 3),
            "mean_tokens": round(statistics.fmean(t for _, t in rows), 1),
        }
        for name, rows in timings.items()
    }


def score(
    replies: list[str],
    probes: list[dict[str, Any]],
    test_replies: list[str],
    references: list[str],
    sources: list[str],
) -> dict[str, Any]:
    correct = [fact_correct(r, p) for r, p in zip(replies, probes, strict=True)]
    flagged = [
        bool(unsupported_claims(r, [p["question"], *sources]))
        for r, p in zip(replies, probes, strict=True)
    ]
    by_origin = {
        origin: [c for c, p in zip(correct, probes, strict=True) if p["in_examples"] == flag]
        for origin, flag in (("in_examples", True), ("knowledge_only", False))
    }
    sims = cosine_similarity(test_replies, references)
    return {
        "fact_accuracy": round(sum(correct) / len(correct), 4),
        **{f"fact_accuracy_{k}": round(sum(v) / max(len(v), 1), 4) for k, v in by_origin.items()},
        "unsupported_claim_rate": round(sum(flagged) / len(flagged), 4),
        "voice_similarity": round(sum(sims) / len(sims), 4),
        "sign_off": round(sum(r.rstrip().endswith(SIGN_OFF) for r in test_replies) / len(sims), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--adapters", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probes = read_jsonl(BRAND / "fact_probes.jsonl")
    rows = read_chat_jsonl(BRAND / "train.jsonl")
    train, val = split_train_val(rows)
    test = read_chat_jsonl(BRAND / "test.jsonl")
    system = test[0][0]["content"]
    sources = [p.read_text(encoding="utf-8") for p in sample_knowledge_paths()]
    sources.append(sample_guidelines_path().read_text(encoding="utf-8"))

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.adapters or Path(tmp)
        settings = Settings(_env_file=None, redact_allow="pebbleandpine.example")
        engine = build_store(Path(tmp), settings)
        knowledge = KnowledgeService(settings, embed=embed_texts)
        config = TrainConfig()

        def context_for(query: str, exclude: Sequence[tuple[str, int]]) -> str:
            return knowledge.context_block(engine, query, exclude)

        context_train, use = contextualize(
            train, example_ids(engine, train), context_for,
            config.irrelevant_context_share, config.seed, config.grounded_context_only,
        )  # fmt: skip
        context_val, _ = contextualize(val, example_ids(engine, val), context_for)
        print(f"context: {use}", file=sys.stderr)
        plain_dir, plain_info = train_adapter("fine-tuned", train, val, folder, args.threads)
        print(f"fine-tuned: {plain_info}", file=sys.stderr)
        context_dir, context_info = train_adapter(
            "context-trained", context_train, context_val, folder, args.threads
        )
        print(f"context-trained: {context_info}", file=sys.stderr)

        chat = LocalChat(batch_size=8)
        probe_prompts = [prompt(system, p["question"]) for p in probes]
        test_prompts = [
            c[: max(i for i, m in enumerate(c) if m["role"] == "assistant")] for c in test
        ]
        references = [c[-1]["content"] for c in test]
        configs = {
            "base": (None, False),
            "base + retrieval": (None, True),
            "fine-tuned": (plain_dir, False),
            "fine-tuned + retrieval": (plain_dir, True),
            "context-trained + retrieval": (context_dir, True),
        }
        partial = args.out.with_suffix(".partial.json")
        done = json.loads(partial.read_text()) if args.adapters and partial.exists() else {}
        results: dict[str, Any] = done.get("results", {})
        samples: dict[str, list[dict[str, Any]]] = done.get("samples", {})
        for name, (adapter, retrieval) in configs.items():
            if name in results:
                continue
            chat.set_adapter(adapter)
            service = knowledge if retrieval else None
            replies = answer(chat, probe_prompts, service, engine, PROBE_TOKENS)
            test_replies = answer(chat, test_prompts, service, engine, MAX_TOKENS)
            results[name] = score(replies, probes, test_replies, references, sources)
            samples[name] = [
                {"question": p["question"], "reply": r, "correct": fact_correct(r, p)}
                for p, r in list(zip(probes, replies, strict=True))[:6]
            ]
            print(f"{name}: {results[name]}", file=sys.stderr)
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"results": results, "samples": samples}))

        chat.set_adapter(context_dir)
        timed = probe_prompts[:LATENCY_PROBES]
        latency(chat, timed[:2], knowledge, engine, LATENCY_TOKENS)  # warm both paths up
        timings = latency(chat, timed, knowledge, engine, MAX_TOKENS)
        fixed = latency(chat, timed, knowledge, engine, LATENCY_TOKENS)
        with_retrieval, without = timings["with_retrieval"], timings["without"]

    final, alone = results["context-trained + retrieval"], results["fine-tuned"]
    summary = {
        "fact_accuracy_gain_points": round(
            100 * (final["fact_accuracy"] - alone["fact_accuracy"]), 1
        ),
        "voice_similarity_difference": round(
            final["voice_similarity"] - alone["voice_similarity"], 4
        ),
        "latency_ratio": round(with_retrieval["p50_seconds"] / without["p50_seconds"], 3),
    }
    record = {
        "git_sha": git_sha(),
        "machine": {"platform": platform.platform(), "threads": args.threads},
        "versions": package_versions(),
        "probes": len(probes),
        "test_prompts": len(test),
        "context_training": use.model_dump(),
        "training": {"fine-tuned": plain_info, "context-trained": context_info},
        "results": results,
        "latency": {"whole_replies": timings, f"first_{LATENCY_TOKENS}_tokens": fixed},
        "summary": summary,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False))
    header = f"{'configuration':<30} {'facts':>6} {'unsupported':>11} {'voice':>6} {'sign-off':>8}"
    print(header)
    for name, r in results.items():
        print(
            f"{name:<30} {r['fact_accuracy']:>6.0%} {r['unsupported_claim_rate']:>11.0%} "
            f"{r['voice_similarity']:>6.3f} {r['sign_off']:>8.0%}"
        )
    print(
        f"context-trained + retrieval vs fine-tuned: facts {summary['fact_accuracy_gain_points']:+.1f} "
        f"points (floor +25), voice {summary['voice_similarity_difference']:+.4f} (floor -0.02)"
    )
    print(
        f"reply latency p50, whole replies: {with_retrieval['p50_seconds']:.2f} s with retrieval "
        f"({with_retrieval['mean_tokens']:.0f} tokens) vs {without['p50_seconds']:.2f} s without "
        f"({without['mean_tokens']:.0f} tokens) = {summary['latency_ratio']:.2f}x (floor 1.15x)"
    )
    per_token = [t["mean_seconds"] / t["mean_tokens"] for t in (with_retrieval, without)]
    capped = fixed["with_retrieval"]["p50_seconds"] / fixed["without"]["p50_seconds"]
    print(
        f"per generated token: {per_token[0] * 1000:.0f} ms vs {per_token[1] * 1000:.0f} ms = "
        f"{per_token[0] / per_token[1]:.2f}x; the first {LATENCY_TOKENS} tokens alone (where the "
        f"longer prompt weighs most): {capped:.2f}x"
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
