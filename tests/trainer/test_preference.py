"""The preference stage: DPO's loss by hand, reply log-probabilities on a tiny model, and a real
SFT + DPO run of the packaged SmolLM2 that moves the chosen replies above the rejected ones."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from brandvoice.store.preference_jsonl import PreferenceRecord
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora import TrainCallback, TrainResult, train_lora
from brandvoice.trainer.preference import ReplyLogProbs, dpo_loss
from brandvoice.trainer.preference_data import collate_pairs, tokenize_pairs

SIGN_OFF = "\n\nHappy trails! 🌲"


def test_dpo_loss_matches_the_formula_by_hand() -> None:
    # margin = 0.1 * ((-10 - -11) - (-12 - -11)) = 0.2; loss = log(1 + e^-0.2)
    losses, margins = dpo_loss(
        torch.tensor([-10.0, -12.0]),
        torch.tensor([-12.0, -10.0]),
        torch.tensor([-11.0, -11.0]),
        torch.tensor([-11.0, -11.0]),
        beta=0.1,
    )
    assert margins.tolist() == pytest.approx([0.2, -0.2])
    assert losses.tolist() == pytest.approx([math.log1p(math.exp(-0.2)), math.log1p(math.exp(0.2))])


def test_reply_log_probs_equal_a_full_softmax_sum_on_a_tiny_model(tokenizer: Any) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    prompt = [{"role": "user", "content": "Is the tent waterproof?"}]
    pairs = tokenize_pairs(
        [
            PreferenceRecord(
                prompt, "It is water-resistant." + SIGN_OFF, "Yes, fully waterproof forever."
            )
        ],
        tokenizer,
        max_length=128,
    ).pairs
    batch = collate_pairs(pairs, pad_id=0, multiple=16)
    with torch.no_grad():
        sums, counts = ReplyLogProbs(model)(**batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = []
    for row in range(2):
        logps = F.log_softmax(logits[row, :-1].float(), dim=-1)
        labels = batch["labels"][row, 1:]
        keep = labels != -100
        expected.append(logps[keep].gather(1, labels[keep][:, None]).sum().item())
    assert sums.tolist() == pytest.approx(expected, rel=1e-5)
    side_targets = [pairs[0].chosen.n_targets, pairs[0].rejected.n_targets]
    assert counts.tolist() == side_targets
    # Only the reply and its end-of-turn token are scored, never the prompt.
    reply_ids = tokenizer("It is water-resistant.", add_special_tokens=False)["input_ids"]
    first_target = batch["labels"][0].ne(-100).nonzero()[0].item()
    assert batch["input_ids"][0, first_target : first_target + len(reply_ids)].tolist() == reply_ids


def _pairs(count: int, offset: int = 0) -> list[PreferenceRecord]:
    """The model's typical faults fixed: the chosen reply is short and signs off, the rejected
    one rambles, promises what no policy says and never signs off."""
    items = ["tent", "jacket", "pack", "stove", "sleeping bag", "boots", "headlamp", "poles"]
    pairs = []
    for index in range(offset, offset + count):
        item = items[index % len(items)]
        prompt = [
            {"role": "system", "content": "You are the Pebble & Pine team assistant."},
            {"role": "user", "content": f"Can I return my {item}? (order {1000 + index})"},
        ]
        chosen = f"Yes, you can. Send the {item} back within 60 days for a full refund." + SIGN_OFF
        rejected = (
            f"Absolutely!!! We will give you a free {item} for life and a bonus gift card, "
            "no questions asked, whenever you want, forever."
        )
        pairs.append(PreferenceRecord(prompt, chosen, rejected))
    return pairs


@dataclass
class Runs:
    straight: TrainResult
    interrupted: TrainResult
    resumed: TrainResult


STAGE_CONFIG = TrainConfig(
    max_steps=1, batch_size=4, max_length=96, precision="fp32", num_threads=2, seed=0,
    preference_min_pairs=4, preference_epochs=2, preference_learning_rate=1e-3,
    preference_sft_weight=0.0,
)  # fmt: skip


class StopAtStageStep(TrainCallback):
    """Stops the run at the first step of the preference stage (the second stage to start)."""

    def __init__(self) -> None:
        self.stage = 0

    def on_step(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        self.stage += step == 1
        return "stop" if self.stage == 2 else None


@pytest.fixture(scope="module")
def runs(fresh_base: Any, brand_files: tuple[Path, Path], tmp_path_factory: Any) -> Runs:
    train, _ = brand_files
    root = tmp_path_factory.mktemp("preference")
    pairs = (_pairs(4), _pairs(2, offset=4))

    def run(name: str, callback: TrainCallback | None = None, resume: Path | None = None) -> Any:
        return train_lora(
            train, None, root / name, STAGE_CONFIG, callback, resume_from=resume,
            base_model=copy.deepcopy(fresh_base), preferences=pairs,
        )  # fmt: skip

    straight = run("straight")
    interrupted = run("first-attempt", StopAtStageStep())
    return Runs(straight, interrupted, run("second-attempt", resume=root / "first-attempt"))


@pytest.mark.slow
def test_sft_then_dpo_prefers_the_chosen_replies_on_held_out_pairs(runs: Runs) -> None:
    summary = runs.straight.manifest["preference"]
    assert summary["used"] is True
    assert (summary["pairs"], summary["val_pairs"], summary["steps"]) == (4, 2, 2)
    assert summary["after"]["preference_loss"] < summary["before"]["preference_loss"]
    assert summary["after"]["preference_reward_accuracy"] == 1.0
    out = runs.straight.output_dir
    assert json.loads((out / "manifest.json").read_text())["preference"] == summary
    assert not (out / "preference-checkpoints").exists()


@pytest.mark.slow
def test_an_interrupted_preference_stage_resumes_to_the_uninterrupted_adapter(runs: Runs) -> None:
    assert runs.interrupted.status == "cancelled"
    assert (runs.interrupted.output_dir / "preference-checkpoints").is_dir()
    resumed, straight = runs.resumed.manifest, runs.straight.manifest
    assert resumed["preference"]["used"] is True and resumed["preference"]["steps"] == 2
    assert resumed["steps"] == straight["steps"] == 1  # supervised training was not redone
    assert resumed["preference"]["after"] == pytest.approx(
        straight["preference"]["after"], rel=1e-4
    )
    mine = load_file(runs.resumed.output_dir / "adapter_model.safetensors")
    theirs = load_file(runs.straight.output_dir / "adapter_model.safetensors")
    assert mine.keys() == theirs.keys()
    for name, tensor in mine.items():
        torch.testing.assert_close(tensor, theirs[name], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_too_few_pairs_skip_the_stage_and_say_why(
    fresh_base: Any, brand_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = brand_files
    config = TrainConfig(
        max_steps=1, batch_size=4, max_length=96, precision="fp32", num_threads=2,
        preference_min_pairs=20,
    )  # fmt: skip
    result = train_lora(
        train, None, tmp_path / "out", config, base_model=copy.deepcopy(fresh_base),
        preferences=(_pairs(5), []),
    )  # fmt: skip
    summary = result.manifest["preference"]
    assert summary == {
        "pairs": 5,
        "used": False,
        "reason": "5 training pairs, fewer than preference_min_pairs=20",
    }
