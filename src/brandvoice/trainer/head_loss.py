"""Summed cross-entropy of the LM head's logits, with the head and the loss fused.

A 49k-token vocabulary makes the logits of a step's target tokens the largest tensor of a LoRA
step on a small model. The plain path writes them, copies them to fp32, takes log-softmax, fills
a zero gradient, scatters into it, runs log-softmax's backward and copies the result back to
bf16: about eight passes over that tensor, a quarter of a CPU step on SmolLM2-135M. Here each
chunk of target rows is projected, reduced to its loss and turned into its gradient at once
(softmax minus one-hot, in fp32), and only the gradient for the hidden states is kept: a
``[tokens, hidden]`` tensor instead of ``[tokens, vocabulary]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CHUNK_ROWS = 128
"""Target rows per chunk: bounds the fp32 logits held at once (128 x 49k = 25 MB)."""


class _FusedHeadCrossEntropy(torch.autograd.Function):
    """Loss and hidden-state gradient in one pass; backward only scales the stored gradient."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        want_grad = ctx.needs_input_grad[0]
        grad_hidden = torch.empty_like(hidden) if want_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        scratch = hidden.new_empty(
            (min(CHUNK_ROWS, len(hidden)), weight.shape[0]), dtype=torch.float32
        )
        for start in range(0, hidden.shape[0], CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            chunk, chunk_targets = hidden[rows], targets[rows]
            logits = chunk @ weight.t()
            picked = logits.gather(1, chunk_targets[:, None]).float()
            peak = logits.amax(dim=-1, keepdim=True).float()
            exps = torch.sub(logits, peak, out=scratch[: len(logits)]).exp_()
            sums = exps.sum(dim=-1, keepdim=True)
            total += (sums.log() + peak - picked).sum()
            if grad_hidden is not None:
                probs = exps.div_(sums)
                probs[torch.arange(len(chunk_targets)), chunk_targets] -= 1
                grad_hidden[rows] = probs.to(chunk.dtype) @ weight
        ctx.save_for_backward(grad_hidden)
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (grad_hidden,) = ctx.saved_tensors
        if grad_hidden is None:
            return None, None, None
        return grad_hidden * grad_total.to(grad_hidden.dtype), None, None


def head_cross_entropy(
    hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor
) -> torch.Tensor:
    """Summed cross-entropy of ``head(hidden)`` against ``targets`` (rows of ``hidden``, one
    target each), fused where the head is a frozen bias-free linear layer (an LM head tied to
    frozen embeddings, as in LoRA training); otherwise the plain computation."""
    weight = getattr(head, "weight", None)
    fusable = (
        type(head) is nn.Linear
        and head.bias is None
        and weight is not None
        and not weight.requires_grad
    )
    if not fusable:
        return F.cross_entropy(head(hidden).float(), targets, reduction="sum")
    if torch.is_autocast_enabled(hidden.device.type):
        dtype = torch.get_autocast_dtype(hidden.device.type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    with torch.autocast(hidden.device.type, enabled=False):
        return _FusedHeadCrossEntropy.apply(hidden, weight, targets)
