"""Chat examples to training tensors: assistant-only labels, length-grouped batches, packing.

Labels are found by rendering the conversation prefix by prefix with the tokenizer's own chat
template, so they follow whatever the template injects (ChatML's default system prompt, BOS
tokens) and cover each trained assistant reply plus its end-of-turn token, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brandvoice.inference.scoring import IGNORE_INDEX

log = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_targets(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass(frozen=True)
class TokenizedSet:
    examples: list[TokenizedExample]
    dropped: int
    """Examples left without a trained token (everything past ``max_length``, or all weight 0)."""

    @property
    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.examples]

    def fingerprint(self) -> str:
        """Content hash of the token ids and labels, to check that a resumed run sees the same data."""
        digest = hashlib.sha256()
        for example in self.examples:
            digest.update(json.dumps([example.input_ids, example.labels]).encode())
        return digest.hexdigest()


def read_chat_jsonl(path: str | Path) -> list[list[dict[str, Any]]]:
    """The ``messages`` of every line of an OpenAI-format chat JSONL file, checked for shape."""
    conversations = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from exc
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list) or not messages:
                raise ValueError(
                    f'{where}: expected {{"messages": [...]}} with at least one message'
                )
            for index, message in enumerate(messages):
                if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                    raise ValueError(f"{where}: message {index} needs a string 'content'")
                if message.get("role") not in ("system", "user", "assistant"):
                    raise ValueError(f"{where}: message {index} has role {message.get('role')!r}")
            conversations.append(messages)
    return conversations


def _render(tokenizer: Any, messages: Messages, add_generation_prompt: bool = False) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(
        plain, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def assistant_char_spans(tokenizer: Any, messages: Messages) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans to train: each assistant reply whose
    ``weight`` is not 0, through its end-of-turn token (the newline after it is not trained)."""
    text = _render(tokenizer, messages)
    end_of_turn = tokenizer.eos_token or ""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        before = _render(tokenizer, messages[:index], add_generation_prompt=True)
        through = _render(tokenizer, messages[: index + 1])
        if not (text.startswith(before) and text.startswith(through)):
            raise ValueError(
                f"the chat template renders the conversation before assistant message {index} "
                "differently from the whole conversation, so its reply cannot be located; "
                "start every example with a system or user message"
            )
        segment = text[len(before) : len(through)]
        cut = segment.rfind(end_of_turn) if end_of_turn else -1
        end = len(before) + (cut + len(end_of_turn) if cut >= 0 else len(segment.rstrip()))
        spans.append((len(before), end))
    return text, spans


def tokenize_chat(tokenizer: Any, messages: Messages, max_length: int) -> TokenizedExample:
    """Token ids and labels (-100 outside the trained spans), truncated to ``max_length``.

    The first token is never a label: nothing precedes it to predict it from."""
    text, spans = assistant_char_spans(tokenizer, messages)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("assistant masks need a fast tokenizer (character offsets)")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    offsets = encoded["offset_mapping"][:max_length]
    labels = [
        token if index and any(start <= begin < end for start, end in spans) else IGNORE_INDEX
        for index, (token, (begin, _)) in enumerate(zip(ids, offsets, strict=True))
    ]
    return TokenizedExample(ids, labels)


def tokenize_chat_file(path: str | Path, tokenizer: Any, max_length: int) -> TokenizedSet:
    """Every example of a chat JSONL file that still has tokens to train after truncation."""
    kept, dropped = [], 0
    for messages in read_chat_jsonl(path):
        example = tokenize_chat(tokenizer, messages, max_length)
        if example.n_targets:
            kept.append(example)
        else:
            dropped += 1
    if dropped:
        log.warning(
            "%s: %d examples have nothing to train within %d tokens", path, dropped, max_length
        )
    return TokenizedSet(kept, dropped)


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, group_window: int = 8
) -> list[list[int]]:
    """One epoch of micro-batches of example indices with little padding and a random order.

    The shuffled indices are cut into windows of ``group_window`` batches, sorted by length inside
    each window and split into batches; the batches are then shuffled, so batches stay random
    across the epoch while the examples inside one batch have similar lengths.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group_window
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def plan_steps(
    lengths: Sequence[int],
    *,
    batch_size: int,
    grad_accum_steps: int,
    epochs: int,
    max_steps: int | None,
    seed: int,
    group_window: int = 8,
    num_processes: int = 1,
    step_cap: int | None = None,
) -> list[list[list[int]]]:
    """The whole run's data order: optimizer steps, each a list of micro-batches of indices.

    Deterministic in its arguments, so a resumed run replays the same order. A step holds
    ``grad_accum_steps * num_processes`` micro-batches (the last of an epoch may hold fewer, a
    multiple of ``num_processes``); ``max_steps`` overrides ``epochs`` either way, and without it
    ``step_cap`` cuts the ``epochs`` plan short.
    """
    if not lengths:
        raise ValueError("no training examples: the training set is empty after tokenization")
    per_step = grad_accum_steps * num_processes
    rng = random.Random(seed)
    steps: list[list[list[int]]] = []
    epoch = 0
    while (max_steps is None and epoch < epochs) or (
        max_steps is not None and len(steps) < max_steps
    ):
        batches = length_grouped_batches(lengths, batch_size, rng, group_window)
        usable = len(batches) - len(batches) % num_processes
        if usable == 0:
            raise ValueError(
                f"{len(lengths)} examples make {len(batches)} batches, fewer than the "
                f"{num_processes} processes; lower batch_size or use fewer processes"
            )
        steps.extend(batches[i : i + per_step] for i in range(0, usable, per_step))
        epoch += 1
    return steps[: max_steps if max_steps is not None else step_cap]


def collate_padded(
    examples: Iterable[TokenizedExample], pad_id: int, multiple: int = 1
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (padding is never trained),
    the width rounded up to a ``multiple`` so that batch shapes repeat (see ``TrainConfig``)."""
    examples = list(examples)
    width = padded_width((len(e.input_ids) for e in examples), multiple)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def collate_packed(examples: Iterable[TokenizedExample]) -> dict[str, torch.Tensor]:
    """One row holding every example, positions restarting at 0 for each.

    With ``position_ids`` and no ``attention_mask``, transformers builds a block-diagonal causal
    mask from the position resets, so no example attends to another. The first token of every
    example is never a label, so no loss crosses a boundary either.
    """
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in examples:
        ids.extend(example.input_ids)
        labels.extend([IGNORE_INDEX, *example.labels[1:]])
        positions.extend(range(len(example.input_ids)))
    as_row = lambda values: torch.tensor([values], dtype=torch.long)  # noqa: E731
    return {"input_ids": as_row(ids), "position_ids": as_row(positions), "labels": as_row(labels)}


def padded_width(lengths: Iterable[int], multiple: int = 1) -> int:
    """The width ``collate_padded`` gives a batch of these lengths: the longest, rounded up."""
    return -(-max(lengths) // multiple) * multiple


def padding_ratio(
    batches: Iterable[Sequence[int]], lengths: Sequence[int], multiple: int = 1
) -> float:
    """Share of padded positions when these micro-batches are collated by ``collate_padded``."""
    padded = real = 0
    for batch in batches:
        real += sum(lengths[i] for i in batch)
        padded += padded_width((lengths[i] for i in batch), multiple) * len(batch)
    return 1 - real / padded if padded else 0.0
