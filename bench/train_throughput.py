"""Training throughput: our LoRA trainer against TRL's SFTTrainer + peft at its best, on CPU.

All train the packaged SmolLM2-135M-Instruct with the same LoRA config, data (the Pebble & Pine
sample set, tokenized once with our assistant-only labels and handed to TRL pre-tokenized, so all
train exactly the same target tokens), max length, batch, learning-rate schedule, seed and threads,
for one epoch each (the same token budget). Three configurations:

- ``ours``: our defaults.
- ``trl-best``: TRL's fastest CPU configuration, the one the floor applies to: no gradient
  checkpointing, ``train_sampling_strategy="group_by_length"`` (length-grouped batches, little
  padding), bf16 (autocast, base held in bf16) only where the CPU has native bf16 (AVX512-BF16 or
  AMX, as ours decides) else fp32, and eager attention up to 512 tokens: TRL's fastest kernel
  there, in bf16 (AVX512-BF16) and in fp32 (AVX2: eager 66.4 trained tokens/s against SDPA 56.1).
  ``padding_free`` is not used: TRL's SFTConfig documents it for FlashAttention 2/3 only, which
  does not run on CPU (and packing with ``"bfd"`` turns it on).
- ``trl-defaults``: TRL's defaults (gradient checkpointing, bf16 autocast, random batches), for
  reference.

Each run is its own process; ``--rounds`` runs the three in turn that many times (interleaved, the
start rotating), so a load change on a shared machine hits every side alike; the median is taken.
``--max-steps`` shortens every side for a quick check only: each sampler picks different batches
(lengths, share of trained tokens), so only whole epochs compare fairly.
Printed per configuration: trained tokens/s (labelled tokens, steady state: the first steps skipped,
the median of 3 windows), tokens per CPU-second (what a shared machine cannot steal), padding ratio
and validation loss scored by the same function; then ours / TRL-best (floor 2.0x, validation loss
within +2%) and ours / TRL-defaults. Last, the compute bound: each side's matmul FLOPs per trained
token (``training_flops``), the share of this machine's matmul peak it reached, and what ours
would be against TRL-best at 100% of that peak, the most a faster trainer (rather than fewer
FLOPs) could give here.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_throughput.py            # CPU, ~10 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_throughput.py --gpu-mfu  # CUDA: Qwen2.5-0.5B shape

``--gpu-mfu`` builds a Qwen2.5-0.5B-shaped model from its config (random weights, bf16) and reports
our trainer's tokens/s and MFU = tokens/s * 4 * N / peak, N = all matmul parameters including the
LM head (4N: forward 2N plus the input-gradient half of backward; the base is frozen).
Results go to ``bench/results/train_throughput_{cpu,gpu}.json`` with machine, versions and git sha.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src/brandvoice/samples/brand/examples.jsonl"
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}
SHARED = {
    "learning_rate": 1e-3,
    "warmup_ratio": 0.1,
    "batch_size": 4,
    "max_length": 1024,
    "seed": 0,
}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
WARMUP_STEPS = 3


def steady_tokens_per_second(marks: list[tuple[float, int]], warmup: int) -> list[float]:
    """Tokens/s in 3 equal windows of steps after ``warmup``; ``marks`` are (clock, tokens so far)
    at the end of each step, with the start as mark 0."""
    usable = marks[warmup:]
    size = (len(usable) - 1) // 3
    if size < 1:
        raise ValueError(f"need at least {warmup + 3} steps for 3 windows, got {len(marks) - 1}")
    windows = [usable[i * size : (i + 1) * size + 1] for i in range(3)]
    return [(w[-1][1] - w[0][1]) / (w[-1][0] - w[0][0]) for w in windows]


def training_flops(model_config: Any, positions: int, squares: int, head_positions: int) -> float:
    """Matmul FLOPs of LoRA training (all-linear, rank ``LORA["r"]``, frozen base) over a run.

    ``positions`` is every position fed to the model (padding included), ``squares`` the sum over
    rows of the padded width squared (attention), ``head_positions`` the positions the LM head
    projects (ours: the labelled ones; TRL: all). Forward is 2 FLOPs per weight per position;
    backward adds the input gradient (another 2) for the frozen weights, and the input and weight
    gradients (4) for LoRA's; attention is 4*d per (query, key) pair forward, twice that backward.
    """
    c = model_config
    head_dim = c.hidden_size // c.num_attention_heads
    kv = c.num_key_value_heads * head_dim
    shapes = [(c.hidden_size, c.hidden_size), (c.hidden_size, kv), (c.hidden_size, kv),
              (c.hidden_size, c.hidden_size), (c.hidden_size, c.intermediate_size),
              (c.hidden_size, c.intermediate_size), (c.intermediate_size, c.hidden_size)]  # fmt: skip
    frozen = c.num_hidden_layers * sum(i * o for i, o in shapes)
    lora = c.num_hidden_layers * sum(LORA["r"] * (i + o) for i, o in shapes)
    attention = c.num_hidden_layers * 4 * c.hidden_size * squares * 3
    head = c.hidden_size * c.vocab_size * head_positions * 4
    return 4 * frozen * positions + 6 * lora * positions + attention + head


def matmul_peak(dtype_name: str, threads: int) -> float:
    """FLOP/s of this machine on the model's own largest matmul (a batch of 1024 positions
    through an MLP projection), the best of 5: what no configuration can beat per FLOP."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a, b = torch.randn(1024, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - started) / 10)
    return 2 * 1024 * 576 * 1536 / best


