"""The one bounded cache of loaded backends, with real LoRA adapters on a tiny real model.

The base is a two-layer Llama the test builds (with SmolLM2's tokenizer and chat template), so
loading, generating and freeing adapters is real and still takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from brandvoice.bot.backends import Backends
from brandvoice.bot.settings import Settings
from brandvoice.inference import LocalChat, Sampling
from brandvoice.inference.backend_cache import BackendCache
from brandvoice.store.models import ModelVersion

GREEDY = Sampling(temperature=0, max_tokens=6)
QUESTION = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from brandvoice.inference.base_model import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-base")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def adapters(tiny_base: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three LoRA adapters with different random weights, so each changes the reply."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for seed in range(3):
        torch.manual_seed(seed + 1)
        config = LoraConfig(
            r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        )
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base), config)
        path = tmp_path_factory.mktemp("adapters") / f"lora-{seed}"
        model.save_pretrained(path)
        paths.append(path.resolve())
    return paths


def loaded(chat: LocalChat) -> list[Path]:
    return list(chat.host.adapters)


def test_the_least_recently_used_adapter_is_freed_past_the_count_and_reloads_on_use(
    tiny_base: str, adapters: list[Path]
):
    cache = BackendCache(max_backends=2)
    first = cache.get("v1", lambda: LocalChat(tiny_base, adapters[0]))
    first_reply = first.complete(QUESTION, GREEDY).text
    second = cache.get("v2", lambda: LocalChat(tiny_base, adapters[1]))
    assert cache.get("v1", lambda: pytest.fail("v1 is cached")) is first  # v1 used last

    third = cache.get("v3", lambda: LocalChat(tiny_base, adapters[2]))

    assert cache.keys() == ["v1", "v3"]
    assert adapters[1] not in loaded(third) and {adapters[0], adapters[2]} <= set(loaded(third))
    assert second.adapter_bytes == 0
    # Whoever still holds the evicted backend gets its adapter back, loaded again on use.
    assert second.complete(QUESTION, GREEDY).text != first_reply
    assert adapters[1] in loaded(second)
    assert first.complete(QUESTION, GREEDY).text == first_reply


def test_adapters_past_the_memory_bound_are_freed_and_the_base_weighs_nothing(
    tiny_base: str, adapters: list[Path]
):
    probe = LocalChat(tiny_base, adapters[0])
    one_adapter = probe.adapter_bytes
    probe.release()
    assert one_adapter > 0 and adapters[0] not in loaded(probe)
    cache = BackendCache(max_backends=8, max_adapter_bytes=one_adapter * 3 // 2)

    base = cache.get("base", lambda: LocalChat(tiny_base))
    cache.get("v1", lambda: LocalChat(tiny_base, adapters[0]))
    cache.get("v2", lambda: LocalChat(tiny_base, adapters[1]))

    assert cache.keys() == ["base", "v2"]
    assert cache.adapter_bytes == one_adapter <= cache.max_adapter_bytes
    assert adapters[0] not in loaded(base) and adapters[1] in loaded(base)


def test_backends_serve_a_candidate_and_its_registered_version_from_one_cached_backend(
    tiny_base: str, adapters: list[Path]
):
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        base_model=tiny_base,
        device="cpu",
        max_loaded_models=2,
        openai_base_url="http://127.0.0.1:9/v1",
        judge_model="judge-1",
    )
    backends = Backends(settings)
    candidate = ModelVersion(name="candidate", base_model=tiny_base, adapter_path=str(adapters[0]))
    registered = ModelVersion(id=7, name="v7", base_model=tiny_base, adapter_path=str(adapters[0]))
    hosted = ModelVersion(
        name="v8", base_model="m", backend="together", hosted_model_id="acct/m-ft"
    )

    served = backends.load(candidate)

    assert backends.load(registered) is served
    assert isinstance(served, LocalChat) and served.adapter == adapters[0]
    assert backends.load(None).model_name == tiny_base
    together = backends.load(hosted)
    assert together.model_name == "acct/m-ft"
    assert together.base_url == settings.together_base_url == "https://api.together.ai/v1"
    judge = backends.judge()
    assert judge is not None and judge.model_name == "judge-1"
    assert judge.base_url == "http://127.0.0.1:9/v1" and backends.judge() is judge
    assert len(backends.cache.keys()) == 2
