"""Do synthetic variations help the embedded model? Keep rate, what is kept, and the lift they give.

On Pebble & Pine (the packaged sample brand's conversations, ``bench/brands/pebble_pine``) with
the embedded SmolLM2-135M:

1. Real-only: a LoRA adapter on 20 real approved examples (the first 20 training rows that are not
   validation rows; every 8th row of ``train.jsonl`` is the validation set, as in
   ``bench/voice_defaults.py``), one per seed.
2. Generation as the pipeline runs it after a first training: the base model continues few-shot
   prompts with new requests (``datagen/fewshot.py``), the seed-0 real-only adapter answers them in
   the voice, and the filters judge every candidate (``--per-example`` per parent) in a store that
   holds the brand's guidelines and knowledge files, as the team's would: the claims filter lets a
   synthetic reply state only what its conversation, parent, demonstrations, the guidelines or the
   knowledge support. Printed: the keep rate, the drop reasons and 10 random kept examples.
3. Real + synthetic: the same 20 real examples plus the kept variations, one adapter per seed.

Both arms train with ``TrainConfig()`` defaults (epochs, early stopping, adapter selection by
validation loss on the 9 real validation rows) under the same step cap, and are scored on the
24 held-out ``test.jsonl`` conversations: greedy replies of the kept adapter, MiniLM cosine to the
reference replies (as ``trainer/voice_probe.py`` scores) and the sign-off rate. The lift is the
mean over seeds of (real + synthetic) - (real only). Results go to
``bench/results/synthetic_lift.json`` (machine, versions, git sha, every figure).

    PYTHONPATH=src HF_HUB_OFFLINE=1 .venv/bin/python bench/synthetic_lift.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from brand_sets import read_jsonl, split_train_val
from sqlmodel import col, select

from brandvoice.bot.knowledge import add_documents, read_documents
from brandvoice.bot.settings import Settings
from brandvoice.datagen.generate import GenerateConfig, generate_variations
from brandvoice.datagen.guidelines import set_guidelines
from brandvoice.inference.chat import Sampling
from brandvoice.inference.embeddings import embed_texts
from brandvoice.inference.local_chat import LocalChat
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.samples import sample_guidelines_path, sample_knowledge_paths
from brandvoice.store.candidates import list_candidates
from brandvoice.store.db import make_engine, session_scope, upgrade
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.models import Example, ExampleSource, Split
from brandvoice.trainer.checkpoint import git_sha, package_versions
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora import train_lora
from brandvoice.trainer.voice_probe import VoiceProbe

ROOT = Path(__file__).resolve().parents[1]
BRAND = ROOT / "bench/brands/pebble_pine"
REAL = 20
TARGET_LIFT = 0.02
TARGET_KEEP = 0.4


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def split_brand(rows: list[dict[str, Any]], real: int) -> tuple[list[dict], list[dict]]:
    """(the first ``real`` training rows, the validation rows: every 8th)."""
    train, val = split_train_val(rows)
    return train[:real], val


def train_and_score(
    train: list[dict[str, Any]],
    val: list[dict[str, Any]],
    probe: VoiceProbe,
    seed: int,
    args: argparse.Namespace,
    out: Path,
) -> dict[str, Any]:
    """Train with the defaults under the step cap; score the kept adapter's greedy test replies."""
    config = TrainConfig(seed=seed, step_cap=args.step_cap, num_threads=args.threads, device="cpu")
    started = time.monotonic()
    result = train_lora(write_jsonl(out / "train.jsonl", train), write_jsonl(out / "val.jsonl", val),
                        out / "adapter", config)  # fmt: skip
    train_seconds = time.monotonic() - started
    chat = LocalChat(adapter=out / "adapter", batch_size=8)
    greedy = Sampling(temperature=0, max_tokens=probe.max_new_tokens)
    replies = [r.text for r in chat.complete_text_batch(list(probe.prompts), greedy)]
    chat.release()
    metrics = probe.score_replies(replies)
    return {
        "examples": len(train),
        "steps": result.steps,
        "best_step": result.best_step,
        "train_seconds": round(train_seconds, 1),
        "voice_similarity": round(metrics["voice_similarity"], 4),
        "sign_off_rate": round(metrics.get("sign_off_rate", 0.0), 4),
        "sample_reply": replies[0],
    }