class Marks:
    """Wall and process CPU clocks with tokens so far, at the start and after every step. CPU
    seconds are what a shared machine cannot steal, so tokens per CPU-second is reported too."""

    def __init__(self) -> None:
        self.wall: list[tuple[float, int]] = []
        self.cpu: list[tuple[float, int]] = []

    def add(self, tokens: int) -> None:
        self.wall.append((time.perf_counter(), tokens))
        self.cpu.append((time.process_time(), tokens))

    def summary(self) -> dict[str, Any]:
        wall = steady_tokens_per_second(self.wall, WARMUP_STEPS)
        cpu = steady_tokens_per_second(self.cpu, WARMUP_STEPS)
        return {"windows": wall, "cpu_windows": cpu}


def split_files(directory: Path, n_val: int) -> tuple[Path, Path]:
    rows = [line for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line]
    val = rows[7::8][:n_val]
    train = [r for r in rows if r not in val]
    paths = directory / "train.jsonl", directory / "val.jsonl"
    for path, part in zip(paths, (train, val), strict=True):
        path.write_text("\n".join(part) + "\n", encoding="utf-8")
    return paths


def run_ours(
    train: Path, val: Path, threads: int, out: Path, base: Any, max_steps: int | None
) -> dict[str, Any]:
    from brandvoice.trainer.config import TrainConfig
    from brandvoice.trainer.lora import TrainCallback, train_lora

    marks = Marks()

    class Clock(TrainCallback):
        def on_step(self, step: int, total: int, metrics: Any) -> None:
            marks.add(int(metrics["trained_tokens"]))

    config = TrainConfig(
        lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"],
        epochs=1, max_steps=max_steps, num_threads=threads, device="cpu", **SHARED,
    )  # fmt: skip
    from brandvoice.inference.base_model import load_tokenizer
    from brandvoice.trainer.lora_model import pad_multiple_for, use_bf16
    from brandvoice.trainer.sft_data import (
        padded_width,
        padding_ratio,
        plan_steps,
        tokenize_chat_file,
    )

    lengths = tokenize_chat_file(
        train, load_tokenizer(config.base_model), config.max_length
    ).lengths
    plan = plan_steps(
        lengths, batch_size=4, grad_accum_steps=1, epochs=1, max_steps=max_steps, seed=0
    )
    bf16 = use_bf16(config, "cpu")
    batches = [b for step in plan for b in step]
    multiple = pad_multiple_for(config, bf16)
    widths = [padded_width((lengths[i] for i in b), multiple) for b in batches]
    marks.add(0)
    result = train_lora(train, val, out, config, Clock(), base_model=copy.deepcopy(base))
    positions = sum(w * len(b) for w, b in zip(widths, batches, strict=True))
    squares = sum(w * w * len(b) for w, b in zip(widths, batches, strict=True))
    return marks.summary() | {
        "flops": training_flops(base.config, positions, squares, result.trained_tokens),
        "steps": result.steps,
        "trained_tokens": result.trained_tokens,
        "padding_ratio": padding_ratio(batches, lengths, multiple),
        "adapter": str(out),
        "precision": "bf16" if bf16 else "fp32",
    }


