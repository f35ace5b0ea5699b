"""The brand sets under ``bench/brands/``: reading them, and the validation split every bench uses
(every 8th training conversation), so their figures are comparable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BRANDS = Path(__file__).resolve().parent / "brands"
VAL_EVERY = 8
"""Every 8th training conversation is the validation set (4 of 30, 9 of 72)."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def split_train_val(rows: list[Any]) -> tuple[list[Any], list[Any]]:
    """The rows training sees and the validation rows (every ``VAL_EVERY``-th)."""
    train = [r for i, r in enumerate(rows) if i % VAL_EVERY != VAL_EVERY - 1]
    val = [r for i, r in enumerate(rows) if i % VAL_EVERY == VAL_EVERY - 1]
    return train, val


def brand_names(held_out: bool = False) -> list[str]:
    """The brand sets the sweep chooses defaults on, or (``held_out``) those kept out of it to
    check that the chosen defaults carry to a brand they were not chosen on."""
    names = []
    for directory in sorted(p for p in BRANDS.iterdir() if (p / "brand.json").is_file()):
        meta = json.loads((directory / "brand.json").read_text(encoding="utf-8"))
        if bool(meta.get("held_out")) == held_out:
            names.append(directory.name)
    return names


def load_brand(directory: Path) -> dict[str, Any]:
    """Train (minus validation), validation and test conversations plus the brand's sign-off."""
    meta = json.loads((directory / "brand.json").read_text(encoding="utf-8"))
    train, val = split_train_val(read_jsonl(directory / "train.jsonl"))
    return meta | {"train": train, "val": val, "test": read_jsonl(directory / "test.jsonl")}


def served_greedy_replies(prompts: list[str], adapter: str | None, max_tokens: int) -> list[str]:
    """Greedy replies to rendered prompts through ``LocalChat``, the bot's serving path and dtype
    (``adapter`` None: the base model), up to ``max_tokens`` each."""
    from brandvoice.inference.chat import Sampling
    from brandvoice.inference.local_chat import LocalChat

    chat = LocalChat(adapter=adapter, batch_size=8)
    greedy = Sampling(temperature=0, max_tokens=max_tokens)
    replies = [r.text for r in chat.complete_text_batch(prompts, greedy)]
    chat.release()
    return replies
