"""Hosted training on Together AI: the real ``together`` SDK against a loopback server speaking
Together's upload handshake, LoRA jobs, events, metrics, cancel and adapter download."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from brandvoice.store.db import session_scope
from brandvoice.store.models import DatasetSnapshot, RunStatus
from tests.fakes.openai_server import FakeResponse, openai_error, parse_multipart
from tests.fakes.together_server import ADAPTER_CONFIG, FakeTogetherServer, TogetherPlan
from tests.hosted.conftest import Harness, make_harness, voice_reply
from tests.hosted.test_openai_hosted import CancelsDuringTraining

BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


def together_harness(engine, tmp_path: Path, server: FakeTogetherServer) -> Harness:
    server.add_route("POST", "/v1/chat/completions", voice_reply)
    return make_harness(
        engine,
        tmp_path / "artifacts",
        server,
        together_api_key="tg-test",
        together_base_url=server.base_url,
    )


def test_a_lora_job_that_succeeds_registers_the_hosted_model_and_its_adapter(
    seeded, tmp_path, together_server: FakeTogetherServer
):
    harness = together_harness(seeded, tmp_path, together_server)
    run_id = harness.enqueue("together")

    run = harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (job_id,) = together_server.jobs
    model_id = together_server.jobs[job_id]["model_output_name"]
    assert run.external_job_id == job_id
    assert run.metrics["hosted"]["losses"] == [
        {"step": 1, "train_loss": 1.8, "eval_loss": 2.0},
        {"step": 2, "train_loss": 1.2, "eval_loss": 1.4},
        {"step": 3, "train_loss": 0.7, "eval_loss": 0.9},
    ]
    (version,) = harness.versions()
    assert (version.backend, version.base_model) == ("together", BASE)
    assert version.hosted_model_id == model_id
    adapter = Path(version.adapter_path or "")
    run_dir = tmp_path / "artifacts" / "runs" / f"run-{run_id}"
    assert adapter.parent == run_dir / "attempt-1" / "adapter"  # each attempt its own directory
    assert json.loads((adapter / "adapter_config.json").read_text()) == ADAPTER_CONFIG
    assert (adapter / "adapter_model.safetensors").is_file()
    assert version.eval["training"]["trained_tokens"] == 9876
    # Training and evaluation rows of a step are one point: the evaluation keeps the train loss.
    assert version.eval["training"]["first_train_loss"] == 1.8
    assert version.eval["training"]["final_train_loss"] == 0.7
    assert run.metrics["train"] == {"step": 3, "loss": 0.7, "eval_loss": 0.9}
    assert version.eval["verdict"]["recommend_promote"] is True
    asked = [r.body["model"] for r in together_server.requests_to("POST", "/v1/chat/completions")]
    assert model_id in asked


def test_request_bodies_are_exactly_what_together_expects(
    seeded, tmp_path, together_server: FakeTogetherServer
):
    harness = together_harness(seeded, tmp_path, together_server)
    run_id = harness.enqueue("together")
    harness.execute(run_id)

    with session_scope(seeded) as session:
        snapshot = session.get(DatasetSnapshot, harness.run(run_id).snapshot_id)
        assert snapshot is not None
        files = [Path(snapshot.train_path), Path(snapshot.val_path)]
    starts = [parse_multipart(r) for r in together_server.requests_to("POST", "/v1/files")]
    assert [{k: v[1].decode() for k, v in s.items() if k != "checksum"} for s in starts] == [
        {"purpose": "fine-tune", "file_name": f.name, "file_type": "jsonl"} for f in files
    ]
    puts = [r for r in together_server.requests if r.method == "PUT"]
    assert [r.body for r in puts] == [f.read_bytes() for f in files]
    (create,) = together_server.job_requests()
    assert create.body == {
        "model": BASE,
        "training_file": "file-0001-fake",
        "validation_file": "file-0002-fake",
        "n_epochs": 3,
        "n_evals": 3,
        "n_checkpoints": 1,
        "batch_size": "max",
        "learning_rate": 1e-05,
        "lr_scheduler": {
            "lr_scheduler_type": "cosine",
            "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5},
        },
        "warmup_ratio": 0.0,
        "max_grad_norm": 1.0,
        "weight_decay": 0.0,
        "packing": True,
        "suffix": f"brandvoice-r{run_id}",
        "random_seed": 42,
        "early_stopping_enabled": False,
        "training_type": {
            "type": "Lora",
            "lora_r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.0,
            "lora_trainable_modules": "all-linear",
        },
        "training_method": {"method": "sft", "train_on_inputs": "auto"},
    }
    (job_id,) = together_server.jobs
    download = together_server.requests_to("GET", "/v1/finetune/download")
    assert [r.query for r in download] == [f"ft_id={job_id}&checkpoint=adapter"]


def test_a_job_that_errors_fails_the_run_with_togethers_reason(seeded, tmp_path):
    plan = TogetherPlan(statuses=("pending", "running", "error"))
    with FakeTogetherServer(plan) as server:
        harness = together_harness(seeded, tmp_path, server)
        run = harness.execute(harness.enqueue("together"))

    assert run.status == RunStatus.FAILED
    assert plan.error in run.error and "Traceback" not in run.error
    assert run.error.startswith("HostedTrainingError: Together AI fine-tuning job ft-")
    assert harness.versions() == []


@pytest.mark.parametrize(
    ("refusal", "hint"),
    [
        pytest.param(
            openai_error(
                400,
                f"Model {BASE} is deprecated and no longer supported for fine-tuning.",
                param="model",
            ),
            "choose another base model",
            id="deprecated-model",
        ),
        pytest.param(
            FakeResponse(402, {"message": "Insufficient balance: add credits to continue."}),
            "add credit",
            id="no-credit",
        ),
        pytest.param(
            openai_error(401, "Invalid API key provided", type="invalid_api_key"),
            "check TOGETHER_API_KEY",
            id="bad-key",
        ),
    ],
)
def test_a_refusal_at_creation_fails_the_run_with_the_providers_message(
    seeded, tmp_path, together_server: FakeTogetherServer, refusal: Any, hint: str
):
    together_server.script("POST", "/v1/fine-tunes", refusal)
    harness = together_harness(seeded, tmp_path, together_server)

    run = harness.execute(harness.enqueue("together"))

    assert run.status == RunStatus.FAILED
    body = refusal.body
    message = body["error"]["message"] if "error" in body else body["message"]
    assert message in run.error and hint in run.error
    assert "Together AI refused to create the fine-tuning job" in run.error
    assert len(together_server.job_requests()) == 1 and together_server.jobs == {}
    assert run.external_job_id is None


def test_cancelling_the_run_cancels_the_together_job(
    seeded, tmp_path, together_server: FakeTogetherServer
):
    harness = together_harness(seeded, tmp_path, together_server)

    run = harness.execute(harness.enqueue("together"), reporter=CancelsDuringTraining)

    assert run.status == RunStatus.CANCELLED
    (job_id,) = together_server.jobs
    assert len(together_server.requests_to("POST", f"/v1/fine-tunes/{job_id}/cancel")) == 1
    assert together_server.jobs[job_id]["status"] == "cancelled"
    assert harness.versions() == []


def test_the_estimate_is_togethers_own_price_with_its_evaluation_passes(
    seeded, tmp_path, together_server: FakeTogetherServer
):
    harness = together_harness(seeded, tmp_path, together_server)
    run = harness.execute(harness.enqueue("together"))

    assert run.status == RunStatus.SUCCEEDED, run.error
    estimate = run.metrics["hosted"]["estimate"]
    assert (estimate["priced_by"], estimate["estimated_cost"]) == ("Together AI", 1.25)
    assert estimate["billed_tokens"] == 12000 + 100 * 3
    ours = together_server.requests_to("POST", "/v1/fine-tunes/estimate-price")[0].body
    assert ours["n_evals"] == 3 and ours["validation_file"] == "file-0002-fake"


def test_without_togethers_price_the_local_estimate_bills_the_evaluation_passes(
    seeded, tmp_path, count_tokens
):
    from brandvoice.trainer.sft_data import read_chat_jsonl

    with FakeTogetherServer(TogetherPlan(estimated_price=None)) as server:
        harness = together_harness(seeded, tmp_path, server)
        run = harness.execute(harness.enqueue("together"))

    assert run.status == RunStatus.SUCCEEDED, run.error
    with session_scope(seeded) as session:
        snapshot = session.get(DatasetSnapshot, run.snapshot_id)
        assert snapshot is not None
        train, val = read_chat_jsonl(snapshot.train_path), read_chat_jsonl(snapshot.val_path)
    estimate = run.metrics["hosted"]["estimate"]
    assert estimate["priced_by"] is None and estimate["eval_passes"] == 3
    billed = 3 * sum(count_tokens(train)) + 3 * sum(count_tokens(val))
    assert estimate["billed_tokens"] == billed
    assert estimate["estimated_cost"] == round(billed / 1e6 * 3.0, 4)


def test_a_zstd_adapter_as_together_sends_it_is_unpacked(seeded, tmp_path):
    with FakeTogetherServer(TogetherPlan(compression="zstd")) as server:
        harness = together_harness(seeded, tmp_path, server)
        run = harness.execute(harness.enqueue("together"))

    assert run.status == RunStatus.SUCCEEDED, run.error
    (version,) = harness.versions()
    adapter = Path(version.adapter_path or "")
    assert json.loads((adapter / "adapter_config.json").read_text()) == ADAPTER_CONFIG


def test_a_failed_adapter_download_fails_the_run_and_resuming_downloads_it(
    seeded, tmp_path, together_server: FakeTogetherServer
):
    from brandvoice.store.runs import requeue_run

    refused = openai_error(400, "Checkpoint is not ready for download")
    together_server.script("GET", "/v1/finetune/download", refused)
    harness = together_harness(seeded, tmp_path, together_server)
    run_id = harness.enqueue("together")

    failed = harness.execute(run_id)

    assert failed.status == RunStatus.FAILED
    assert "adapter could not be downloaded" in failed.error
    assert "Checkpoint is not ready for download" in failed.error
    assert "--resume" in failed.error and harness.versions() == []
    with session_scope(seeded) as session:
        requeue_run(session, run_id, "tester")
    resumed = harness.execute(run_id)
    assert resumed.status == RunStatus.SUCCEEDED, resumed.error
    assert len(together_server.job_requests()) == 1
    (version,) = harness.versions()
    assert (Path(version.adapter_path or "") / "adapter_config.json").is_file()


def test_a_rate_limited_poll_waits_as_asked_and_the_warning_says_it_will_retry(
    seeded, tmp_path, together_server: FakeTogetherServer, caplog
):
    limited = openai_error(429, "Too many requests", headers={"retry-after": "1"})
    together_server.script("GET", "/v1/fine-tunes/{job_id}", limited)
    harness = together_harness(seeded, tmp_path, together_server)

    with caplog.at_level("WARNING", logger="brandvoice.inference.retry"):
        run = harness.execute(harness.enqueue("together"))

    assert run.status == RunStatus.SUCCEEDED, run.error
    (job_id,) = together_server.jobs
    first, second = together_server.requests_to("GET", f"/v1/fine-tunes/{job_id}")[:2]
    assert second.received_at - first.received_at >= 1.0
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "brandvoice.inference.retry"]
    assert "HTTP 429" in warning and "Too many requests" in warning
    assert "retrying in 1.0 s (attempt 1 failed)" in warning
    assert "even after" not in warning


def test_the_default_base_url_is_the_documented_one():
    from brandvoice.bot.settings import Settings
    from brandvoice.trainer.hosted import HostedConfig

    assert HostedConfig().together_base_url == "https://api.together.ai/v1"
    assert Settings(_env_file=None).together_base_url == "https://api.together.ai/v1"  # type: ignore[call-arg]
