"""Does the preference stage help? SFT alone against SFT + DPO on corrections of the sample brand.

A correction pairs the reply a person wrote (chosen) with the reply the model wrote (rejected).
``bench/brands/pebble_pine/preferences.jsonl`` holds 32 requests with a chosen reply written by
hand in the brand's voice (22 train the stage, 10 are held out), each twice with a rejected
reply carrying one typical fault of a small fine-tuned model (wrong sign-off, too long, an
invented policy, the wrong tone). The bench builds two kinds of pairs from them:

- corrections: the hand-written reply over the reply the SFT model itself writes (greedy) to the
  same request, as a correction made in Slack would be;
- fault pairs: the hand-written reply over each faulty one (44 train, 20 held out).

SFT trains once with ``TrainConfig()``'s defaults on the brand's ``train.jsonl``; the preference
stage (``train_preference``, defaults) then trains that adapter on the training corrections and
fault pairs (the last 8 fault pairs are its validation pairs), so the two adapters differ only by
the stage. Both are scored on:

- preference accuracy on the held-out corrections and fault pairs: the chosen reply's summed
  log-probability above the rejected one's (the issue's measure), and per token;
- voice similarity and sign-off rate of greedy replies to the brand's ``test.jsonl`` prompts
  (never seen by either stage), MiniLM cosine to the references;
- win rate of SFT + DPO over SFT on those prompts, judged in both orders by the judge the
  evaluation uses (the local base model, or an OpenAI-compatible server via ``--judge-url``).

Targets (issue 14): held-out preference accuracy on corrections +15 points, voice similarity not
lower by more than 0.01.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/preference.py [--threads 2] [--seeds 0]

``--sft-adapter DIR`` reuses an adapter this bench's SFT step wrote (same data, same defaults)
instead of training it again.
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
from brand_sets import read_jsonl

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


def corrections(
    model: Any, tokenizer: Any, items: list[PreferenceRecord]
) -> list[PreferenceRecord]:
    """The hand-written reply over the model's own greedy reply to the same request."""
    prompts = [json.loads(json.dumps(item.prompt)) for item in items]
    probe = VoiceProbe.from_conversations(
        [[*p, {"role": "assistant", "content": i.chosen}] for p, i in zip(prompts, items, strict=True)],
        tokenizer,
    )  # fmt: skip
    written = probe.replies(model, tokenizer)
    return [
        PreferenceRecord(item.prompt, item.chosen, reply)
        for item, reply in zip(items, written, strict=True)
        if reply.strip() != item.chosen.strip()
    ]


