"""A real few-step LoRA training of the packaged SmolLM2: loss, adapter, resume, manifest.

The base is loaded once per session; each run trains a deep copy of it.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from brandvoice.inference.local_chat import LocalChat
from brandvoice.trainer.checkpoint import FitState, latest_checkpoint
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.evaluate import assistant_token_loss
from brandvoice.trainer.lora import (
    ProgressLines,
    TrainCallback,
    TrainResult,
    record_eval,
    train_lora,
)
from brandvoice.trainer.lora_model import TargetTokenLoss, validation_loss
from brandvoice.trainer.sft_data import collate_packed, collate_padded, tokenize_chat_file

pytestmark = pytest.mark.slow

CONFIG = TrainConfig(
    max_steps=6,
    batch_size=2,
    max_length=128,
    eval_every=3,
    seed=1,
    lora_dropout=0.1,  # so resuming must restore the dropout RNG
    precision="fp32",
    num_threads=1,
)
PROMPT = [
    {"role": "system", "content": "You are the Pebble & Pine team assistant."},
    {"role": "user", "content": "Can I swap my tent for a bigger one?"},
]


@dataclass
class Recorder(TrainCallback):
    stop_at: int | None = None
    steps: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    def on_step(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        self.steps.append((step, total, dict(metrics)))
        return "stop" if step == self.stop_at else None

    def on_eval(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        self.evals.append((step, dict(metrics)))
        return None


@dataclass
class Runs:
    straight: TrainResult
    straight_log: Recorder
    interrupted: TrainResult
    checkpoint: Path | None
    resumed: TrainResult


@pytest.fixture(scope="module")
def runs(fresh_base: Any, brand_files: tuple[Path, Path], tmp_path_factory: Any) -> Runs:
    train, val = brand_files
    root = tmp_path_factory.mktemp("runs")
    log = Recorder()
    straight = train_lora(
        train, val, root / "straight", CONFIG, log, snapshot_hash="abc123",
        base_model=copy.deepcopy(fresh_base),
    )  # fmt: skip
    interrupted = train_lora(
        train, val, root / "resumed", CONFIG, Recorder(stop_at=3),
        base_model=copy.deepcopy(fresh_base),
    )  # fmt: skip
    checkpoint = latest_checkpoint(root / "resumed")
    resumed = train_lora(
        train, val, root / "resumed", CONFIG, resume_from=root / "resumed",
        base_model=copy.deepcopy(fresh_base),
    )  # fmt: skip
    return Runs(straight, log, interrupted, checkpoint, resumed)


def test_training_lowers_the_loss_on_the_same_examples(runs: Runs) -> None:
    steps = runs.straight_log.steps
    assert [(s, total) for s, total, _ in steps] == [(i, 6) for i in range(1, 7)]

    def epoch_loss(epoch_steps: list[dict[str, float]]) -> float:  # 4 examples, 2 per step
        return sum(m["loss"] * m["tokens"] for m in epoch_steps) / sum(
            m["tokens"] for m in epoch_steps
        )

    first = epoch_loss([m for _, _, m in steps[:2]])
    last = epoch_loss([m for _, _, m in steps[4:]])
    assert last < 0.9 * first
    assert runs.straight.evals[-1]["eval_loss"] < runs.straight.evals[0]["eval_loss"]


def test_adapter_loads_with_peft_and_changes_greedy_output(
    runs: Runs, fresh_base: Any, tokenizer: Any, brand_files: tuple[Path, Path]
) -> None:
    from peft import PeftModel

    out = runs.straight.output_dir
    assert {"adapter_model.safetensors", "adapter_config.json", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "checkpoints").exists()
    inputs = tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )

    def greedy(model: Any) -> str:
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        return tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :])

    tuned = PeftModel.from_pretrained(copy.deepcopy(fresh_base), str(out)).eval()
    assert greedy(tuned) != greedy(fresh_base)
    # The written adapter is the best one, scored by the helper evaluation reuses.
    best = runs.straight.best_eval_loss
    assert validation_loss(tuned, brand_files[1], max_length=128) == pytest.approx(best, rel=1e-4)
    # Evaluation scores it through LocalChat's public scoring interface to the same figure. On a
    # bf16 base LocalChat holds the adapter in bf16 too (8-bit mantissa, 0.4% per weight): the
    # two differ by up to a few parts in 1,000 with the adapter (a wrong adapter or label is far off).
    chat = LocalChat(adapter=out, device="cpu")
    assert assistant_token_loss(chat, brand_files[1], max_length=128) == pytest.approx(
        best, rel=1e-4 if chat.base.model.dtype == torch.float32 else 5e-3
    )


def test_resuming_from_a_mid_run_checkpoint_reaches_the_uninterrupted_result(runs: Runs) -> None:
    assert runs.interrupted.status == "cancelled" and runs.interrupted.steps == 3
    assert runs.checkpoint is not None and runs.checkpoint.name == "step-000003"
    assert runs.resumed.status == "completed" and runs.resumed.steps == 6
    assert runs.resumed.final_train_loss == pytest.approx(runs.straight.final_train_loss, abs=1e-6)
    assert [e["step"] for e in runs.resumed.evals] == [3, 6]
    for mine, theirs in zip(runs.resumed.evals, runs.straight.evals, strict=True):
        assert mine["eval_loss"] == pytest.approx(theirs["eval_loss"], abs=1e-6)
    resumed = load_file(runs.resumed.output_dir / "adapter_model.safetensors")
    straight = load_file(runs.straight.output_dir / "adapter_model.safetensors")
    assert resumed.keys() == straight.keys()
    for name, weight in straight.items():
        torch.testing.assert_close(resumed[name], weight, atol=1e-6, rtol=0)


def test_manifest_records_what_produced_the_adapter(runs: Runs) -> None:
    manifest = json.loads((runs.straight.output_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["snapshot_hash"] == "abc123"
    assert manifest["base_model"] == "smollm2-135m-instruct"
    assert manifest["hyperparameters"]["learning_rate"] == CONFIG.learning_rate
    assert manifest["hyperparameters"]["lora_r"] == 16
    assert [e["step"] for e in manifest["evals"]] == [3, 6]
    lowest = min(e["eval_loss"] for e in manifest["evals"])
    tied = [e for e in manifest["evals"] if e["eval_loss"] <= lowest * 1.05]
    assert manifest["best"] == {
        "step": tied[-1]["step"],
        "eval_loss": tied[-1]["eval_loss"],
        "lowest_eval_loss": lowest,
    }
    assert manifest["trained_tokens"] == sum(m["tokens"] for _, _, m in runs.straight_log.steps)
    assert manifest["seconds"] > 0
    assert {"torch", "transformers", "peft"} <= manifest["versions"].keys()
    assert all(manifest["versions"][k] for k in ("torch", "transformers", "peft"))
    assert "git_sha" in manifest
    adapter_config = json.loads((runs.straight.output_dir / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16 and adapter_config["lora_alpha"] == 32


def test_packed_batches_score_like_padded_ones(
    fresh_base: Any, tokenizer: Any, brand_files: Any
) -> None:
    """Packing keeps examples apart: same summed loss as padding them separately."""
    examples = tokenize_chat_file(brand_files[0], tokenizer, 128).examples[:3]
    loss = TargetTokenLoss(fresh_base)
    with torch.no_grad():
        padded_sum, padded_count = loss(**collate_padded(examples, tokenizer.pad_token_id))
        packed_sum, packed_count = loss(**collate_packed(examples))
    assert packed_count == padded_count
    torch.testing.assert_close(packed_sum, padded_sum, rtol=1e-4, atol=1e-3)


def test_early_stopping_fires_when_validation_rises_while_training_falls() -> None:
    fit = FitState()
    # (eval, train): best at 2; step 3 is within 5% of it, so it ties and, being later, is kept
    sequence = [(2.0, 3.0), (1.8, 2.5), (1.85, 2.0), (2.1, 1.5), (2.3, 1.0)]
    verdicts = []
    for step, (eval_loss, train_loss) in enumerate(sequence, start=1):
        fit.step = step
        verdicts.append(record_eval(fit, eval_loss, train_loss, patience=2, tolerance=0.05))
    assert verdicts == [(True, False), (True, False), (True, False), (False, False), (False, True)]
    assert (fit.best_step, fit.best_eval_loss, fit.lowest_eval_loss) == (3, 1.85, 1.8)

    strict = FitState()
    for step, (eval_loss, train_loss) in enumerate(sequence[:3], start=1):
        strict.step = step
        record_eval(strict, eval_loss, train_loss, patience=2, tolerance=0.0)
    assert strict.best_step == 2

    plateau = FitState()  # validation rising while training does not fall: not overfitting
    for step, (eval_loss, train_loss) in enumerate([(2.0, 3.0), (2.5, 3.1), (2.6, 3.2)], 1):
        plateau.step = step
        assert record_eval(plateau, eval_loss, train_loss, patience=1) == (step == 1, False)


def test_progress_lines_report_step_loss_and_eta_every_n_steps() -> None:
    stream = io.StringIO()
    lines = ProgressLines(stream, every=10)
    for step in range(1, 31):
        metrics = {"loss": 3.0 - step / 10, "elapsed_s": 2.0 * step, "trained_tokens": 100 * step}
        lines.on_step(step, 30, metrics)
        if step == 30:
            lines.on_eval(step, 30, {"eval_loss": 1.25, "best_eval_loss": 1.25})
    assert stream.getvalue().splitlines() == [
        "train step 1/30  loss 2.9000  50 tok/s  elapsed 0:00:02  ETA 0:00:58",
        "train step 10/30  loss 2.0000  50 tok/s  elapsed 0:00:20  ETA 0:00:40",
        "train step 20/30  loss 1.0000  50 tok/s  elapsed 0:00:40  ETA 0:00:20",
        "train step 30/30  loss 0.0000  50 tok/s  elapsed 0:01:00  ETA 0:00:00",
        "eval  step 30/30  val loss 1.2500  best 1.2500",
    ]


def test_training_prints_progress_lines_when_stdout_is_not_a_terminal(
    fresh_base: Any, brand_files: tuple[Path, Path], tmp_path: Path, capsys: Any
) -> None:
    train, val = brand_files
    config = CONFIG.model_copy(update={"max_steps": 2, "eval_every": 2})
    assert not sys.stdout.isatty()
    train_lora(train, val, tmp_path / "run", config, base_model=copy.deepcopy(fresh_base))
    printed = capsys.readouterr().out.splitlines()
    assert [line.split("  loss")[0] for line in printed if line.startswith("train")] == [
        "train step 1/2",
        "train step 2/2",
    ]
    assert printed[-2].endswith("ETA 0:00:00")
    assert printed[-1].startswith("eval  step 2/2  val loss ")
