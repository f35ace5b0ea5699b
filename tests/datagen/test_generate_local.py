"""Generation with the packaged SmolLM2-135M: every candidate judged or recorded as unparsable, and
the kept ones pass every filter and carry their provenance."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator

import pytest

from brandvoice.datagen.filters import FILTER_ORDER
from brandvoice.datagen.generate import GenerateConfig, generate_variations
from brandvoice.inference.chat import Sampling
from brandvoice.store.candidates import list_candidates
from brandvoice.store.db import session_scope
from brandvoice.store.models import Example
from tests.datagen.conftest import seed_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_chat() -> Iterator[object]:
    """The local model, loaded once; one torch thread, since the test machines share 2 cores."""
    import torch

    from brandvoice.inference.local_chat import LocalChat

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield LocalChat()
    finally:
        torch.set_num_threads(threads)


def test_local_model_candidates_are_judged_and_kept_ones_carry_provenance(
    engine, count_tokens, embed, local_chat
):
    ids = seed_store(engine, count_tokens, with_validation=False)
    config = GenerateConfig(parent_ids=(ids["returns"], ids["warmth"]), per_example=2, seed=0)

    summary = generate_variations(
        engine, local_chat, embed=embed, count_tokens=count_tokens, config=config
    )

    assert summary.strategies == ("new_requests",), "the default for a model without JSON output"
    assert (summary.generated, summary.errors) == (4, 0)
    assert summary.kept + sum(summary.dropped.values()) == summary.generated
    assert summary.kept >= 1
    with session_scope(engine) as session:
        rows = list_candidates(session, limit=None)
        assert len(rows) == 4
        for row in rows:
            assert row.raw_text.strip(), "the generator's raw output is kept"
            assert "\n" not in row.raw_text, "a new request is one line: the stop sequence ends it"
            assert row.generator_model == "smollm2-135m-instruct"
            assert row.template_version == "fewshot_request@1+fewshot_reply@1"
            if row.reason == "parse_error":
                assert row.messages is None and row.detail
                continue
            assert list(row.scores) == list(FILTER_ORDER)
            assert (row.verdict == "keep") == all(s["passed"] for s in row.scores.values())
            if row.verdict == "keep":
                example = session.get(Example, row.example_id)
                assert example is not None and example.parent_id == row.parent_id
                provenance = example.provenance
                assert provenance["strategy"] == "new_requests"
                assert provenance["generator_model"] == "smollm2-135m-instruct"
                assert provenance["seed"] == row.seed
                assert provenance["sampling"]["generator"]["stop"] == ["\n"]
                assert provenance["sampling"]["responder"]["stop"] == ["\nCustomer:"]
                assert all(f["passed"] for f in provenance["filters"].values())
                assert 0 < provenance["score"] <= 1


def test_a_voice_model_answers_the_new_requests_as_it_is_served(
    engine, count_tokens, embed, local_chat
):
    from brandvoice.inference.local_chat import LocalChat

    ids = seed_store(engine, count_tokens, with_validation=False)
    voice = LocalChat(model_name="voice-v1")  # the same weights, another backend: the responder
    config = GenerateConfig(
        parent_ids=(ids["repair"],), seed=1, reply_sampling=Sampling(temperature=0.7, max_tokens=96)
    )

    summary = generate_variations(
        engine, local_chat, embed=embed, count_tokens=count_tokens, responder=voice, config=config
    )

    assert (summary.generated, summary.responder_model) == (1, "voice-v1")
    with session_scope(engine) as session:
        (row,) = list_candidates(session, limit=None)
        assert row.template_version == "fewshot_request@1+voice_reply@1"
        assert row.responder_model == "voice-v1"
        assert row.sampling["responder"]["max_tokens"] == 96
        assert "stop" not in row.sampling["responder"], "the voice model ends its own turn"


def test_the_pipeline_step_waits_for_a_trained_version_and_can_be_switched_off(
    engine, count_tokens, local_chat, tmp_path
):
    from brandvoice.bot.backends import Backends
    from brandvoice.bot.generation import (
        LOCAL_SYNTHETIC_OFF,
        NO_LOCAL_RESPONDER,
        pipeline_generate_step,
    )
    from brandvoice.bot.settings import Settings

    seed_store(engine, count_tokens, with_validation=False)
    switched_on = Settings(artifacts_dir=tmp_path, local_synthetic=True, _env_file=None)
    default = Settings(artifacts_dir=tmp_path, _env_file=None)

    waiting = pipeline_generate_step(Backends(switched_on))(engine, progress=None)
    off = pipeline_generate_step(Backends(default))(engine, progress=None)

    assert off == {"skipped": LOCAL_SYNTHETIC_OFF}
    assert waiting == {"skipped": NO_LOCAL_RESPONDER}, "no trained version writes replies yet"
    with session_scope(engine) as session:
        assert list_candidates(session) == []


def test_the_pipeline_step_has_the_latest_trained_version_answer(
    engine, count_tokens, local_chat, tmp_path
):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from brandvoice.bot.backends import Backends
    from brandvoice.bot.generation import pipeline_generate_step
    from brandvoice.bot.settings import Settings
    from brandvoice.store.models import ModelVersion, VersionStatus

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    adapter = tmp_path / "v2-adapter"
    get_peft_model(copy.deepcopy(local_chat.base.model), lora).save_pretrained(adapter)
    ids = seed_store(engine, count_tokens, with_validation=False)
    with session_scope(engine) as session:
        base = local_chat.base.name
        session.add(ModelVersion(name="v1", base_model=base, status=VersionStatus.PROMOTED))
        session.add(ModelVersion(name="v2", base_model=base, adapter_path=str(adapter)))
        session.add(ModelVersion(name="v3", base_model=base, status=VersionStatus.DISCARDED))
    settings = Settings(
        artifacts_dir=tmp_path, local_synthetic=True, local_candidates=1, _env_file=None
    )

    class Progress:
        def progress(self, fraction, stage=None, metrics=None) -> None:
            assert 0.05 <= fraction <= 0.25 and stage == "generate"

    try:
        result = pipeline_generate_step(Backends(settings))(engine, Progress())
    finally:  # the base is shared by the whole session: leave no adapter loaded on it
        local_chat.host.unload(adapter.resolve())

    assert result["responder_model"] == f"{base}+v2-adapter", "the newest version not discarded"
    assert result["generated"] == len(ids)
    with session_scope(engine) as session:
        rows = list_candidates(session, limit=None)
        assert {r.template_version for r in rows} == {"fewshot_request@1+voice_reply@1"}