def run_seed(
    seed: int, base: Any, tokenizer: Any, workdir: Path, probe: VoiceProbe, args: Any
) -> dict[str, Any]:
    from peft import PeftModel

    rows = read_jsonl(BRAND / "train.jsonl")
    train, val = workdir / "train.jsonl", workdir / "val.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i % 8 != 7))
    val.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i % 8 == 7))
    lines = read_jsonl(BRAND / "preferences.jsonl")
    faults = {
        split: [PreferenceRecord(p["prompt"], p["chosen"], p["rejected"]) for p in lines
                if (p["split"] == "train") == (split == "train")]
        for split in ("train", "heldout")
    }  # fmt: skip
    requests = {split: list({json.dumps(p.prompt): p for p in faults[split]}.values())
                for split in faults}  # fmt: skip
    config = TrainConfig(seed=seed, num_threads=args.threads)
    started = time.process_time()
    if args.sft_adapter:
        sft_dir = Path(args.sft_adapter)
    else:
        sft_dir = train_lora(
            train, val, workdir / f"sft-{seed}", config, base_model=copy.deepcopy(base)
        ).output_dir
    sft_cpu = time.process_time() - started
    sft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(sft_dir)).eval()
    fixed = {split: corrections(sft_model, tokenizer, requests[split]) for split in requests}
    stage_train = fixed["train"] + faults["train"][:-STAGE_VAL]
    started = time.process_time()
    overrides = dict(item.split("=", 1) for item in args.set)
    stage_config = TrainConfig.model_validate(config.model_dump() | overrides)
    dpo = train_preference(
        sft_dir, workdir / f"dpo-{seed}", (stage_train, faults["train"][-STAGE_VAL:]),
        stage_config, base_model=copy.deepcopy(base),
    )  # fmt: skip
    dpo_cpu = time.process_time() - started
    result: dict[str, Any] = {"seed": seed, "sft_cpu_s": sft_cpu, "dpo_cpu_s": dpo_cpu}
    result["stage"] = dpo.manifest["preference"]
    result["pairs"] = {"train_corrections": len(fixed["train"]), "train_faults": len(faults["train"]),
                       "heldout_corrections": len(fixed["heldout"]),
                       "heldout_faults": len(faults["heldout"])}  # fmt: skip
    replies: dict[str, list[str]] = {}
    for name, adapter in (("sft", sft_dir), ("sft+dpo", dpo.output_dir)):
        model = PeftModel.from_pretrained(copy.deepcopy(base), str(adapter)).eval()
        replies[name] = probe.replies(model, tokenizer)
        scores = probe.score_replies(replies[name])
        for kind, pairs in (("corrections", fixed["heldout"]), ("faults", faults["heldout"])):
            accuracy = preference_accuracy(model, tokenizer, pairs)
            scores |= {f"{kind}_{key}": value for key, value in accuracy.items()}
        result[name] = scores
        print(f"seed {seed} {name}: {json.dumps(scores)}", flush=True)
    prompts = [json.loads(json.dumps(r["messages"][:-1])) for r in read_jsonl(BRAND / "test.jsonl")]
    wins = judge_pairwise(
        judge_backend(args.judge_url), prompts, list(probe.references),
        replies["sft+dpo"], replies["sft"],
    )  # fmt: skip
    result["win_rate_dpo_over_sft"] = sum(wins) / len(wins)
    result["examples"] = {
        "corrections": [vars(p) for p in fixed["heldout"][:2]],
        "test_replies": [
            {"prompt": p[-1]["content"], "sft": a, "sft+dpo": b}
            for p, a, b in list(zip(prompts, replies["sft"], replies["sft+dpo"], strict=True))[:3]
        ],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--judge-url", help="an OpenAI-compatible judge instead of the local model")
    parser.add_argument("--sft-adapter", help="reuse this SFT adapter (written by this bench)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override a TrainConfig field of the preference stage (repeatable)",
    )  # fmt: skip
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

    columns = [("corrections_accuracy", "corrections", "{:>13.0%}"),
               ("faults_accuracy", "fault pairs", "{:>13.0%}"),
               ("faults_per_token_accuracy", "per token", "{:>13.0%}"),
               ("voice_similarity", "voice sim", "{:>13.3f}"),
               ("sign_off_rate", "sign-off", "{:>13.0%}")]  # fmt: skip
    print(
        "\nheld-out preference accuracy (chosen more likely than rejected), then the test prompts"
    )
    print(f"{'':<10}" + "".join(f"{title:>13}" for _, title, _ in columns))
    for side in ("sft", "sft+dpo"):
        print(f"{side:<10}" + "".join(fmt.format(mean(side, key)) for key, _, fmt in columns))
    gain = mean("sft+dpo", "corrections_accuracy") - mean("sft", "corrections_accuracy")
    voice = mean("sft+dpo", "voice_similarity") - mean("sft", "voice_similarity")
    win = statistics.fmean(r["win_rate_dpo_over_sft"] for r in runs)
    met = gain >= TARGET_ACCURACY_GAIN and voice >= -VOICE_TOLERANCE
    print(f"held-out corrections preferred {gain:+.1%} (target +{TARGET_ACCURACY_GAIN:.0%}); "
          f"voice similarity {voice:+.3f} (no lower than -{VOICE_TOLERANCE}); win rate of SFT+DPO "
          f"over SFT {win:.2f} (judged both orders); {'met' if met else 'NOT met'}")  # fmt: skip
    out = ROOT / "bench/results/preference.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "runs": runs,
        "summary": {"accuracy_gain": gain, "voice_delta": voice, "win_rate": win, "met": met},
        "config": TrainConfig().hyperparameters(), "overrides": args.set, "versions": package_versions(),
        "git_sha": git_sha(),
    }, indent=2, ensure_ascii=False))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