def generate(
    real: list[dict[str, Any]],
    val: list[dict[str, Any]],
    responder_adapter: Path | None,
    args: argparse.Namespace,
    db: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(summary, kept examples' messages, every candidate) of one generation over ``real``."""
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    with session_scope(engine) as session:
        rows = [NewExample(r["messages"], ExampleSource.IMPORT) for r in real + val]
        ids = add_examples(session, rows, count_chat_tokens_batch).inserted_ids
        val_ids = set(ids[len(real) :])
        for example in session.exec(select(Example).where(col(Example.id).in_(ids))):
            example.split = Split.VAL if example.id in val_ids else Split.TRAIN
            session.add(example)
        set_guidelines(session, sample_guidelines_path().read_text(encoding="utf-8"), "bench")
    settings = Settings(database_url=f"sqlite:///{db}", _env_file=None)
    add_documents(engine, read_documents(sample_knowledge_paths(), settings), embed_texts, "bench")
    generator = LocalChat(batch_size=8)
    responder = None if responder_adapter is None else LocalChat(adapter=responder_adapter)
    config = GenerateConfig(per_example=args.per_example, seed=args.gen_seed, chunk_size=24)
    summary = generate_variations(
        engine, generator, embed=embed_texts, count_tokens=count_chat_tokens_batch,
        responder=responder, config=config,
    )  # fmt: skip
    with session_scope(engine) as session:
        candidates = [
            {"verdict": c.verdict, "reason": c.reason, "detail": c.detail,
             "raw_text": c.raw_text, "raw_reply": c.raw_reply, "messages": c.messages}
            for c in list_candidates(session, limit=None)
        ]  # fmt: skip
        kept = [
            {"messages": e.messages}
            for e in session.exec(select(Example).where(Example.source == ExampleSource.SYNTHETIC))
        ]
    if responder is not None:
        responder.release()
    engine.dispose()
    return summary.as_dict(), kept, candidates


def show(example: dict[str, Any]) -> str:
    messages = example["messages"]
    request = next(m["content"] for m in messages if m["role"] == "user")
    reply = next(m["content"] for m in messages if m["role"] == "assistant")
    return f"  Customer: {request}\n  Reply: {reply}".replace("\n", "\n  ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-example", type=int, default=3, help="candidates per parent")
    parser.add_argument("--gen-seed", type=int, default=0)
    parser.add_argument("--step-cap", type=int, default=80, help="most optimizer steps a run takes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/synthetic_lift.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    real, val = split_brand(read_jsonl(BRAND / "train.jsonl"), REAL)
    test = [r["messages"] for r in read_jsonl(BRAND / "test.jsonl")]
    sign_off = json.loads((BRAND / "brand.json").read_text())["sign_off"]
    chat = LocalChat()
    probe = VoiceProbe.from_conversations(test, chat.tokenizer, sign_off=sign_off)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "threads": args.threads, "load_at_start": os.getloadavg()},
        "versions": package_versions(), "git_sha": git_sha(),
        "data": {"real": len(real), "val": len(val), "test": len(test)},
        "args": {k: str(v) for k, v in vars(args).items()},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        seeds = list(range(args.seeds))
        real_only: dict[int, dict[str, Any]] = {}
        (tmp / "real0").mkdir()
        real_only[0] = train_and_score(real, val, probe, 0, args, tmp / "real0")
        print(f"real-only seed 0: {real_only[0]['voice_similarity']:.4f}", flush=True)
        started = time.monotonic()
        summary, kept, candidates = generate(real, val, tmp / "real0/adapter", args, tmp / "g.db")
        generated = summary["generated"]
        keep_rate = len(kept) / generated if generated else 0.0
        reasons: dict[str, int] = {}
        for c in candidates:
            if c["verdict"] != "keep":
                reasons[c["reason"]] = reasons.get(c["reason"], 0) + 1
        report["generation"] = {
            "seconds": round(time.monotonic() - started, 1), "summary": summary,
            "candidates": len(candidates), "kept": len(kept), "keep_rate": round(keep_rate, 4),
            "drop_reasons": reasons, "kept_examples": kept, "all_candidates": candidates,
        }  # fmt: skip
        save()
        print(f"\nkeep rate: {len(kept)}/{len(candidates)} = {keep_rate:.1%} "
              f"(target >= {TARGET_KEEP:.0%}); dropped: {reasons}", flush=True)  # fmt: skip
        print("\n10 random kept examples:")
        for example in random.Random(0).sample(kept, min(10, len(kept))):
            print(show(example) + "\n")
        mixed: dict[int, dict[str, Any]] = {}
        for seed in seeds:
            if seed not in real_only:
                (tmp / f"real{seed}").mkdir()
                real_only[seed] = train_and_score(real, val, probe, seed, args, tmp / f"real{seed}")
            (tmp / f"mixed{seed}").mkdir()
            mixed[seed] = train_and_score(real + kept, val, probe, seed, args, tmp / f"mixed{seed}")
            report["runs"] = {"real_only": real_only, "real_plus_synthetic": mixed}
            save()
            print(f"seed {seed}: real-only {real_only[seed]['voice_similarity']:.4f} "
                  f"(sign-off {real_only[seed]['sign_off_rate']:.0%}), real+synthetic "
                  f"{mixed[seed]['voice_similarity']:.4f} (sign-off "
                  f"{mixed[seed]['sign_off_rate']:.0%}), lift "
                  f"{mixed[seed]['voice_similarity'] - real_only[seed]['voice_similarity']:+.4f}",
                  flush=True)  # fmt: skip
    lifts = [mixed[s]["voice_similarity"] - real_only[s]["voice_similarity"] for s in seeds]
    lift = statistics.mean(lifts)
    verdict = (
        f"synthetic data lifts voice similarity by {lift:+.4f} (target >= +{TARGET_LIFT})"
        if lift >= TARGET_LIFT
        else f"synthetic data does NOT reach the target: lift {lift:+.4f} < +{TARGET_LIFT}"
    )
    report["lift"] = {
        "per_seed": [round(x, 4) for x in lifts], "mean": round(lift, 4),
        "real_only_mean": round(statistics.mean(real_only[s]["voice_similarity"] for s in seeds), 4),
        "mixed_mean": round(statistics.mean(mixed[s]["voice_similarity"] for s in seeds), 4),
        "target": TARGET_LIFT, "reached": lift >= TARGET_LIFT, "verdict": verdict,
    }  # fmt: skip
    report["load_after"] = os.getloadavg()
    save()
    print(f"\nlift per seed: {[round(x, 4) for x in lifts]}; mean {lift:+.4f}")
    print(verdict)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
