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

LOCAL_SEED = 0
"""A seed for which the 135M model writes at least one candidate that survives (most do not)."""


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
    config = GenerateConfig(
        parent_ids=(ids["returns"], ids["warmth"]),
        seed=LOCAL_SEED,
        concurrency=1,
        request_sampling=Sampling(temperature=0.7, max_tokens=48),
        reply_sampling=Sampling(temperature=0.7, max_tokens=128),
    )

    summary = generate_variations(
        engine, local_chat, embed=embed, count_tokens=count_tokens, config=config
    )

    assert summary.strategies == ("paraphrase",), "the default for a model without JSON output"
    assert (summary.generated, summary.errors) == (2, 0)
    assert summary.kept + sum(summary.dropped.values()) == summary.generated
    assert summary.kept >= 1
    with session_scope(engine) as session:
        rows = list_candidates(session, limit=None)
        assert len(rows) == 2
        for row in rows:
            assert row.raw_text.strip(), "the generator's raw output is kept"
            assert row.generator_model == "smollm2-135m-instruct"
            if row.reason == "parse_error":
                assert row.messages is None and row.detail
                continue
            assert list(row.scores) == list(FILTER_ORDER)
            assert (row.verdict == "keep") == all(s["passed"] for s in row.scores.values())
            if row.verdict == "keep":
                example = session.get(Example, row.example_id)
                assert example is not None and example.parent_id == row.parent_id
                provenance = example.provenance
                assert provenance["strategy"] == "paraphrase"
                assert provenance["template_version"] == "paraphrase@1+answer@1"
                assert provenance["generator_model"] == "smollm2-135m-instruct"
                assert provenance["seed"] == row.seed
                assert provenance["sampling"]["responder"]["max_tokens"] == 128
                assert all(f["passed"] for f in provenance["filters"].values())
                assert 0 < provenance["score"] <= 1


def test_the_pipeline_step_waits_for_a_promoted_model_when_only_the_base_model_is_local(
    engine, count_tokens, local_chat, tmp_path
):
    from brandvoice.bot.backends import Backends
    from brandvoice.bot.generation import NO_LOCAL_RESPONDER, pipeline_generate_step
    from brandvoice.bot.settings import Settings

    seed_store(engine, count_tokens, with_validation=False)
    settings = Settings(artifacts_dir=tmp_path, _env_file=None)

    result = pipeline_generate_step(Backends(settings))(engine, progress=None)

    assert result == {"skipped": NO_LOCAL_RESPONDER}
    with session_scope(engine) as session:
        assert list_candidates(session) == []
