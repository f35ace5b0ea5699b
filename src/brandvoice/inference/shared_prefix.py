"""Scoring a right-padded batch whose rows open with the same tokens, computing that opening once.

Every example of a brand starts with the same system prompt (25-31 of 110-170 tokens on the bench
brands), and the chosen and rejected replies of a preference pair share their whole prompt. The
decoder runs the shared opening once at batch size 1; the rows then attend to its keys and values,
broadcast over the batch (so in training their gradients sum over the rows), and the hidden states
of the rest are the same as a plain forward's up to rounding, for fewer token-layer passes.
"""

from __future__ import annotations

from typing import Any

import torch

from brandvoice.inference.scoring import IGNORE_INDEX

MIN_SHARED_PREFIX = 8
"""Fewer shared tokens than this are not worth a second decoder call."""


def shared_prefix_length(
    input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> int:
    """Leading tokens every row has in common (0 when fewer than ``MIN_SHARED_PREFIX``).

    The prefix stops before the position whose hidden state predicts the first label of any row,
    so every scored position lies after it, and it never covers padding."""
    rows, width = input_ids.shape
    if rows < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    if attention_mask is not None:
        same &= attention_mask.bool().all(dim=0)
    differs = (~same).nonzero()
    labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    prefix = min(
        int(differs[0]) if len(differs) else width,
        int(labelled[0]) - 1 if len(labelled) else width,
        width - 1,
    )
    return prefix if prefix >= MIN_SHARED_PREFIX else 0


def hidden_after_prefix(
    decoder: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    prefix: int,
) -> torch.Tensor:
    """The decoder's last hidden states of positions ``prefix`` onwards (all of them for 0)."""
    if prefix == 0:
        return decoder(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
    from transformers import DynamicCache

    rows, width = input_ids.shape
    cache = DynamicCache(config=decoder.config)
    decoder(input_ids=input_ids[:1, :prefix], cache=cache, use_cache=True)
    for layer in cache.layers:
        layer.keys = layer.keys.expand(rows, -1, -1, -1)
        layer.values = layer.values.expand(rows, -1, -1, -1)
    positions = torch.arange(prefix, width, device=input_ids.device).expand(rows, -1)
    return decoder(
        input_ids=input_ids[:, prefix:],
        attention_mask=attention_mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
    ).last_hidden_state
