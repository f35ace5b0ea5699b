"""Preference pairs to training tensors: the prompt, then the chosen or the rejected reply.

Each side is tokenized like an SFT example whose only trained reply is the last one (earlier
assistant turns of the prompt get weight 0), so the log-probabilities DPO compares cover exactly
the reply plus its end-of-turn token, under the same chat template as supervised training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from brandvoice.trainer.sft_data import TokenizedExample, collate_padded, tokenize_chat


class PreferenceLike(Protocol):
    """A pair as the store exports it (``store.preferences.PreferenceRecord``)."""

    @property
    def prompt(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def chosen(self) -> str: ...

    @property
    def rejected(self) -> str: ...


@dataclass(frozen=True)
class TokenizedPair:
    chosen: TokenizedExample
    rejected: TokenizedExample

    @property
    def length(self) -> int:
        return max(len(self.chosen.input_ids), len(self.rejected.input_ids))


@dataclass(frozen=True)
class TokenizedPairs:
    pairs: list[TokenizedPair]
    dropped: int
    """Pairs where a side kept no reply token within ``max_length``, or both sides are equal."""

    @property
    def lengths(self) -> list[int]:
        return [pair.length for pair in self.pairs]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for pair in self.pairs:
            for side in (pair.chosen, pair.rejected):
                digest.update(json.dumps([side.input_ids, side.labels]).encode())
        return digest.hexdigest()


def reply_only(prompt: Sequence[Mapping[str, Any]], reply: str) -> list[dict[str, Any]]:
    """The conversation with ``reply`` as its last turn, the only one trained."""
    messages: list[dict[str, Any]] = [
        {"role": m["role"], "content": m["content"]}
        | ({"weight": 0} if m["role"] == "assistant" else {})
        for m in prompt
    ]
    return [*messages, {"role": "assistant", "content": reply}]


def tokenize_pairs(
    records: Sequence[PreferenceLike], tokenizer: Any, max_length: int
) -> TokenizedPairs:
    pairs, dropped = [], 0
    for record in records:
        chosen = tokenize_chat(tokenizer, reply_only(record.prompt, record.chosen), max_length)
        rejected = tokenize_chat(tokenizer, reply_only(record.prompt, record.rejected), max_length)
        if not chosen.n_targets or not rejected.n_targets or chosen == rejected:
            dropped += 1
            continue
        pairs.append(TokenizedPair(chosen, rejected))
    return TokenizedPairs(pairs, dropped)


def collate_pairs(
    pairs: Sequence[TokenizedPair], pad_id: int, multiple: int = 1
) -> dict[str, torch.Tensor]:
    """One padded batch: the chosen sides in rows ``[0, n)``, the rejected ones in ``[n, 2n)``,
    so both go through the model in a single forward."""
    sides = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]
    return collate_padded(sides, pad_id, multiple)
