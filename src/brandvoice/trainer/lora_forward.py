"""LoRA's update added inside the matmul that computes it (imports peft: import lazily).

peft computes ``base(x) + lora_B(lora_A(x)) * scaling``: the low-rank product is written out, a
second pass scales it and a third adds it to the base output, each over a ``[tokens, out]``
tensor, and backward mirrors the scaling. ``addmm`` does the product, the scaling and the add in
one call on the base output. The result is the same sum (rounded once instead of twice in bf16);
~3% less time per CPU training step on SmolLM2-135M (every linear layer adapted, rank 16).
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora.layer import Linear, LoraVariant
from torch import nn


class _AddmmLora(LoraVariant):
    """A peft LoRA variant with vanilla LoRA's weights and merge, and the fused forward."""

    @staticmethod
    def init(module: Any, adapter_name: str, **kwargs: Any) -> None:
        return None

    @staticmethod
    def merge_safe(module: Any, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight + module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def merge_unsafe(module: Any, active_adapter: str, orig_weight: torch.Tensor) -> None:
        orig_weight.data += module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def unmerge(module: Any, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight - module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def forward(
        module: Any, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        down = module.lora_A[active_adapter](module.lora_dropout[active_adapter](x))
        up = module.lora_B[active_adapter].weight
        fused = torch.addmm(
            result.reshape(-1, result.shape[-1]),
            down.reshape(-1, down.shape[-1]),
            up.t(),
            alpha=module.scaling[active_adapter],
        )
        return fused.view(result.shape)


def fuse_lora_updates(model: nn.Module) -> int:
    """Give every plain LoRA linear layer of ``model`` the fused forward; how many got it.

    Layers with another variant (DoRA, …), a bias on ``lora_B`` or several adapters keep peft's."""
    fused = 0
    for module in model.modules():
        if type(module) is not Linear or len(module.lora_A) != 1 or module.lora_variant:
            continue
        (name,) = module.lora_A.keys()
        if module.lora_B[name].bias is None:
            module.lora_variant[name] = _AddmmLora()
            fused += 1
    return fused
