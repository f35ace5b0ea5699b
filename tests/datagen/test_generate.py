"""Generation end to end through the real ``openai`` SDK against the loopback fake server."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from brandvoice.datagen.calls import GenerationAborted
from brandvoice.datagen.filters import FILTER_ORDER
from brandvoice.datagen.generate import GenerateConfig, GenerateSummary, generate_variations
from brandvoice.inference.openai_chat import OpenAIChat
from brandvoice.inference.retry import RetryPolicy
from brandvoice.store.candidates import GenerationCandidate, list_candidates
from brandvoice.store.db import session_scope
from brandvoice.store.models import Example, ExampleSource, Split
from brandvoice.store.snapshots import select_examples
from tests.datagen.brand import GUIDELINES, VALIDATION_PARENT, FakeWriter
from tests.fakes import FakeResponse, chat_completion, openai_error

CHAT = "/v1/chat/completions"


@pytest.fixture
def writer(openai_server) -> FakeWriter:
    fake = FakeWriter()
    openai_server.add_route("POST", CHAT, fake)
    return fake


def backend(server, *, supports_json: bool = True) -> OpenAIChat:
    """Two retries of a passing failure (three requests), with short waits."""
    return OpenAIChat(
        "fake-generator",
        base_url=server.base_url,
        api_key="sk-test",
        supports_json=supports_json,
        max_retries=2,
        retry=RetryPolicy(initial_wait_s=0.01),
        concurrency=4,
    )


def generate(engine, server, embed, count_tokens, **options) -> GenerateSummary:
    supports_json = options.pop("supports_json", True)
    on_progress = options.pop("on_progress", None)
    return generate_variations(
        engine,
        backend(server, supports_json=supports_json),
        embed=embed,
        count_tokens=count_tokens,
        config=GenerateConfig(**options),
        on_progress=on_progress,
    )


def synthetic(engine) -> list[Example]:
    with session_scope(engine) as session:
        query = select(Example).where(Example.source == ExampleSource.SYNTHETIC)
        return list(session.exec(query.order_by(col(Example.id))))


def candidates(engine) -> list[GenerationCandidate]:
    with session_scope(engine) as session:
        return list_candidates(session, limit=None)


def test_json_strategies_keep_good_candidates_with_provenance(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    summary = generate(engine, openai_server, embed, count_tokens)

    assert summary.strategies == ("paraphrase", "new_requests", "reply_variation")
    assert (summary.parents, summary.generated, summary.kept, summary.errors) == (4, 12, 12, 0)
    requests = openai_server.requests_to("POST", CHAT)
    assert all(GUIDELINES in r.body["messages"][0]["content"] for r in requests)
    steps = [r for r in requests if r.body.get("response_format")]
    assert len(steps) == 12 and len(requests) == 12 + 8  # 8 answers: paraphrase + new requests
    kept = synthetic(engine)
    assert len(kept) == 12
    train_parents = {seeded[name] for name in ("returns", "shipping", "repair", "warmth")}
    for example in kept:
        provenance = example.provenance
        assert example.parent_id in train_parents and example.split == Split.TRAIN
        assert provenance["parent_id"] == example.parent_id
        assert provenance["generator_model"] == "fake-generator"
        assert provenance["template_version"].startswith(provenance["strategy"].split("_")[0])
        assert "@" in provenance["template_version"]
        assert provenance["sampling"]["generator"]["seed"] == provenance["seed"]
        assert list(provenance["filters"]) == list(FILTER_ORDER)
        assert all(f["passed"] for f in provenance["filters"].values())
        assert 0 < provenance["score"] <= 1
    rows = candidates(engine)
    assert len(rows) == 12 and all(r.verdict == "keep" and r.example_id for r in rows)
    assert {r.example_id for r in rows} == {e.id for e in kept}


def test_malformed_generator_output_is_recorded_as_a_parse_failure(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    broken = 'Sure! Here is the JSON: {"request": "When will my order'
    openai_server.script("POST", CHAT, FakeResponse(200, chat_completion(broken)))

    summary = generate(
        engine,
        openai_server,
        embed,
        count_tokens,
        strategies=("paraphrase",),
        parent_ids=(seeded["shipping"],),
        concurrency=1,
    )

    assert (summary.generated, summary.kept) == (1, 0)
    assert summary.dropped == {"parse_error": 1}
    assert summary.parse_failures == {"generator: invalid_json": 1}
    (row,) = candidates(engine)
    assert (row.verdict, row.reason, row.messages, row.example_id) == (
        "drop",
        "parse_error",
        None,
        None,
    )
    assert row.raw_text == broken and "invalid_json" in row.detail
    assert synthetic(engine) == []


def test_small_models_get_one_item_plain_text_prompts(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    listed = "1. When does my order ship?\n2. Where is my order?"
    openai_server.script("POST", CHAT, FakeResponse(200, chat_completion(listed)))

    summary = generate(
        engine,
        openai_server,
        embed,
        count_tokens,
        supports_json=False,
        parent_ids=(seeded["shipping"], seeded["repair"]),
        concurrency=1,
    )

    assert summary.strategies == ("paraphrase",)
    assert all("response_format" not in r.body for r in openai_server.requests_to("POST", CHAT))
    assert summary.parse_failures == {"generator: several_items": 1}
    assert summary.kept == 1
    (example,) = synthetic(engine)
    assert example.provenance["template_version"] == "paraphrase@1+answer@1"


def test_children_of_a_validation_example_never_reach_training(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    summary = generate(
        engine,
        openai_server,
        embed,
        count_tokens,
        strategies=("paraphrase", "reply_variation"),
        parent_ids=tuple(seeded.values()),
    )
    assert summary.kept >= 8

    children = [e for e in synthetic(engine) if e.parent_id == seeded["validation"]]
    assert children and all(child.split == Split.VAL for child in children)
    with session_scope(engine) as session:
        train, val = select_examples(session, synthetic_per_example=3)
    assert seeded["validation"] not in {e.id for e in train}
    assert not {e.id for e in children} & {e.id for e in train}
    assert all(e.source != ExampleSource.SYNTHETIC for e in val)
    validation_request = VALIDATION_PARENT[1]["content"]
    for request in openai_server.requests_to("POST", CHAT):
        shown = [m["content"] for m in request.body["messages"][:-1]]
        assert not any(validation_request in text for text in shown[1:]), "shown as a demo"


def test_a_resumed_run_generates_nothing_twice(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    options = {"strategies": ("paraphrase",), "per_example": 2, "chunk_size": 2}

    def interrupt_after_two_chunks(progress) -> None:
        if progress.done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(
            engine,
            openai_server,
            embed,
            count_tokens,
            on_progress=interrupt_after_two_chunks,
            **options,
        )
    assert len(candidates(engine)) == 4

    resumed = generate(engine, openai_server, embed, count_tokens, **options)
    assert (resumed.skipped, resumed.planned) == (4, 4)
    again = generate(engine, openai_server, embed, count_tokens, **options)
    assert (again.skipped, again.planned, again.generated) == (8, 0, 0)

    generator_calls = [last for kind, last in writer.calls if kind == "paraphrase"]
    assert len(generator_calls) == 8 and writer.count("answer") == len(
        [c for c in candidates(engine) if c.raw_reply is not None]
    )
    keys = [(c.parent_id, c.strategy, c.item_index, c.template_version) for c in candidates(engine)]
    assert len(keys) == len(set(keys)) == 8
    assert sorted(c.item_index for c in candidates(engine)) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_a_failure_retrying_cannot_fix_stops_the_run_and_a_rerun_completes_it(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    options = {"strategies": ("paraphrase",), "chunk_size": 1, "concurrency": 1}
    # Call 3 is the second parent's rewording: the first parent (2 calls) is stored by then.
    openai_server.add_route("POST", CHAT, _fail_on_call(writer, 3, openai_error(401, "bad key")))

    with pytest.raises(GenerationAborted, match="401"):
        generate(engine, openai_server, embed, count_tokens, **options)
    assert len(candidates(engine)) == 1

    openai_server.add_route("POST", CHAT, writer)
    summary = generate(engine, openai_server, embed, count_tokens, **options)
    assert (summary.skipped, summary.generated) == (1, 3)
    assert len(candidates(engine)) == 4


def test_passing_failures_are_retried_and_exhausted_ones_are_left_for_the_next_run(
    engine, seeded, writer, openai_server, embed, count_tokens
):
    unavailable = openai_error(503, "overloaded", type="server_error")
    openai_server.script("POST", CHAT, unavailable, unavailable)
    options = {"strategies": ("paraphrase",), "parent_ids": (seeded["repair"],), "concurrency": 1}

    summary = generate(engine, openai_server, embed, count_tokens, **options)
    assert (summary.errors, summary.kept) == (0, 1)

    openai_server.script("POST", CHAT, unavailable, unavailable, unavailable)
    options["per_example"] = 2
    failed = generate(engine, openai_server, embed, count_tokens, **options)
    assert (failed.errors, failed.generated) == (1, 0)
    assert "503" in failed.error_samples[0]
    retried = generate(engine, openai_server, embed, count_tokens, **options)
    assert (retried.skipped, retried.generated) == (1, 1)


def test_a_dry_run_stores_nothing(engine, seeded, writer, openai_server, embed, count_tokens):
    summary = generate(
        engine, openai_server, embed, count_tokens, strategies=("paraphrase",), dry_run=True
    )
    assert summary.kept == 4 and summary.dry_run
    assert summary.kept_samples
    assert candidates(engine) == [] and synthetic(engine) == []


def _fail_on_call(writer: FakeWriter, n: int, failure: FakeResponse):
    """The writer, except that its ``n``-th call (1-based) answers ``failure``."""
    calls = {"count": 0}

    def handler(request):
        calls["count"] += 1
        return failure if calls["count"] == n else writer(request)

    return handler
