"""Assistant-only labels, truncation, batching and configuration checks (tokenizer only, no model)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.sft_data import (
    IGNORE_INDEX,
    collate_packed,
    collate_padded,
    length_grouped_batches,
    padding_ratio,
    plan_steps,
    read_chat_jsonl,
    tokenize_chat,
    tokenize_chat_file,
)

CONVERSATION = [
    {"role": "user", "content": "Do you repair tents?"},
    {"role": "assistant", "content": "Sometimes.", "weight": 0},
    {"role": "user", "content": "Is the repair free?"},
    {"role": "assistant", "content": "Yes, free for life on our gear.\n\nHappy trails! 🌲"},
    {"role": "user", "content": "How do I send it?"},
    {"role": "assistant", "content": "Reply with a photo and we'll send a label."},
]


def labelled_runs(example: Any) -> list[list[int]]:
    """Contiguous runs of trained token ids."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in example.labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return runs


def test_labels_cover_exactly_the_trained_assistant_replies_and_their_end_of_turn(
    tokenizer: Any,
) -> None:
    example = tokenize_chat(tokenizer, CONVERSATION, max_length=512)

    runs = [tokenizer.decode(run) for run in labelled_runs(example)]
    assert runs == [
        "Yes, free for life on our gear.\n\nHappy trails! 🌲<|im_end|>",
        "Reply with a photo and we'll send a label.<|im_end|>",
    ]
    expected = sum(
        len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) + 1
        for m in CONVERSATION[3::2]
    )
    assert example.n_targets == expected
    rendered = tokenizer.decode(example.input_ids)
    assert "You are a helpful AI assistant named SmolLM" in rendered  # injected system prompt
    assert "Sometimes." in rendered  # the weight-0 reply stays as context
    assert (
        example.input_ids
        == tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"]} for m in CONVERSATION], tokenize=True
        )["input_ids"]
    )


def test_truncation_keeps_the_start_and_drops_examples_left_with_nothing_to_train(
    tokenizer: Any, tmp_path: Path
) -> None:
    long_prompt = [
        {"role": "user", "content": "word " * 200},
        {"role": "assistant", "content": "ok"},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text(
        "\n".join(json.dumps({"messages": m}) for m in (CONVERSATION, long_prompt)) + "\n"
    )

    tokenized = tokenize_chat_file(path, tokenizer, max_length=64)

    assert tokenized.dropped == 1
    [kept] = tokenized.examples
    assert len(kept.input_ids) == len(kept.labels) == 64
    full = tokenize_chat(tokenizer, CONVERSATION, max_length=512)
    assert kept.input_ids == full.input_ids[:64]


def test_bad_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": []}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_chat_jsonl(path)


def test_plan_is_seeded_and_covers_every_example_once_per_epoch() -> None:
    lengths = [random.Random(i).randint(50, 300) for i in range(23)]
    plan = plan_steps(lengths, batch_size=4, grad_accum_steps=2, epochs=3, max_steps=None, seed=7)
    assert plan == plan_steps(
        lengths, batch_size=4, grad_accum_steps=2, epochs=3, max_steps=None, seed=7
    )
    assert plan != plan_steps(
        lengths, batch_size=4, grad_accum_steps=2, epochs=3, max_steps=None, seed=8
    )
    per_epoch = len(plan) // 3
    first_epoch = sorted(i for step in plan[:per_epoch] for batch in step for i in batch)
    assert first_epoch == list(range(23))
    longer = plan_steps(lengths, batch_size=4, grad_accum_steps=2, epochs=1, max_steps=10, seed=7)
    assert len(longer) == 10 and longer[:9] == plan


def test_a_step_cap_bounds_large_sets_and_leaves_small_ones_all_their_epochs() -> None:
    small, large = [100] * 20, [100] * 200
    options = {"batch_size": 4, "grad_accum_steps": 1, "epochs": 5, "max_steps": None, "seed": 1}
    assert len(plan_steps(small, **options, step_cap=32)) == 25  # 5 epochs of 5 steps
    capped = plan_steps(large, **options, step_cap=32)
    assert len(capped) == 32 and capped == plan_steps(large, **options)[:32]
    assert len(plan_steps(large, **options | {"max_steps": 40}, step_cap=32)) == 40


def test_length_grouping_pads_far_less_than_random_batches() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(100, 230) for _ in range(96)]
    grouped = length_grouped_batches(lengths, 4, random.Random(1))
    order = list(range(96))
    random.Random(1).shuffle(order)
    shuffled = [order[i : i + 4] for i in range(0, 96, 4)]
    assert padding_ratio(grouped, lengths) < padding_ratio(shuffled, lengths) / 3


def test_collators_pad_or_pack_without_training_padding_or_boundaries(tokenizer: Any) -> None:
    a = tokenize_chat(tokenizer, CONVERSATION[:2] + CONVERSATION[2:4], 512)
    b = tokenize_chat(tokenizer, CONVERSATION[:4] + CONVERSATION[4:], 512)
    padded = collate_padded([a, b], pad_id=tokenizer.pad_token_id)
    assert padded["input_ids"].shape == (2, len(b.input_ids))
    assert padded["labels"][0, len(a.input_ids) :].eq(IGNORE_INDEX).all()
    assert padded["attention_mask"].sum().item() == len(a.input_ids) + len(b.input_ids)

    packed = collate_packed([a, b])
    positions = packed["position_ids"][0].tolist()
    assert positions == list(range(len(a.input_ids))) + list(range(len(b.input_ids)))
    assert packed["labels"][0, len(a.input_ids)].item() == IGNORE_INDEX


def test_config_rejects_incompatible_options_up_front() -> None:
    with pytest.raises(ValidationError, match="CUDA"):
        TrainConfig(qlora=True, device="cpu")
    with pytest.raises(ValidationError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ValidationError, match="lora_rank"):
        TrainConfig(lora_rank=8)  # type: ignore[call-arg]
    assert TrainConfig(qlora=True, base_model="Qwen/Qwen2.5-1.5B-Instruct").qlora


def test_resume_accepts_only_differences_that_do_not_change_the_result() -> None:
    recorded = TrainConfig(max_steps=6).hyperparameters()
    assert TrainConfig(max_steps=6, device="cpu", num_threads=1).resume_mismatches(recorded) == []
    assert TrainConfig(max_steps=6, learning_rate=2e-4).resume_mismatches(recorded) == [
        "learning_rate"
    ]
