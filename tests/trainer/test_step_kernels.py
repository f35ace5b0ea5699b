"""The trainer's faster paths compute what the plain ones compute: fused head loss, grouped-query
eager attention and the fused LoRA update, each against the library path it replaces."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brandvoice.trainer.attention import GROUPED_EAGER, register_grouped_eager
from brandvoice.trainer.head_loss import CHUNK_ROWS, head_cross_entropy
from brandvoice.trainer.lora_model import EAGER_MAX_WIDTH, AttentionByWidth


def tiny_llama(attention: str = "eager") -> Any:
    """A 2-layer grouped-query Llama (4 query heads over 2 key/value heads), random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, attn_implementation=attention,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_fused_head_loss_and_gradient_match_plain_cross_entropy(autocast: bool) -> None:
    torch.manual_seed(0)
    head = nn.Linear(32, 500, bias=False).requires_grad_(False)
    if autocast:
        head = head.to(torch.bfloat16)
    rows = CHUNK_ROWS + 37  # two chunks, the second partial
    start = torch.randn(rows, 32, dtype=head.weight.dtype)
    targets = torch.randint(0, 500, (rows,))

    def loss_and_grad(fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = start.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if fused:
                loss = head_cross_entropy(hidden, head, targets)
            else:
                loss = F.cross_entropy(head(hidden).float(), targets, reduction="sum")
        (loss * 0.25).backward()
        assert hidden.grad is not None
        return loss.detach(), hidden.grad.float()

    fused_loss, fused_grad = loss_and_grad(True)
    plain_loss, plain_grad = loss_and_grad(False)
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-6, atol=1e-3)
    tolerance = {"rtol": 2e-2, "atol": 1e-4} if autocast else {"rtol": 1e-5, "atol": 1e-7}
    torch.testing.assert_close(fused_grad, plain_grad, **tolerance)


def test_a_trainable_head_takes_the_plain_path_and_gets_its_gradient() -> None:
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=False)
    hidden, targets = torch.randn(10, 16), torch.randint(0, 50, (10,))
    loss = head_cross_entropy(hidden, head, targets)
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    torch.testing.assert_close(loss, F.cross_entropy(head(hidden), targets, reduction="sum"))


def test_grouped_eager_attention_matches_transformers_eager_with_padding() -> None:
    eager = tiny_llama("eager")
    grouped = tiny_llama("eager")
    grouped.set_attn_implementation(register_grouped_eager())
    ids = torch.randint(0, 300, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0  # a right-padded row

    def logits_and_grads(model: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logits = model(input_ids=ids, attention_mask=mask).logits
        (logits[mask.bool()].float() ** 2).mean().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    eager_logits, eager_grads = logits_and_grads(eager)
    grouped_logits, grouped_grads = logits_and_grads(grouped)
    torch.testing.assert_close(grouped_logits, eager_logits, rtol=1e-5, atol=1e-5)
    assert len(grouped_grads) == len(eager_grads)
    for ours, theirs in zip(grouped_grads, eager_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_attention_is_chosen_per_batch_by_width_and_computes_what_sdpa_computes() -> None:
    switched, reference = tiny_llama("sdpa"), tiny_llama("sdpa")
    by_width = AttentionByWidth(switched)

    for width, kernel in [(EAGER_MAX_WIDTH, GROUPED_EAGER), (EAGER_MAX_WIDTH + 32, "sdpa")]:
        ids = torch.randint(0, 300, (2, width))
        mask = torch.ones(2, width, dtype=torch.long)
        mask[1, width - 40 :] = 0
        by_width(width)
        logits = switched(input_ids=ids, attention_mask=mask).logits
        assert switched.config._attn_implementation == kernel
        expected = reference(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(logits[mask.bool()], expected[mask.bool()], rtol=1e-4, atol=1e-4)


def test_grouped_eager_attention_generates_like_eager_with_a_kv_cache() -> None:
    eager = tiny_llama("eager")
    grouped = tiny_llama("eager")
    grouped.set_attn_implementation(register_grouped_eager())
    prompt = torch.randint(0, 300, (1, 5))
    options = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    assert (
        grouped.generate(prompt, **options).tolist() == eager.generate(prompt, **options).tolist()
    )


def test_fused_lora_update_matches_peft_and_merges_like_it() -> None:
    from peft import LoraConfig, get_peft_model

    from brandvoice.trainer.lora_forward import fuse_lora_updates

    def adapted() -> Any:
        model = get_peft_model(
            tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")
        )
        torch.manual_seed(1)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                nn.init.normal_(param, std=0.05)  # peft starts B at zero: no update to compare
        return model

    plain, fused = adapted(), adapted()
    assert fuse_lora_updates(fused) == 2 * 7  # q, k, v, o, gate, up, down per layer
    ids = torch.randint(0, 300, (2, 7))

    def out_and_grads(model: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logits = model(input_ids=ids).logits
        logits.pow(2).mean().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    plain_out, plain_grads = out_and_grads(plain)
    fused_out, fused_grads = out_and_grads(fused)
    torch.testing.assert_close(fused_out, plain_out, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        merged = fused.merge_and_unload()(input_ids=ids).logits
    torch.testing.assert_close(merged, plain_out, rtol=1e-4, atol=1e-4)
