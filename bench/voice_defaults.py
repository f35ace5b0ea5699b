"""Which LoRA recipe lands a brand's voice? A sweep over the brand sets in ``bench/brands/``.

Each brand has ``train.jsonl`` (the trainer sees it: every 8th conversation is held back as the
validation set that selection may use) and ``test.jsonl`` (25%, never seen by training or
selection). One run per (brand, recipe) trains for the recipe's step budget with the voice probe
on the validation prompts, and scores the test split at every evaluation too (reported only), so
one run yields the test-split quality of every stopping rule: the adapter with the lowest
validation loss (ties within 5% to the later), the one with the best voice score on the
validation prompts, and the last. Results are written to the JSON after every run, so a partial
sweep survives an interruption.

A recipe named ``defaults`` runs ``TrainConfig()`` as shipped (its own budget, evaluations and
selection) and reports the test split of the adapter it keeps; ``defaults_before`` in the results
are the defaults shipped before this sweep (8 epochs, no step cap). ``--summary`` prints each
brand's recipes and rules against its best. CPU seconds are recorded next to
wall time because the machine is shared: they are what the run would take alone on its threads.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/voice_defaults.py --threads 1
    HF_HUB_OFFLINE=1 .venv/bin/python bench/voice_defaults.py --plan fizzpop:defaults,ledgerly:defaults
    HF_HUB_OFFLINE=1 .venv/bin/python bench/voice_defaults.py --held-out --threads 2

Brand sets marked ``"held_out": true`` in their ``brand.json`` are never swept: ``--held-out`` runs
the shipped defaults on them and checks the targets for brands the defaults were not chosen on
(test-split similarity >= 0.65; sign-off >= 95% where the brand has one, in the kept adapter's
greedy test replies as the bot serves them, at its reply budget, beside the probe's shorter one).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from brand_sets import BRANDS, brand_names, load_brand, served_greedy_replies

from brandvoice.bot.settings import Settings
from brandvoice.inference.base_model import load_fresh_base_model, load_tokenizer
from brandvoice.trainer.checkpoint import git_sha, package_versions
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora import train_lora
from brandvoice.trainer.voice_probe import VoiceProbe

ROOT = Path(__file__).resolve().parents[1]

# name -> (config overrides, step budget as "epochs" over the training set with a cap)
RECIPES: dict[str, dict[str, Any]] = {
    "lr2e-3_r16": {"learning_rate": 2e-3, "lora_r": 16, "lora_alpha": 32.0},
    "lr1e-3_r16": {"learning_rate": 1e-3, "lora_r": 16, "lora_alpha": 32.0},
    "lr3e-3_r16": {"learning_rate": 3e-3, "lora_r": 16, "lora_alpha": 32.0},
    "lr2e-3_r8": {"learning_rate": 2e-3, "lora_r": 8, "lora_alpha": 16.0},
    "defaults": {},  # TrainConfig() as shipped: its own budget, evaluations and selection
}
HELD_OUT_SIMILARITY = 0.65
HELD_OUT_SIGN_OFF = 0.95
PROBE_CPU = {"seconds": 0.0}
"""CPU time spent scoring the test split, taken out of a run's CPU time (the trainer never pays it)."""


class TimedProbe(VoiceProbe):
    def score(self, model: Any, tokenizer: Any) -> dict[str, float]:
        started = time.process_time()
        try:
            return super().score(model, tokenizer)
        finally:
            PROBE_CPU["seconds"] += time.process_time() - started


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def stopping_rules(evals: list[dict[str, Any]], loss_tolerance: float) -> dict[str, dict]:
    """The test-split metrics of the adapter each stopping rule would keep."""
    lowest = min(e["eval_loss"] for e in evals)
    by_loss = [e for e in evals if e["eval_loss"] <= lowest * (1 + loss_tolerance)][-1]
    best_voice = max(e["voice_score"] for e in evals)
    by_voice = [e for e in evals if e["voice_score"] >= best_voice - 0.01][-1]
    by_test = max(evals, key=lambda e: e["test_voice_similarity"])
    picks = {"val_loss": by_loss, "voice": by_voice, "last": evals[-1], "oracle": by_test}
    return {
        rule: {"step": e["step"]}
        | {k.removeprefix("test_"): v for k, v in e.items() if k.startswith("test_")}
        for rule, e in picks.items()
    }