CONFIGURATIONS = ("ours", "trl-best", "trl-defaults")
FLOOR_VS_BEST = 2.0
VAL_LOSS_LIMIT = 0.02


def trl_best_settings(base: Any, max_example_length: int) -> tuple[Any, dict[str, Any]]:
    """TRL's fastest CPU setup (see the module docstring): the model to hand it and SFTConfig fields."""
    import torch

    from brandvoice.inference.base_model import cpu_has_native_bf16

    bf16 = cpu_has_native_bf16()
    model = copy.deepcopy(base).to(dtype=torch.bfloat16 if bf16 else torch.float32)
    if max_example_length <= 512:
        model.set_attn_implementation("eager")
    fields = {"gradient_checkpointing": False, "bf16": bf16,
              "train_sampling_strategy": "group_by_length"}  # fmt: skip
    return model, fields


def run_trl(
    train: Path, val: Path, threads: int, out: Path, base: Any, max_steps: int | None, best: bool
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from brandvoice.inference.base_model import load_tokenizer
    from brandvoice.trainer.sft_data import IGNORE_INDEX, tokenize_chat_file

    torch.set_num_threads(threads)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    examples = tokenize_chat_file(train, tokenizer, SHARED["max_length"]).examples
    dataset = Dataset.from_list(
        [
            {
                "input_ids": e.input_ids,
                "assistant_masks": [int(x != IGNORE_INDEX) for x in e.labels],
            }
            for e in examples
        ]
    )
    counts = {"trained": 0, "positions": 0, "real": 0, "squares": 0}
    marks = Marks()

    class CountingSFTTrainer(SFTTrainer):
        """Counts what each micro-batch trains; the loss itself is TRL's."""

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any
        ) -> Any:
            if model.training:
                counts["trained"] += int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
                counts["positions"] += inputs["input_ids"].numel()
                counts["real"] += int(inputs["attention_mask"].sum())
                rows, width = inputs["input_ids"].shape
                counts["squares"] += rows * width * width
            return super().compute_loss(model, inputs, *args, **kwargs)

    class Clock(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            marks.add(0)

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            marks.add(counts["trained"])

    model, best_fields = copy.deepcopy(base), {}
    if best:
        model, best_fields = trl_best_settings(base, max(len(e.input_ids) for e in examples))
    attention = model.config._attn_implementation
    args = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=SHARED["batch_size"],
        gradient_accumulation_steps=1, num_train_epochs=1, learning_rate=SHARED["learning_rate"],
        lr_scheduler_type="cosine", warmup_steps=SHARED["warmup_ratio"], seed=SHARED["seed"],
        max_length=SHARED["max_length"], save_strategy="no", report_to="none", logging_steps=1000,
        use_cpu=True, disable_tqdm=True, max_steps=max_steps or -1, **best_fields,
    )  # fmt: skip
    peft_config = LoraConfig(task_type="CAUSAL_LM", **LORA)
    trainer = CountingSFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
        peft_config=peft_config, callbacks=[Clock()],
    )  # fmt: skip
    trainer.train()
    trainer.model.save_pretrained(str(out))
    return marks.summary() | {
        "flops": training_flops(
            base.config, counts["positions"], counts["squares"], counts["positions"]
        ),
        "steps": trainer.state.global_step,
        "trained_tokens": counts["trained"],
        "padding_ratio": 1 - counts["real"] / counts["positions"],
        "adapter": str(out),
        "precision": "bf16" if args.bf16 else "fp32",
        "gradient_checkpointing": args.gradient_checkpointing,
        "sampling": args.train_sampling_strategy,
        "attention": attention,
    }


