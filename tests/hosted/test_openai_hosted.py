"""Hosted training on OpenAI: the real ``openai`` SDK against a loopback server speaking OpenAI's
files and fine-tuning API, driven end to end through the worker and the retrain pipeline."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from brandvoice.bot.worker import RunReporter
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.db import session_scope
from brandvoice.store.models import DatasetSnapshot, RunStatus, VersionStatus
from brandvoice.store.runs import recover_stale_runs, request_cancel
from brandvoice.trainer.sft_data import read_chat_jsonl
from tests.fakes.openai_server import (
    FakeFineTuning,
    FakeOpenAIServer,
    JobPlan,
    openai_error,
    parse_multipart,
)
from tests.hosted.conftest import Harness

JOBS = "/v1/fine_tuning/jobs"
JOB = JOBS + "/{job_id}"
BASE = "gpt-4o-mini-2024-07-18"


def snapshot_of(harness: Harness, run_id: int) -> DatasetSnapshot:
    with session_scope(harness.engine) as session:
        run = harness.run(run_id)
        snapshot = session.get(DatasetSnapshot, run.snapshot_id)
        assert snapshot is not None
        session.expunge(snapshot)
        return snapshot


def test_a_job_that_succeeds_registers_a_hosted_candidate_with_its_metrics(
    openai_harness: Harness, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    run_id = openai_harness.enqueue("openai")

    run = openai_harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (job_id,) = fine_tuning.jobs
    model_id = fine_tuning.jobs[job_id]["fine_tuned_model"]
    assert run.external_job_id == job_id
    hosted = run.metrics["hosted"]
    assert hosted["status"] == "succeeded" and hosted["model_id"] == model_id
    assert hosted["losses"] == [
        {"step": 1, "train_loss": 2.0, "eval_loss": 2.1},
        {"step": 2, "train_loss": 1.4, "eval_loss": 1.5},
        {"step": 3, "train_loss": 0.9, "eval_loss": 1.0},
    ]
    assert "The job has successfully completed" in hosted["events"]
    assert run.metrics["train"] == {"step": 3, "loss": 0.9, "eval_loss": 1.0}

    snapshot = snapshot_of(openai_harness, run_id)
    train_rows = read_chat_jsonl(snapshot.train_path)
    billed = 3 * sum(count_chat_tokens_batch(train_rows))
    assert hosted["estimate"]["billed_tokens"] == billed
    assert hosted["estimate"]["train_examples"] == len(train_rows) >= 10
    assert hosted["estimate"]["estimated_cost"] == round(billed / 1e6 * 3.0, 4)

    (version,) = openai_harness.versions()
    assert version.status == VersionStatus.CANDIDATE
    assert (version.backend, version.base_model) == ("openai", BASE)
    assert version.hosted_model_id == model_id and version.adapter_path is None
    assert version.eval["training"]["model_id"] == model_id
    assert version.eval["training"]["trained_tokens"] == 4242
    assert version.eval["win_rate"]["vs_production"] == 1.0
    assert version.eval["verdict"]["recommend_promote"] is True
    assert "val_loss" not in version.eval and "forgetting" not in version.eval
    assert Path(version.eval["report_path"]).is_file()
    # Beside the offline metrics: how production (the base model here) fares with people.
    signal = version.eval["production_signal"]
    assert signal["production"]["version"] == "base model" and "candidate" not in signal
    html = Path(version.eval["report_path"]).read_text(encoding="utf-8")
    assert "<h2>Production signal</h2>" in html
    # The candidate was asked through the provider's OpenAI-compatible chat endpoint.
    asked = [r.body["model"] for r in openai_server.requests_to("POST", "/v1/chat/completions")]
    assert asked.count(model_id) == min(4, snapshot.stats["val"])


def test_request_bodies_are_exactly_what_openai_expects(
    openai_harness: Harness, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    run_id = openai_harness.enqueue("openai")
    openai_harness.execute(run_id)

    snapshot = snapshot_of(openai_harness, run_id)
    uploads = [parse_multipart(r) for r in openai_server.requests_to("POST", "/v1/files")]
    assert [u["purpose"] for u in uploads] == [(None, b"fine-tune")] * 2
    assert [u["file"] for u in uploads] == [
        ("train.jsonl", Path(snapshot.train_path).read_bytes()),
        ("val.jsonl", Path(snapshot.val_path).read_bytes()),
    ]
    (create,) = fine_tuning.job_requests()
    assert create.body == {
        "model": BASE,
        "training_file": "file-1",
        "validation_file": "file-2",
        "method": {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": 3,
                    "batch_size": "auto",
                    "learning_rate_multiplier": "auto",
                }
            },
        },
        "suffix": f"brandvoice-r{run_id}",
        "seed": 42,
        "metadata": {"brandvoice_run": str(run_id), "snapshot": snapshot.content_hash[:16]},
    }
    (version,) = openai_harness.versions()
    assert version.hyperparameters["method"] == create.body["method"]


def test_explicit_hyperparameters_are_sent_as_numbers(
    seeded, tmp_path, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    from tests.hosted.conftest import make_harness

    harness = make_harness(
        seeded,
        tmp_path,
        openai_server,
        openai_api_key="sk-test",
        openai_base_url=openai_server.base_url,
        epochs=5,
        batch_size=8,
        learning_rate_multiplier=0.5,
        seed=7,
    )
    harness.execute(harness.enqueue("openai"))
    (create,) = fine_tuning.job_requests()
    assert create.body["method"]["supervised"]["hyperparameters"] == {
        "n_epochs": 5,
        "batch_size": 8,
        "learning_rate_multiplier": 0.5,
    }
    assert create.body["seed"] == 7


def test_a_job_that_fails_fails_the_run_with_openais_reason(
    openai_harness: Harness, openai_server: FakeOpenAIServer
):
    reason = "The job failed due to an invalid training file. Line 4 is not a chat example."
    FakeFineTuning(
        openai_server,
        JobPlan(
            statuses=("validating_files", "running", "failed"),
            error={"code": "invalid_training_file", "message": reason},
        ),
    )
    run_id = openai_harness.enqueue("openai")

    run = openai_harness.execute(run_id)

    assert run.status == RunStatus.FAILED
    assert reason in run.error and "(invalid_training_file)" in run.error
    assert "start a new run" in run.error and "Traceback" not in run.error
    assert run.metrics["hosted"]["status"] == "failed"
    assert openai_harness.versions() == []


REFUSALS = [
    pytest.param(
        JOBS,
        openai_error(
            400,
            "Model gpt-4o-mini-2024-07-18 is deprecated and is no longer available for "
            "fine-tuning.",
            param="model",
            code="model_not_available",
        ),
        "choose another base model",
        id="deprecated-model",
    ),
    pytest.param(
        JOBS,
        openai_error(
            403,
            "OpenAI is winding down self-serve fine-tuning: this organization can no longer "
            "create fine-tuning jobs.",
            type="invalid_request_error",
        ),
        "set TRAINING_BACKEND to together or local",
        id="wind-down",
    ),
    pytest.param(
        JOBS,
        openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        ),
        "add credit",
        id="quota",
    ),
    pytest.param(
        "/v1/files",
        openai_error(
            401,
            "Incorrect API key provided: sk-test. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        ),
        "check OPENAI_API_KEY",
        id="bad-key",
    ),
]


@pytest.mark.parametrize(("route", "refusal", "hint"), REFUSALS)
def test_a_refusal_fails_the_run_with_the_providers_message_and_a_hint(
    openai_harness: Harness,
    openai_server: FakeOpenAIServer,
    fine_tuning: FakeFineTuning,
    route: str,
    refusal: Any,
    hint: str,
):
    openai_server.script("POST", route, refusal)
    run_id = openai_harness.enqueue("openai")

    run = openai_harness.execute(run_id)

    assert run.status == RunStatus.FAILED
    assert refusal.body["error"]["message"] in run.error
    assert hint in run.error and "Traceback" not in run.error
    assert run.error.startswith("HostedTrainingError: OpenAI refused to ")
    assert len(fine_tuning.job_requests()) == (1 if route == JOBS else 0)  # never retried
    assert fine_tuning.jobs == {} and run.external_job_id is None
    assert openai_harness.versions() == []


class CancelsDuringTraining(RunReporter):
    """Someone presses cancel while the provider trains."""

    asked = False

    def progress(self, fraction: float, stage: str | None = None, metrics: Any = None) -> None:
        if stage and stage.startswith("train:") and not self.asked:
            self.asked = True
            with session_scope(self.engine) as session:
                request_cancel(session, self.run_id, "tester")
        super().progress(fraction, stage, metrics)


def test_cancelling_the_run_cancels_the_providers_job(
    openai_harness: Harness, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    run_id = openai_harness.enqueue("openai")

    run = openai_harness.execute(run_id, reporter=CancelsDuringTraining)

    assert run.status == RunStatus.CANCELLED
    (job_id,) = fine_tuning.jobs
    assert len(openai_server.requests_to("POST", f"{JOBS}/{job_id}/cancel")) == 1
    assert fine_tuning.jobs[job_id]["status"] == "cancelled"
    assert run.metrics["hosted"]["status"] == "cancelled"
    assert openai_harness.versions() == []


class WorkerDied(BaseException):
    """The worker process ended (killed, redeployed) without cleaning up."""


class DiesMidPoll(RunReporter):
    polls = 0

    def progress(self, fraction: float, stage: str | None = None, metrics: Any = None) -> None:
        super().progress(fraction, stage, metrics)
        if stage and stage.startswith("train:"):
            self.polls += 1
            if self.polls == 2:
                raise WorkerDied


def test_a_worker_restart_resumes_polling_the_same_job(
    openai_harness: Harness, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    run_id = openai_harness.enqueue("openai")
    with pytest.raises(WorkerDied):
        openai_harness.execute(run_id, reporter=DiesMidPoll)
    orphan = openai_harness.run(run_id)
    assert orphan.status == RunStatus.RUNNING and orphan.external_job_id is not None

    time.sleep(0.01)
    assert recover_stale_runs(openai_harness.engine, timedelta(0)) == [run_id]
    run = openai_harness.execute(run_id)  # a new worker picks the re-queued run up

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(fine_tuning.job_requests()) == 1  # one job, never a second
    assert len(openai_server.requests_to("POST", "/v1/files")) == 2  # no second upload
    assert run.external_job_id == orphan.external_job_id and run.attempts == 2
    assert [p["step"] for p in run.metrics["hosted"]["losses"]] == [1, 2, 3]
    (version,) = openai_harness.versions()
    assert version.hosted_model_id == fine_tuning.jobs[orphan.external_job_id]["fine_tuned_model"]


def test_rate_limits_and_outages_are_retried_no_sooner_than_retry_after(
    openai_harness: Harness, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    limited = openai_error(
        429,
        "Rate limit reached for requests. Please try again in 1s.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": "1"},
    )
    overloaded = openai_error(
        503, "The server is overloaded.", type="server_error", headers={"retry-after-ms": "300"}
    )
    openai_server.script("POST", JOBS, limited)
    openai_server.script("GET", JOB, overloaded)
    run_id = openai_harness.enqueue("openai")

    run = openai_harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    first, second = fine_tuning.job_requests()
    assert second.received_at - first.received_at >= 1.0
    assert second.body == first.body and len(fine_tuning.jobs) == 1
    polls = [r for r in openai_server.requests if r.method == "GET" and r.params.get("job_id")]
    polls = [r for r in polls if not r.path.endswith("/events")]
    assert polls[1].received_at - polls[0].received_at >= 0.3


def test_too_few_examples_fail_before_anything_is_uploaded(
    engine, count_tokens, tmp_path, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    from brandvoice.store.examples import NewExample, add_examples
    from brandvoice.store.models import ExampleSource
    from tests.hosted.conftest import brand_rows, make_harness

    with session_scope(engine) as session:
        rows = [NewExample(r["messages"], ExampleSource.IMPORT) for r in brand_rows(6)]
        add_examples(session, rows, count_tokens)
    harness = make_harness(
        engine, tmp_path, openai_server, openai_api_key="sk", openai_base_url=openai_server.base_url
    )

    run = harness.execute(harness.enqueue("openai"))

    assert run.status == RunStatus.FAILED
    assert "needs at least 10 training examples" in run.error
    assert openai_server.requests == []


def test_estimate_is_written_before_the_upload(
    openai_harness: Harness, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    seen: list[dict[str, Any]] = []

    class Watches(RunReporter):
        def progress(self, fraction: float, stage: str | None = None, metrics: Any = None) -> None:
            if stage and stage.startswith("upload"):
                seen.append(json.loads(json.dumps(openai_harness.run(self.run_id).metrics)))
            super().progress(fraction, stage, metrics)

    openai_harness.execute(openai_harness.enqueue("openai"), reporter=Watches)

    (metrics,) = seen
    assert metrics["hosted"]["estimate"]["provider"] == "OpenAI"
    assert metrics["hosted"]["job_id"] is None