def run_one(
    brand: dict[str, Any],
    recipe: dict[str, Any],
    steps: int,
    eval_every: int,
    base: Any,
    tokenizer: Any,
    threads: int,
    tmp: Path,
) -> dict[str, Any]:
    machine = {"num_threads": threads, "device": "cpu"}
    if recipe:
        sweep = {"max_steps": steps, "eval_every": eval_every, "patience": 0, "select_by": "voice"}
        config = TrainConfig(**recipe, **sweep, **machine)
    else:
        config = TrainConfig(**machine)
    test = [r["messages"] for r in brand["test"]]
    probe = TimedProbe.from_conversations(test, tokenizer, sign_off=brand["sign_off"])
    started, cpu_started, PROBE_CPU["seconds"] = time.monotonic(), time.process_time(), 0.0
    result = train_lora(
        write_jsonl(tmp / "train.jsonl", brand["train"]), write_jsonl(tmp / "val.jsonl", brand["val"]),
        tmp / "out", config, base_model=copy.deepcopy(base), probes={"test": probe},
    )  # fmt: skip
    kept = next(e for e in result.evals if e["step"] == result.best_step)
    served = served_replies(probe, result.output_dir) if not recipe else {}
    return {
        "wall_seconds": round(time.monotonic() - started, 1),
        "train_cpu_seconds": round(time.process_time() - cpu_started - PROBE_CPU["seconds"], 1),
        "steps_run": result.steps,
        "best_step": result.best_step,
        "hyperparameters": config.hyperparameters(),
        "evals": result.evals,
        "rules": stopping_rules(result.evals, config.select_tolerance) if recipe else {},
        "kept": {k.removeprefix("test_"): v for k, v in kept.items() if k.startswith("test_")},
        "served": served,
    }


