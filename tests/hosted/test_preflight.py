"""The pure parts of hosted training: pre-flight limits and cost, error reading, adapter unpacking."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from brandvoice.inference.retry import parse_retry_after
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.db import session_scope
from brandvoice.trainer.hosted import (
    HostedConfig,
    HostedTrainingError,
    PreflightError,
    make_provider,
    preflight,
)
from brandvoice.trainer.hosted.base import billed_eval_passes, provider_message, status_error
from brandvoice.trainer.hosted.openai_ft import token_limit_for
from brandvoice.trainer.hosted.together_ft import unpack_adapter
from tests.fakes.together_server import ADAPTER_CONFIG, adapter_archive


def chat(words: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": " ".join(["trail"] * words)},
    ]


def check(train, val=(), limit=1000, price=2.0, eval_passes=0):  # type: ignore[no-untyped-def]
    return preflight(
        list(train),
        list(val),
        provider="OpenAI",
        base_model="gpt-4o-mini-2024-07-18",
        token_limit=limit,
        epochs=3,
        eval_passes=eval_passes,
        price_per_million_tokens=price,
        count_tokens=count_chat_tokens_batch,
    )


def test_cost_is_epochs_times_the_tokens_of_every_training_example():
    train = [chat(10 * (i + 1)) for i in range(12)]
    tokens = count_chat_tokens_batch(train)

    estimate = check(train, val=[chat(5)])

    assert estimate.train_examples == 12 and estimate.val_examples == 1
    assert estimate.billed_tokens == 3 * sum(tokens)
    assert estimate.estimated_cost == round(3 * sum(tokens) / 1e6 * 2.0, 4)
    assert f"about {3 * sum(tokens):,} billed tokens" in estimate.summary()
    assert "estimated cost $0.0058 at $2 per 1M tokens" in estimate.summary()
    assert "no price configured" in check(train, price=0.0).summary()


def test_evaluation_passes_over_the_validation_set_are_billed_too():
    train, val = [chat(10 * (i + 1)) for i in range(12)], [chat(5), chat(50)]
    train_tokens, val_tokens = (
        sum(count_chat_tokens_batch(train)),
        sum(count_chat_tokens_batch(val)),
    )

    estimate = check(train, val, eval_passes=3)

    assert estimate.billed_tokens == 3 * train_tokens + 3 * val_tokens
    assert "3 epochs and 3 evaluation passes" in estimate.summary()
    assert billed_eval_passes("together", 3, has_validation=True) == 3
    assert billed_eval_passes("together", 3, has_validation=False) == 0
    assert billed_eval_passes("openai", 3, has_validation=True) == 0


def test_a_snapshot_estimates_its_cost_as_the_hosted_preflight_does(engine, count_tokens, tmp_path):
    from brandvoice.store.examples import NewExample, add_examples
    from brandvoice.store.models import ExampleSource
    from brandvoice.store.snapshots import SnapshotOptions, snapshot_dataset
    from brandvoice.trainer.sft_data import read_chat_jsonl
    from tests.hosted.conftest import brand_rows

    with session_scope(engine) as session:
        add_examples(
            session,
            [NewExample(r["messages"], ExampleSource.IMPORT) for r in brand_rows()],
            count_tokens,
        )
        options = SnapshotOptions(epochs=3, eval_passes=3, price_per_million_tokens=2.0)
        snapshot, _ = snapshot_dataset(session, tmp_path, options)
    train, val = read_chat_jsonl(snapshot.train_path), read_chat_jsonl(snapshot.val_path)
    assert val, "the sample snapshot holds validation examples"

    estimate = check(train, val, limit=options.max_tokens_per_example, eval_passes=3)

    assert snapshot.stats["estimated_training_tokens"] == estimate.billed_tokens
    assert snapshot.stats["estimated_cost"] == estimate.estimated_cost


def test_fewer_than_ten_examples_are_refused():
    with pytest.raises(PreflightError, match="at least 10 training examples; the snapshot has 9"):
        check([chat(3)] * 9)


def test_examples_over_the_models_token_limit_are_named_by_line():
    train = [chat(3)] * 10 + [chat(400)]
    val = [chat(500)]

    with pytest.raises(PreflightError) as raised:
        check(train, val, limit=300)

    message = str(raised.value)
    assert "2 example(s) exceed the 300-token limit of gpt-4o-mini-2024-07-18" in message
    long_train, long_val = count_chat_tokens_batch([train[-1], val[0]])
    assert (
        f"train.jsonl line 11: {long_train} tokens; val.jsonl line 1: {long_val} tokens" in message
    )


def test_openai_token_limits_per_base_model():
    assert token_limit_for("gpt-4o-mini-2024-07-18") == 65_536
    assert token_limit_for("gpt-4.1-nano-2025-04-14") == 65_536
    assert token_limit_for("gpt-3.5-turbo-0125") == 16_385
    assert token_limit_for("some-new-model") == 16_385


def test_error_bodies_of_both_providers_are_read():
    openai_inner = {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}
    assert provider_message(openai_inner, "x") == ("Rate limit", "rate_limit_exceeded")
    assert provider_message({"error": openai_inner}, "x") == ("Rate limit", "rate_limit_exceeded")
    assert provider_message({"message": "Insufficient balance"}, "x") == (
        "Insufficient balance",
        None,
    )
    assert provider_message("<html>bad gateway</html>", "x") == ("<html>bad gateway</html>", None)
    assert provider_message(None, "Error code: 502") == ("Error code: 502", None)


def test_retry_after_in_seconds_milliseconds_and_as_a_date():
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert (
        parse_retry_after({"retry-after": formatdate(1_000_030, usegmt=True)}, now=1_000_000) == 30
    )
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "code", "message", "transient"),
    [
        (429, "rate_limit_exceeded", "Rate limit reached", True),
        (429, "insufficient_quota", "You exceeded your current quota", False),
        (503, None, "The server is overloaded", True),
        (400, "invalid_request_error", "suffix is too long", False),
        (401, "invalid_api_key", "Incorrect API key", False),
    ],
)
def test_only_rate_limits_and_outages_are_transient(status, code, message, transient):
    error = status_error(
        "OpenAI", "create the fine-tuning job", status, {"message": message, "code": code},
        {"retry-after": "3"}, "fallback", "OPENAI_API_KEY",
    )  # fmt: skip
    assert error.transient is transient
    assert error.retry_after == 3.0 and error.status_code == status
    assert message in str(error) and error.provider_message == message


def test_a_provider_without_a_key_is_refused_up_front():
    with pytest.raises(ValueError, match="set OPENAI_API_KEY"):
        make_provider("openai", HostedConfig())
    with pytest.raises(ValueError, match="set TOGETHER_API_KEY"):
        make_provider("together", HostedConfig())
    with pytest.raises(ValueError, match="choose local, openai or together"):
        make_provider("bedrock", HostedConfig(openai_api_key="sk"))


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_adapter_archives_unpack_to_the_folder_with_the_adapter_config(tmp_path, compression):
    archive = tmp_path / "download"
    archive.write_bytes(adapter_archive(compression))

    adapter = unpack_adapter(archive, tmp_path / "adapter")

    assert adapter == tmp_path / "adapter" / "final"
    assert json.loads((adapter / "adapter_config.json").read_text()) == ADAPTER_CONFIG


def test_an_archive_without_an_adapter_is_an_error(tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("README.md")
        tar.addfile(info, io.BytesIO(b""))
    archive = tmp_path / "download"
    archive.write_bytes(buffer.getvalue())

    with pytest.raises(HostedTrainingError, match=r"held no adapter_config\.json"):
        unpack_adapter(archive, tmp_path / "adapter")
