"""The model side of LoRA training: the adapted model, the target-token loss, validation loss.

Kept apart from the fit loop so evaluation can score any model (base, adapter, candidate) with
exactly the objective training minimises.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brandvoice.inference.base_model import (
    cpu_has_native_bf16,
    load_fresh_base_model,
    load_tokenizer,
    pick_device,
    resolve_model_source,
)
from brandvoice.trainer.attention import register_grouped_eager
from brandvoice.trainer.checkpoint import MANIFEST_FILE
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.head_loss import head_cross_entropy
from brandvoice.trainer.sft_data import (
    IGNORE_INDEX,
    TokenizedExample,
    collate_padded,
    tokenize_chat_file,
)


def target_hidden(
    model: nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, nn.Module]:
    """The last hidden states at the labelled positions only, their next-token targets, the
    (shifted) label mask and the LM head: the head then skips every prompt and padding position."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(lm, lm.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    ).last_hidden_state
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    return hidden[:, :-1][mask], targets[mask], mask, lm.get_output_embeddings()


def target_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next-token logits at the labelled positions, their targets, and the (shifted) label mask."""
    hidden, targets, mask, head = target_hidden(
        model, input_ids, labels, attention_mask, position_ids
    )
    return head(hidden), targets, mask


class TargetTokenLoss(nn.Module):
    """Summed next-token cross-entropy over labelled positions, and their count."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, targets, mask, head = target_hidden(
            self.model, input_ids, labels, attention_mask, position_ids
        )
        return head_cross_entropy(hidden, head, targets), mask.sum()


def build_lora_model(
    config: TrainConfig,
    device: str,
    base_model: nn.Module | None = None,
    bf16: bool = False,
    attention: str | None = None,
) -> nn.Module:
    """The base (given, or freshly loaded; 4-bit with ``qlora``) wrapped with LoRA adapters.

    With ``bf16`` the frozen base is held in bf16 (autocast would otherwise cast every weight on
    every forward); the LoRA weights stay fp32, and peft's cast of every LoRA input up to fp32 is
    off (autocast, which training always runs under, casts what the matmuls need): two copies of
    each activation fewer per layer."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from brandvoice.trainer.lora_forward import fuse_lora_updates

    if base_model is not None:
        model = base_model.to(device=device, dtype=torch.bfloat16 if bf16 else None)
    elif config.qlora:
        model = prepare_model_for_kbit_training(
            load_4bit(config.base_model, device),
            use_gradient_checkpointing=config.gradient_checkpointing,
        )
    else:
        dtype = torch.bfloat16 if bf16 else torch.float32
        model = load_fresh_base_model(config.base_model, device=device, dtype=dtype)
    if attention == "eager":
        attention = register_grouped_eager()
    if attention:
        model.set_attn_implementation(attention)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear"
        if config.target_modules == "all-linear"
        else list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    fuse_lora_updates(model)
    model.peft_config["default"].base_model_name_or_path = config.base_model
    if bf16:
        disable_input_casting(model)
    return model


def disable_input_casting(model: nn.Module) -> None:
    """Leave LoRA inputs in bf16 under autocast (see ``build_lora_model``)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False