def served_replies(probe: VoiceProbe, adapter_dir: Path) -> dict[str, Any]:
    """The kept adapter's greedy test replies as the bot serves them (``LocalChat``, its reply
    budget): the probe cuts at the longest reference + 16 tokens to keep selection cheap, so a
    long reply's sign-off can fall past it although the bot would send it."""
    budget = Settings.model_fields["reply_max_tokens"].default
    replies = served_greedy_replies(list(probe.prompts), str(adapter_dir), budget)
    return probe.score_replies(replies) | {"max_new_tokens": budget, "replies": replies}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per brand, the test-split similarity and sign-off of every (recipe, stopping rule), the best
    of them (the oracle rule, which peeks at the test split, is shown but never counts as best),
    and how far the shipped defaults are from that best."""
    table: dict[str, Any] = {}
    for run in runs:
        rules = run["rules"] or {"kept": run["kept"]}
        for rule, metrics in rules.items():
            key = run["recipe"] if run["recipe"] == "defaults" else f"{run['recipe']}/{rule}"
            table.setdefault(run["brand"], {})[key] = {
                "similarity": round(metrics["voice_similarity"], 4),
                "sign_off": metrics.get("sign_off_rate"),
                "step": metrics.get("step", run["best_step"]),
                "train_cpu_seconds": run["train_cpu_seconds"],
            }
    summary: dict[str, Any] = {}
    for brand, rows in sorted(table.items()):
        real = {k: v for k, v in rows.items() if not k.endswith("/oracle")}
        best = max(real, key=lambda k: real[k]["similarity"])
        summary[brand] = {"best": best, "best_similarity": real[best]["similarity"], "rows": rows}
        print(f"\n{brand}: best {best} {real[best]['similarity']:.4f}")
        for key, v in sorted(rows.items(), key=lambda kv: -kv[1]["similarity"]):
            gap = v["similarity"] - real[best]["similarity"]
            sign = "-" if v["sign_off"] is None else f"{v['sign_off']:.0%}"
            print(f"  {key:<24} {v['similarity']:.4f} ({gap:+.4f})  sign-off {sign:>4}  "
                  f"step {v['step']:>3}  {v['train_cpu_seconds']:>6.1f} CPU-s")  # fmt: skip
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--brands", default="", help="comma-separated directory names (all)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names")
    parser.add_argument("--plan", default="", help="brand:recipe,... in this order (all pairs)")
    parser.add_argument("--epochs", type=float, default=5.0, help="step budget in epochs")
    parser.add_argument("--max-steps", type=int, default=32, help="cap on the step budget")
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run")
    parser.add_argument(
        "--out", type=Path, help="results JSON (bench/voice_defaults_results.json; with "
        "--held-out bench/results/voice_defaults_held_out.json)",
    )  # fmt: skip
    parser.add_argument("--summary", action="store_true", help="print the table of --out and stop")
    parser.add_argument(
        "--held-out", action="store_true",
        help="run the shipped defaults on the held-out brands and check them against the targets",
    )  # fmt: skip
    args = parser.parse_args()
    args.out = args.out or (
        ROOT / "bench/results/voice_defaults_held_out.json"
        if args.held_out
        else ROOT / "bench/voice_defaults_results.json"
    )
    if args.summary:
        summarize(json.loads(args.out.read_text())["runs"])
        return
    torch.set_num_threads(args.threads)
    names = args.brands.split(",") if args.brands else brand_names(args.held_out)
    brands = {name: load_brand(BRANDS / name) for name in names}
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    base = load_fresh_base_model(device="cpu").eval()
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "threads": args.threads, "load_at_start": os.getloadavg()},
        "versions": package_versions(), "git_sha": git_sha(),
        "splits": {n: {k: len(b[k]) for k in ("train", "val", "test")} for n, b in brands.items()},
        "runs": [],
    }  # fmt: skip
    if args.out.exists():
        report["runs"] = json.loads(args.out.read_text())["runs"]
        print(f"{args.out}: reusing {len(report['runs'])} finished run(s); delete it to rerun them")
    done = {(r["brand"], r["recipe"]) for r in report["runs"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    recipes = ["defaults"] if args.held_out else args.recipes.split(",")
    plan = (
        [p.split(":") for p in args.plan.split(",")]
        if args.plan
        else [[name, recipe] for recipe in recipes for name in brands]
    )
    for name, recipe_name in plan:
        brand = brands[name]
        if (name, recipe_name) not in done:
            batch = TrainConfig().batch_size
            steps = min(args.max_steps, math.ceil(args.epochs * len(brand["train"]) / batch))
            eval_every = max(1, math.ceil(steps / args.evals))
            with tempfile.TemporaryDirectory() as tmp:
                run = run_one(
                    brand, RECIPES[recipe_name], steps, eval_every, base, tokenizer,
                    args.threads, Path(tmp),
                )  # fmt: skip
            run = {"brand": name, "recipe": recipe_name, "steps": steps} | run
            run["load_after"] = os.getloadavg()
            report["runs"].append(run)
            args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
            rules = run["rules"] | {"kept": run["kept"]}
            summary = {r: round(v["voice_similarity"], 3) for r, v in rules.items()}
            print(
                name, recipe_name, run["steps_run"], run["train_cpu_seconds"], summary, flush=True
            )
    if args.held_out:
        check_held_out(report["runs"], brands)


def check_held_out(runs: list[dict[str, Any]], brands: dict[str, Any]) -> None:
    """The issue's targets for brands the defaults were not chosen on."""
    for run in runs:
        if run["brand"] not in brands or run["recipe"] != "defaults":
            continue
        kept, served = run["kept"], run["served"]
        sign_off = brands[run["brand"]]["sign_off"]
        verdicts = [f"similarity {kept['voice_similarity']:.3f} (target {HELD_OUT_SIMILARITY})"]
        if sign_off:
            verdicts.append(
                f"sign-off {served['sign_off_rate']:.0%} at the bot's {served['max_new_tokens']} "
                f"tokens, {kept['sign_off_rate']:.0%} at the probe's "
                f"(target {HELD_OUT_SIGN_OFF:.0%})"
            )
        passed = kept["voice_similarity"] >= HELD_OUT_SIMILARITY and (
            not sign_off or served["sign_off_rate"] >= HELD_OUT_SIGN_OFF
        )
        print(f"held out {run['brand']}: {', '.join(verdicts)}: {'pass' if passed else 'FAIL'}")


if __name__ == "__main__":
    main()
