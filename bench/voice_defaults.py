"""Do the trainer's defaults teach a voice? Default recipe vs the common LoRA recipe, held out.

Splits the packaged Pebble & Pine set (every reply ends with the sign-off) into train / val /
held-out prompts, trains one adapter per recipe with ``train_lora``, generates greedily for the
held-out prompts with plain ``model.generate``, and reports the sign-off rate and the voice
similarity (MiniLM cosine to the reference reply), next to the base model prompted with 5
training examples. Writes ``bench/results/voice_defaults.json``.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/voice_defaults.py            # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from brandvoice.inference.base_model import load_fresh_base_model, load_tokenizer
from brandvoice.inference.embeddings import cosine_similarity
from brandvoice.trainer.checkpoint import git_sha, package_versions
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora import train_lora

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src/brandvoice/samples/brand/examples.jsonl"
SIGN_OFF = "Happy trails! 🌲"
RECIPES = {
    "default": TrainConfig(),
    "common": TrainConfig(learning_rate=2e-4, epochs=4),  # the usual LoRA recipe
}


def split(rows: list[dict[str, Any]], n_train: int, n_heldout: int, n_val: int) -> dict[str, list]:
    """Held-out and val from fixed positions of single-turn examples; train from the rest."""
    single = [i for i, r in enumerate(rows) if len(r["messages"]) == 3]
    heldout = single[3::8][:n_heldout]
    val = [i for i in single[6::8] if i not in heldout][:n_val]
    rest = [i for i in range(len(rows)) if i not in heldout and i not in val]
    return {
        "train": [rows[i] for i in rest[:n_train]],
        "val": [rows[i] for i in val],
        "heldout": [rows[i] for i in heldout],
    }


def generate(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]]) -> list[str]:
    """Greedy replies, batched with left padding, stopping at the end-of-turn token."""
    tokenizer.padding_side = "left"
    replies = []
    for start in range(0, len(prompts), 6):
        chunk = prompts[start : start + 6]
        texts = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in chunk
        ]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **inputs, max_new_tokens=160, do_sample=False,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        width = inputs["input_ids"].shape[1]
        replies += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    return replies


def score(replies: list[str], references: list[str]) -> dict[str, float]:
    return {
        "sign_off_rate": sum(r.rstrip().endswith(SIGN_OFF) for r in replies) / len(replies),
        "voice_similarity": sum(cosine_similarity(replies, references)) / len(replies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=36)
    parser.add_argument("--heldout", type=int, default=12)
    parser.add_argument("--val", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names")
    parser.add_argument("--skip-base", action="store_true", help="skip the 5-shot base model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line]
    data = split(rows, args.train_size, args.heldout, args.val)
    prompts = [r["messages"][:-1] for r in data["heldout"]]
    references = [r["messages"][-1]["content"] for r in data["heldout"]]
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    base = load_fresh_base_model(device="cpu").eval()
    results: dict[str, Any] = {}
    if not args.skip_base:
        shots = [m for r in data["train"][:5] for m in r["messages"][1:]]
        few_shot = [[p[0], *shots, *p[1:]] for p in prompts]
        replies = generate(base, tokenizer, few_shot)
        results["base, 5 examples in prompt"] = score(replies, references) | {
            "samples": replies[:3]
        }
        print(
            "base 5-shot",
            {k: v for k, v in results["base, 5 examples in prompt"].items() if k != "samples"},
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes.split(","):
            config = RECIPES[name].model_copy(update={"num_threads": args.threads, "device": "cpu"})
            paths = {}
            for part in ("train", "val"):
                paths[part] = Path(tmp) / f"{part}.jsonl"
                paths[part].write_text("".join(json.dumps(r) + "\n" for r in data[part]))
            started = time.monotonic()
            result = train_lora(
                paths["train"], paths["val"], Path(tmp) / name.split()[0], config,
                base_model=copy.deepcopy(base),
            )  # fmt: skip
            seconds = time.monotonic() - started
            from peft import PeftModel

            tuned = PeftModel.from_pretrained(copy.deepcopy(base), str(result.output_dir)).eval()
            replies = generate(tuned, tokenizer, prompts)
            results[name] = score(replies, references) | {
                "train_seconds": round(seconds, 1), "steps": result.steps, "status": result.status,
                "best_step": result.best_step, "best_eval_loss": result.best_eval_loss,
                "evals": result.evals, "hyperparameters": config.hyperparameters(),
                "samples": replies[:3],
            }  # fmt: skip
            print(
                name,
                {
                    k: results[name][k]
                    for k in (
                        "sign_off_rate",
                        "voice_similarity",
                        "steps",
                        "best_step",
                        "train_seconds",
                    )
                },
                flush=True,
            )
    print(
        f"\n{'recipe':<32}{'sign-off':>10}{'similarity':>12}{'steps':>7}{'best':>6}{'train s':>9}"
    )
    for name, r in results.items():
        print(f"{name:<32}{r['sign_off_rate']:>10.0%}{r['voice_similarity']:>12.3f}"
              f"{r.get('steps', '-'):>7}{r.get('best_step', '-') or '-':>6}{r.get('train_seconds', '-'):>9}")  # fmt: skip
    out = ROOT / "bench/results/voice_defaults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "split": {k: len(v) for k, v in data.items()},
        "results": results,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "threads": args.threads},
        "versions": package_versions(), "git_sha": git_sha(),
    }, indent=2, ensure_ascii=False) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