def validation_loss(
    model_or_adapter_dir: nn.Module | str | Path,
    val_path: str | Path,
    *,
    base_model: str | None = None,
    max_length: int = 1024,
    batch_size: int = 8,
    device: str | None = None,
) -> float:
    """Mean cross-entropy per assistant token (the trained tokens) over a chat JSONL file.

    Takes a loaded model (with or without an adapter) or an adapter directory written by
    ``train_lora``; for a model, ``base_model`` names its tokenizer (default: the packaged base).
    """
    from peft import PeftModel

    if isinstance(model_or_adapter_dir, nn.Module):
        model = model_or_adapter_dir
        base_model = base_model or adapter_base_model(None)
    else:
        adapter_dir = Path(model_or_adapter_dir)
        base_model = base_model or adapter_base_model(adapter_dir)
        base = load_fresh_base_model(base_model, device=pick_device(device))
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    val = tokenize_chat_file(val_path, load_tokenizer(base_model), max_length)
    target_device = next(model.parameters()).device

    def batch(examples: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        return {k: v.to(target_device) for k, v in collate_padded(examples, 0).items()}

    return mean_loss_per_target_token(TargetTokenLoss(model), val.examples, batch, batch_size, None)


def dropout_active(model: nn.Module) -> bool:
    """Whether any dropout in ``model`` drops anything (p > 0).

    Train mode changes nothing else in a causal LM without batch norm, yet at p = 0 it still
    draws a dropout mask over every attention matrix (eager attention): without dropout,
    training runs the model in eval mode.
    """
    config = getattr(model, "config", None)
    if float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0:
        return True
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def adapter_base_model(adapter_dir: Path | None) -> str:
    """The base an adapter was trained on: its manifest, else its adapter config, else the default."""
    if adapter_dir is not None:
        for name, key in ((MANIFEST_FILE, "base_model"), ("adapter_config.json", "base_model_name_or_path")):  # fmt: skip
            path = adapter_dir / name
            if path.is_file() and json.loads(path.read_text()).get(key):
                return str(json.loads(path.read_text())[key])
    return TrainConfig().base_model


def mean_loss_per_target_token(
    loss_module: nn.Module,
    examples: list[TokenizedExample],
    batch: Any,
    batch_size: int,
    accelerator: Any,
) -> float:
    """``loss_module``'s loss per target token over ``examples`` (token-weighted, not a mean of
    per-example means); batches of similar length, split across processes if any."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if accelerator is not None:
        batches = batches[accelerator.process_index :: accelerator.num_processes]
    was_training = loss_module.training
    loss_module.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for indices in batches:
            summed, count = loss_module(**batch([examples[i] for i in indices]))
            totals += torch.tensor([summed.item(), count.item()], dtype=torch.float64)
    loss_module.train(was_training)
    if accelerator is not None:
        totals = accelerator.reduce(totals.to(accelerator.device), "sum").cpu()
    if totals[1] == 0:
        raise ValueError("the validation set has no assistant tokens to score")
    return float(totals[0] / totals[1])


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable (LoRA) weights, by parameter name."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_adapter_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name].to(param.device))


def load_4bit(name_or_path: str, device: str) -> nn.Module:
    """The base quantized to 4-bit NF4 by bitsandbytes (bf16 compute) on one CUDA device."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    source = resolve_model_source(name_or_path)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return AutoModelForCausalLM.from_pretrained(
        source.path,
        gguf_file=source.gguf_file,
        quantization_config=quantization,
        device_map={"": device},
    )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` CPU threads for the run and give the process its setting back after."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


EAGER_MAX_WIDTH = 640
"""Widest padded batch that trains faster with the eager kernel than with SDPA on CPU in bf16.
One LoRA step of 4 rows with padding (forward and backward, 2 Xeon cores with AMX, the best of 3,
two passes): 512 tokens 3.11 / 2.84 s eager against 3.56 / 3.29 s SDPA, 640 tokens 4.30 / 3.99
against 4.71 / 4.95, 704 tokens 5.39 / 5.66 against 4.96 / 5.30, 768 tokens 5.91 / 6.56 against
5.13 / 5.56: eager's materialised attention matrix overtakes SDPA's slow short-sequence backward
between 640 and 704."""


def attention_for(config: TrainConfig, device_type: str, bf16: bool) -> str | None:
    """The kernel a run is built with (None: the model's own, SDPA)."""
    if config.attention != "auto":
        return config.attention
    return "eager" if switches_attention(config, device_type, bf16) else None


def switches_attention(config: TrainConfig, device_type: str, bf16: bool) -> bool:
    """Whether ``attention="auto"`` picks the kernel per batch (:class:`AttentionByWidth`)."""
    return config.attention == "auto" and device_type == "cpu" and bf16


class AttentionByWidth:
    """Sets the model's attention kernel for each batch by its width: eager up to
    :data:`EAGER_MAX_WIDTH` tokens, SDPA beyond. The kernel used to be chosen once per run by its
    longest example, so one example over 512 tokens put every batch on SDPA: the sample brand's
    training data with retrieved context (batches 128-640 tokens wide) took 53-59 s for 16 steps
    on SDPA against 43-50 s eager."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.eager = register_grouped_eager()

    def __call__(self, width: int) -> None:
        wanted = self.eager if width <= EAGER_MAX_WIDTH else "sdpa"
        if wanted != self.model.config._attn_implementation:
            self.model.set_attn_implementation(wanted)


def pad_multiple_for(config: TrainConfig, bf16: bool) -> int:
    """What padded batches are rounded up to (see ``TrainConfig.pad_multiple``)."""
    if config.pad_multiple is not None:
        return config.pad_multiple
    return 32 if bf16 else 1


def use_bf16(config: TrainConfig, device: str) -> bool:
    if config.precision != "auto":
        return config.precision == "bf16"
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return device == "cpu" and cpu_has_native_bf16()


def check_environment(config: TrainConfig) -> None:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA GPU")
    if config.qlora and not torch.cuda.is_available():
        raise RuntimeError("qlora=True needs a CUDA GPU, and torch sees none")
    if config.qlora and importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError("qlora=True needs the 'bitsandbytes' package (pip install bitsandbytes)")