def worker(
    name: str, train: Path, val: Path, threads: int, out: Path, max_steps: int | None
) -> None:
    import torch
    from peft import PeftModel

    from brandvoice.inference.base_model import load_fresh_base_model
    from brandvoice.trainer.lora_model import validation_loss

    torch.set_num_threads(threads)
    base = load_fresh_base_model(device="cpu")
    if name == "ours":
        result = run_ours(train, val, threads, out, base, max_steps)
    else:
        result = run_trl(train, val, threads, out, base, max_steps, best=name == "trl-best")
    tuned = PeftModel.from_pretrained(copy.deepcopy(base), result["adapter"]).eval()
    result["val_loss"] = validation_loss(tuned, val, max_length=SHARED["max_length"])
    result["tokens_per_s"] = statistics.median(result["windows"])
    result["tokens_per_cpu_s"] = statistics.median(result["cpu_windows"])
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(name: str, threads: int, data: str, max_steps: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", name, "--threads", str(threads)]
    command += ["--data", data] + (["--max-steps", str(max_steps)] if max_steps else [])
    load = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not line:
        raise SystemExit(f"{name} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(line[-1][len("RESULT ") :])
    return result | {"wall_s": round(time.monotonic() - started, 1), "load_before": load}


def compare_cpu(
    threads: int, rounds: int, names: tuple[str, ...], max_steps: int | None
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        split_files(Path(tmp), n_val=12)
        for round_index in range(rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                runs[name].append(run_worker(name, threads, tmp, max_steps))
                done = runs[name][-1]
                print(f"round {round_index + 1}/{rounds}: {name} {done['tokens_per_s']:.1f} "
                      f"tokens/s, {done['tokens_per_cpu_s']:.1f} per CPU-s, "
                      f"val loss {done['val_loss']:.4f}", flush=True)  # fmt: skip
    results = {name: summarize(rs) for name, rs in runs.items()}
    print(f"\n{'configuration':<14}{'tokens/s':>10}{'tok/CPU-s':>11}{'padding':>9}{'val loss':>10}"
          f"{'steps':>7}{'trained':>9}  setup")  # fmt: skip
    for name, r in results.items():
        print(f"{name:<14}{r['tokens_per_s']:>10.1f}{r['tokens_per_cpu_s']:>11.1f}"
              f"{r['padding_ratio']:>9.1%}{r['val_loss']:>10.4f}{r['steps']:>7}"
              f"{r['trained_tokens']:>9}  {setup(r)}")  # fmt: skip
    summary: dict[str, Any] = {"results": results, "rounds": rounds, "max_steps": max_steps}
    summary["compute"] = compute_bound(results, threads)
    ours = results.get("ours")
    for baseline in ("trl-best", "trl-defaults"):
        if ours is None or baseline not in results:
            continue
        other = results[baseline]
        ratio = ours["tokens_per_s"] / other["tokens_per_s"]
        cpu_ratio = ours["tokens_per_cpu_s"] / other["tokens_per_cpu_s"]
        val_delta = ours["val_loss"] / other["val_loss"] - 1
        floor = f" (floor {FLOOR_VS_BEST}x)" if baseline == "trl-best" else ""
        print(f"ours / {baseline}: {ratio:.2f}x tokens/s{floor}, {cpu_ratio:.2f}x tokens per "
              f"CPU-second; val loss {val_delta:+.1%} (limit +{VAL_LOSS_LIMIT:.0%})")  # fmt: skip
        summary[baseline] = {
            "speedup": ratio,
            "cpu_speedup": cpu_ratio,
            "val_loss_delta": val_delta,
        }
    if "trl-best" in summary:
        best = summary["trl-best"]
        summary["passes"] = (
            best["speedup"] >= FLOOR_VS_BEST and best["val_loss_delta"] <= VAL_LOSS_LIMIT
        )
    print("(a shared machine: the runs are interleaved so load hits every side alike; tokens per "
          "CPU-second is the figure contention moves least)")  # fmt: skip
    return summary


def compute_bound(results: dict[str, dict[str, Any]], threads: int) -> dict[str, Any]:
    """Each side's matmul FLOPs per trained token and the share of this machine's matmul peak it
    reached, and the most ours could gain over TRL-best here: its FLOPs ratio at 100% of peak."""
    precision = next(iter(results.values()))["precision"]
    peak = matmul_peak(precision, threads)
    print(f"\nmatmul peak here ({precision}, {threads} threads): {peak / 1e9:.0f} GFLOP/s")
    bound: dict[str, Any] = {"peak_flops": peak}
    for name, r in results.items():
        per_token = r["flops"] / r["trained_tokens"]
        achieved = per_token * r["tokens_per_s"]
        bound[name] = {"flops_per_trained_token": per_token, "achieved_flops": achieved}
        print(f"{name:<14}{per_token / 1e9:.2f} GFLOP per trained token, "
              f"{achieved / 1e9:.0f} GFLOP/s = {achieved / peak:.0%} of peak")  # fmt: skip
    if "ours" in bound and "trl-best" in bound:
        ours_at_peak = peak / bound["ours"]["flops_per_trained_token"]
        bound["ceiling_vs_trl_best"] = ours_at_peak / results["trl-best"]["tokens_per_s"]
        print(f"ours at 100% of peak would be {bound['ceiling_vs_trl_best']:.2f}x TRL-best as "
              "measured: the most any change to our trainer's speed (not its FLOPs) can give")  # fmt: skip
    return bound


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The first round's details with the medians over rounds of the throughputs."""
    first = dict(rounds[0])
    for key in ("tokens_per_s", "tokens_per_cpu_s"):
        first[key] = statistics.median(r[key] for r in rounds)
        first[f"{key}_rounds"] = [r[key] for r in rounds]
    first["val_loss_rounds"] = [r["val_loss"] for r in rounds]
    return first


def setup(result: dict[str, Any]) -> str:
    if "sampling" not in result:
        return f"{result['precision']}, length-grouped"
    checkpointing = (
        "grad. checkpointing" if result["gradient_checkpointing"] else "no checkpointing"
    )
    return f"{result['precision']}, {checkpointing}, {result['sampling']}, {result['attention']}"


def gpu_mfu(
    steps: int, batch_size: int, seq_len: int, device: str = "cuda", layers: int = 24
) -> dict[str, Any]:
    """Our trainer on a Qwen2.5-0.5B-shaped model (random bf16 weights) on one CUDA GPU.

    ``device="cpu"`` with a few ``layers`` only checks that the path runs (no MFU)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from brandvoice.trainer.config import TrainConfig
    from brandvoice.trainer.lora import TrainCallback, train_lora

    gpu = device == "cuda"
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu-mfu needs a CUDA GPU")
    config = Qwen2Config(
        hidden_size=896, num_hidden_layers=layers, num_attention_heads=14, num_key_value_heads=2,
        intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True,
        max_position_embeddings=32768, rope_theta=1_000_000.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        config, dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    linear = sum(
        m.weight.numel() for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lm_head" not in name
    )  # fmt: skip
    n_matmul = linear + config.vocab_size * config.hidden_size  # LM head (tied, still a matmul)
    marks: list[tuple[float, int]] = []
    processed = [0]

    class Clock(TrainCallback):
        def on_step(self, step: int, total: int, metrics: Any) -> None:
            if gpu:
                torch.cuda.synchronize()
            processed[0] += batch_size * seq_len
            marks.append((time.perf_counter(), processed[0]))

    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        train.write_text(_long_chats(batch_size * steps, seq_len), encoding="utf-8")
        train_config = TrainConfig(
            batch_size=batch_size, max_length=seq_len, max_steps=steps, device=device,
            learning_rate=1e-4, checkpoint_every=10**6,
        )  # fmt: skip
        marks.append((time.perf_counter(), 0))
        result = train_lora(train, None, Path(tmp) / "out", train_config, Clock(), base_model=model)
    prompt_tokens = processed[0] - result.trained_tokens
    if not 0 <= prompt_tokens <= 64 * batch_size * steps:
        raise SystemExit(f"examples are not {seq_len} tokens of mostly reply; fix _long_chats")
    windows = steady_tokens_per_second(marks, max(3, steps // 5))
    tokens_per_s = statistics.median(windows)
    name = torch.cuda.get_device_name() if gpu else "cpu (smoke run, no MFU)"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), PEAK_BF16_FLOPS["H100"])
    mfu = tokens_per_s * 4 * n_matmul / peak if gpu else None
    print(f"{name}: {tokens_per_s:,.0f} tokens/s (windows {[round(w) for w in windows]}), "
          f"N = {n_matmul / 1e6:.0f}M matmul params, "
          f"MFU {f'{mfu:.1%}' if mfu else '-'} of {peak / 1e12:.0f} TFLOPS bf16 dense")  # fmt: skip
    return {"gpu": name, "tokens_per_s": tokens_per_s, "windows": windows, "n_matmul": n_matmul,
            "peak_flops": peak, "mfu": mfu, "batch_size": batch_size, "seq_len": seq_len,
            "steps": result.steps, "trained_tokens": result.trained_tokens}  # fmt: skip


def _long_chats(count: int, seq_len: int) -> str:
    """Chats of about ``seq_len`` tokens, nearly all of it assistant reply (so nearly all trained);
    the SmolLM2 tokenizer writes them, whose ids all fit Qwen's vocabulary."""
    replies = [
        json.loads(line)["messages"][-1]["content"]
        for line in EXAMPLES.read_text(encoding="utf-8").splitlines()
        if line
    ]
    rows = []
    for i in range(count):
        reply = " ".join(replies[(i + k) % len(replies)] for k in range(seq_len // 60 + 2))
        messages = [
            {"role": "user", "content": f"Question {i}"},
            {"role": "assistant", "content": reply},
        ]
        rows.append(json.dumps({"messages": messages}))
    return "\n".join(rows) + "\n"


def record(name: str, payload: dict[str, Any]) -> Path:
    from bench_record import write_result

    payload |= {"config": {"lora": LORA, **SHARED, "warmup_steps_skipped": WARMUP_STEPS}}
    return write_result(
        f"train_throughput_{name}", payload, ["torch", "transformers", "peft", "accelerate", "trl"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-mfu", action="store_true")
    parser.add_argument("--gpu-steps", type=int, default=40)
    parser.add_argument("--gpu-batch", type=int, default=8)
    parser.add_argument("--mfu-smoke", action="store_true", help="the --gpu-mfu path on CPU, tiny")
    parser.add_argument("--gpu-seq-len", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved runs of each side")
    parser.add_argument(
        "--max-steps", type=int, help="stop every side after this many steps (default: 1 epoch)"
    )
    parser.add_argument(
        "--configs", default=",".join(CONFIGURATIONS), help="comma-separated subset to run"
    )
    parser.add_argument("--worker", choices=CONFIGURATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        data = Path(args.data)
        out = data / f"adapter-{args.worker}"
        train, val = data / "train.jsonl", data / "val.jsonl"
        worker(args.worker, train, val, args.threads, out, args.max_steps)
    elif args.mfu_smoke:
        gpu_mfu(steps=8, batch_size=2, seq_len=128, device="cpu", layers=2)
    elif args.gpu_mfu:
        record("gpu", gpu_mfu(args.gpu_steps, args.gpu_batch, args.gpu_seq_len))
    else:
        names = tuple(n for n in args.configs.split(",") if n)
        if unknown := set(names) - set(CONFIGURATIONS):
            raise SystemExit(f"--configs: unknown {sorted(unknown)}; choose from {CONFIGURATIONS}")
        record(
            "cpu",
            {"threads": args.threads}
            | compare_cpu(args.threads, args.rounds, names, args.max_steps),
        )


if __name__ == "__main__":
    main()
