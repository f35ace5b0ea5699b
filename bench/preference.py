"""Does the preference stage help? SFT alone against SFT + DPO on the sample brand's corrections.

``bench/brands/pebble_pine/preferences.jsonl`` holds pairs written for the sample brand: the chosen
reply in its voice, the rejected one with a typical fault of a small fine-tuned model (wrong
sign-off, too long, an invented policy, the wrong tone); 44 train the stage (the last 8 of them
are its validation pairs), 20 are held out. SFT trains once with ``TrainConfig()``'s defaults on
the brand's ``train.jsonl``; the preference stage then trains that adapter with the same defaults
(``train_preference``), so the two adapters differ only by the stage. Both are scored on:

- preference accuracy on the held-out pairs: the chosen reply's summed log-probability above the
  rejected one's (the issue's measure), and the same per token (length-fair);
- voice similarity and sign-off rate of greedy replies to the brand's ``test.jsonl`` prompts
  (never seen by either stage), MiniLM cosine to the references;
- win rate of SFT + DPO over SFT on those prompts, judged in both orders by the judge the
  evaluation uses (the local base model, or an OpenAI-compatible server via ``--judge-url``).

Targets (issue 14): preference accuracy +15 points, voice similarity not lower by more than 0.01.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/preference.py [--threads 2] [--seeds 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from brandvoice.inference.base_model import load_fresh_base_model, load_tokenizer
from brandvoice.store.preference_jsonl import PreferenceRecord
from brandvoice.trainer.checkpoint import git_sha, package_versions
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.evaluate import judge_pairwise
from brandvoice.trainer.lora import train_lora
from brandvoice.trainer.preference import ReplyLogProbs, train_preference
from brandvoice.trainer.preference_data import collate_pairs, tokenize_pairs
from brandvoice.trainer.voice_probe import VoiceProbe

ROOT = Path(__file__).resolve().parents[1]
BRAND = ROOT / "bench/brands/pebble_pine"
STAGE_VAL = 8
TARGET_ACCURACY_GAIN = 0.15
VOICE_TOLERANCE = 0.01


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def preference_accuracy(
    model: Any, tokenizer: Any, pairs: list[PreferenceRecord]
) -> dict[str, float]:
    """Share of pairs whose chosen reply is more likely than the rejected one: summed, and per
    token."""
    tokenized = tokenize_pairs(pairs, tokenizer, max_length=1024).pairs
    scorer = ReplyLogProbs(model).eval()
    summed = per_token = 0
    with torch.no_grad():
        for start in range(0, len(tokenized), 8):
            chunk = tokenized[start : start + 8]
            sums, counts = scorer(**collate_pairs(chunk, tokenizer.pad_token_id or 0))
            n = len(chunk)
            summed += int((sums[:n] > sums[n:]).sum())
            per_token += int((sums[:n] / counts[:n] > sums[n:] / counts[n:]).sum())
    return {"accuracy": summed / len(tokenized), "per_token_accuracy": per_token / len(tokenized)}


def judge_backend(url: str | None) -> Any:
    if url:
        from brandvoice.inference.openai_chat import OpenAIChat

        return OpenAIChat(model=os.environ.get("JUDGE_MODEL", "gpt-4o-mini"), base_url=url)
    from brandvoice.inference.local_chat import LocalChat

    return LocalChat()


def run_seed(
    seed: int, base: Any, tokenizer: Any, workdir: Path, probe: VoiceProbe, args: Any
) -> dict[str, Any]:
    from peft import PeftModel

    rows = read_jsonl(BRAND / "train.jsonl")
    train, val = workdir / "train.jsonl", workdir / "val.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i % 8 != 7))
    val.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i % 8 == 7))
    pairs = read_jsonl(BRAND / "preferences.jsonl")
    stage_pairs = [
        PreferenceRecord(p["prompt"], p["chosen"], p["rejected"])
        for p in pairs
        if p["split"] == "train"
    ]
    heldout = [
        PreferenceRecord(p["prompt"], p["chosen"], p["rejected"])
        for p in pairs
        if p["split"] != "train"
    ]
    config = TrainConfig(seed=seed, num_threads=args.threads)
    started = time.process_time()
    sft = train_lora(train, val, workdir / f"sft-{seed}", config, base_model=copy.deepcopy(base))
    sft_cpu = time.process_time() - started
    started = time.process_time()
    dpo = train_preference(
        sft.output_dir, workdir / f"dpo-{seed}",
        (stage_pairs[:-STAGE_VAL], stage_pairs[-STAGE_VAL:]), config,
        base_model=copy.deepcopy(base),
    )  # fmt: skip
    dpo_cpu = time.process_time() - started
    result: dict[str, Any] = {"seed": seed, "sft_cpu_s": sft_cpu, "dpo_cpu_s": dpo_cpu}
    result["stage"] = dpo.manifest["preference"]
    replies: dict[str, list[str]] = {}
    for name, adapter in (("sft", sft.output_dir), ("sft+dpo", dpo.output_dir)):
        model = PeftModel.from_pretrained(copy.deepcopy(base), str(adapter)).eval()
        replies[name] = probe.replies(model, tokenizer)
        result[name] = preference_accuracy(model, tokenizer, heldout) | probe.score_replies(
            replies[name]
        )
        print(f"seed {seed} {name}: {json.dumps(result[name])}", flush=True)
    prompts = [json.loads(json.dumps(r["messages"][:-1])) for r in read_jsonl(BRAND / "test.jsonl")]
    wins = judge_pairwise(
        judge_backend(args.judge_url), prompts, list(probe.references),
        replies["sft+dpo"], replies["sft"],
    )  # fmt: skip
    result["win_rate_dpo_over_sft"] = sum(wins) / len(wins)
    result["examples"] = [
        {"prompt": p[-1]["content"], "sft": a, "sft+dpo": b}
        for p, a, b in list(zip(prompts, replies["sft"], replies["sft+dpo"], strict=True))[:3]
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--judge-url", help="an OpenAI-compatible judge instead of the local model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    base = load_fresh_base_model(device="cpu").eval()
    brand = json.loads((BRAND / "brand.json").read_text(encoding="utf-8"))
    test = [r["messages"] for r in read_jsonl(BRAND / "test.jsonl")]
    probe = VoiceProbe.from_conversations(test, tokenizer, sign_off=brand.get("sign_off"))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(run_seed(seed, base, tokenizer, Path(tmp), probe, args))

    def mean(side: str, key: str) -> float:
        return statistics.fmean(r[side][key] for r in runs)

    print(f"\n{'':<10}{'pref acc':>10}{'per token':>11}{'voice sim':>11}{'sign-off':>10}")
    for side in ("sft", "sft+dpo"):
        print(f"{side:<10}{mean(side, 'accuracy'):>10.1%}{mean(side, 'per_token_accuracy'):>11.1%}"
              f"{mean(side, 'voice_similarity'):>11.3f}{mean(side, 'sign_off_rate'):>10.0%}")  # fmt: skip
    gain = mean("sft+dpo", "accuracy") - mean("sft", "accuracy")
    voice = mean("sft+dpo", "voice_similarity") - mean("sft", "voice_similarity")
    win = statistics.fmean(r["win_rate_dpo_over_sft"] for r in runs)
    met = gain >= TARGET_ACCURACY_GAIN and voice >= -VOICE_TOLERANCE
    print(f"preference accuracy {gain:+.1%} (target +{TARGET_ACCURACY_GAIN:.0%}); voice similarity "
          f"{voice:+.3f} (no lower than -{VOICE_TOLERANCE}); win rate of SFT+DPO over SFT "
          f"{win:.2f} (judged both orders); {'met' if met else 'NOT met'}")  # fmt: skip
    out = ROOT / "bench/results/preference.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "runs": runs,
        "summary": {"accuracy_gain": gain, "voice_delta": voice, "win_rate": win, "met": met},
        "config": TrainConfig().hyperparameters(), "versions": package_versions(),
        "git_sha": git_sha(),
    }, indent=2, ensure_ascii=False))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
