"""The hosted preference stage: with enough pairs in the snapshot, a DPO job follows the
supervised one (OpenAI: on its model; Together: from its checkpoint), driven through the real
SDKs against the loopback fakes; with too few pairs, or a refusal, the report says why not."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import Engine

from brandvoice.bot.worker import RunReporter
from brandvoice.samples import SIGN_OFF
from brandvoice.store.db import session_scope
from brandvoice.store.feedback import record_interaction, submit_correction
from brandvoice.store.models import DatasetSnapshot, RunStatus
from brandvoice.store.preference_jsonl import openai_record, read_preference_jsonl
from brandvoice.store.runs import recover_stale_runs
from brandvoice.store.snapshots import preference_paths
from tests.fakes.openai_server import FakeFineTuning, FakeOpenAIServer, parse_multipart
from tests.fakes.together_server import FakeTogetherServer
from tests.hosted.conftest import Harness, make_harness, voice_reply
from tests.hosted.test_openai_hosted import WorkerDied

JOBS = "/v1/fine_tuning/jobs"


@pytest.fixture
def corrected(seeded: Engine, count_tokens) -> Engine:
    """The seeded store plus 30 approved corrections: 30 pairs, most of them in training."""
    with session_scope(seeded) as session:
        for i in range(30):
            interaction = record_interaction(
                session,
                channel="C9",
                message_ts=f"9.{i}",
                prompt_messages=[
                    {"role": "system", "content": "You are Pebble & Pine."},
                    {"role": "user", "content": f"Can you help with order {i}?"},
                ],
                reply=f"Order {i}? No idea.",
            )
            submit_correction(
                session,
                interaction,
                f"Of course! Order {i} ships tomorrow.\n\n{SIGN_OFF}",
                user="UCUR",
                approved=True,
                count_tokens=count_tokens,
            )
    return seeded


def openai_pref_harness(engine, tmp_path: Path, server: FakeOpenAIServer, **hosted: Any) -> Harness:
    return make_harness(
        engine,
        tmp_path / "artifacts",
        server,
        openai_api_key="sk-test",
        openai_base_url=server.base_url,
        **{"preference_min_pairs": 5, **hosted},
    )


def snapshot_of(harness: Harness, run_id: int) -> DatasetSnapshot:
    with session_scope(harness.engine) as session:
        snapshot = session.get(DatasetSnapshot, harness.run(run_id).snapshot_id)
        assert snapshot is not None
        session.expunge(snapshot)
        return snapshot


def test_openai_trains_a_dpo_job_on_the_supervised_model(
    corrected, tmp_path, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    harness = openai_pref_harness(corrected, tmp_path, openai_server, preference_beta=0.2)
    run_id = harness.enqueue("openai")

    run = harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    sft_id, dpo_id = fine_tuning.jobs
    sft, dpo = (r.body for r in fine_tuning.job_requests())
    assert sft["method"]["type"] == "supervised"
    sft_model = fine_tuning.jobs[sft_id]["fine_tuned_model"]
    snapshot = snapshot_of(harness, run_id)
    pairs = snapshot.stats["preference"]["train"]
    assert pairs >= 5
    uploaded = list(fine_tuning.files)  # in upload order: train, val, then the pairs
    assert dpo == {
        "model": sft_model,
        "training_file": uploaded[2],
        "validation_file": uploaded[3],
        "method": {
            "type": "dpo",
            "dpo": {
                "hyperparameters": {
                    "n_epochs": 3,
                    "batch_size": "auto",
                    "learning_rate_multiplier": "auto",
                    "beta": 0.2,
                }
            },
        },
        "suffix": f"brandvoice-r{run_id}-dpo",
        "seed": 42,
        "metadata": {
            "brandvoice_run": str(run_id),
            "snapshot": snapshot.content_hash[:16],
            "stage": "preference",
        },
    }
    # The pairs travel in OpenAI's preference format, exactly the snapshot's pairs.
    uploads = [parse_multipart(r)["file"] for r in openai_server.requests_to("POST", "/v1/files")]
    assert [name for name, _ in uploads] == [
        "train.jsonl",
        "val.jsonl",
        "preference_train.jsonl",
        "preference_val.jsonl",
    ]
    train_pairs, val_pairs = preference_paths(snapshot)
    for (_, content), path in zip(uploads[2:], (train_pairs, val_pairs), strict=True):
        sent = [json.loads(line) for line in content.decode().splitlines()]
        assert sent == [
            openai_record(p.prompt, p.chosen, p.rejected) for p in read_preference_jsonl(path)
        ]
    assert len(sent) == snapshot.stats["preference"]["val"]

    dpo_model = fine_tuning.jobs[dpo_id]["fine_tuned_model"]
    assert run.metrics["preference"] == {"pairs": pairs, "used": True}
    assert run.metrics["preference_job"]["job_id"] == dpo_id
    assert run.metrics["hosted_preference"]["status"] == "succeeded"
    assert run.external_job_id == sft_id
    (version,) = harness.versions()
    assert version.hosted_model_id == dpo_model != sft_model
    stored = version.eval["training"]["preference"]  # the typed report adds its empty defaults
    assert {key: stored[key] for key in ("pairs", "used")} == {"pairs": pairs, "used": True}
    assert version.eval["training"]["model_id"] == dpo_model
    assert version.eval["training"]["preference_job"]["job_id"] == dpo_id
    assert version.hyperparameters["preference"]["method"] == dpo["method"]
    assert version.hyperparameters["preference"]["model"] == sft_model


def test_too_few_pairs_train_the_supervised_model_only_and_say_so(
    corrected, tmp_path, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    harness = openai_pref_harness(corrected, tmp_path, openai_server, preference_min_pairs=1000)
    run_id = harness.enqueue("openai")

    run = harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (job_id,) = fine_tuning.jobs
    pairs = snapshot_of(harness, run_id).stats["preference"]["train"]
    expected = {
        "pairs": pairs,
        "used": False,
        "reason": f"the snapshot has {pairs} preference training pair(s); "
        "PREFERENCE_MIN_PAIRS is 1000",
    }
    assert run.metrics["preference"] == expected
    (version,) = harness.versions()
    stored = version.eval["training"]["preference"]
    assert {key: stored[key] for key in expected} == expected
    assert version.hosted_model_id == fine_tuning.jobs[job_id]["fine_tuned_model"]
    assert len(openai_server.requests_to("POST", "/v1/files")) == 2


def test_a_store_without_pairs_reports_none_used(
    openai_harness: Harness, fine_tuning: FakeFineTuning
):
    run = openai_harness.execute(openai_harness.enqueue("openai"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.metrics["preference"] == {
        "pairs": 0,
        "used": False,
        "reason": "the snapshot has 0 preference training pair(s); PREFERENCE_MIN_PAIRS is 20",
    }
    assert len(fine_tuning.jobs) == 1


def test_a_refused_preference_job_leaves_the_supervised_model_with_the_reason(
    corrected, tmp_path, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    harness = openai_pref_harness(corrected, tmp_path, openai_server, preference_beta=5.0)
    run_id = harness.enqueue("openai")

    run = harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (job_id,) = fine_tuning.jobs  # the refused one was never created
    assert len(fine_tuning.job_requests()) == 2
    preference = run.metrics["preference"]
    assert preference["used"] is False
    assert preference["reason"].startswith("OpenAI refused the preference job: Invalid beta: 5.0")
    (version,) = harness.versions()
    assert version.hosted_model_id == fine_tuning.jobs[job_id]["fine_tuned_model"]
    assert "preference" not in version.hyperparameters


def test_the_fake_fails_a_dpo_job_whose_file_is_not_preference_pairs(
    openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    """The fake checks the documented line shape, so the tests above prove ours."""
    client = openai.OpenAI(api_key="sk-test", base_url=openai_server.base_url, max_retries=0)
    chat = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    pair = json.dumps(openai_record([{"role": "user", "content": "hi"}], "yes", "no")).encode()
    chat_file = client.files.create(
        file=("a.jsonl", chat, "application/jsonl"), purpose="fine-tune"
    )
    pair_file = client.files.create(
        file=("b.jsonl", pair, "application/jsonl"), purpose="fine-tune"
    )
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto"}}}
    wrong = client.fine_tuning.jobs.create(model="gpt-4.1", training_file=chat_file.id, method=dpo)
    right = client.fine_tuning.jobs.create(model="gpt-4.1", training_file=pair_file.id, method=dpo)
    sft_on_pairs = client.fine_tuning.jobs.create(model="gpt-4.1", training_file=pair_file.id)

    failed = client.fine_tuning.jobs.retrieve(wrong.id)
    assert failed.status == "failed" and failed.error.code == "invalid_training_file"
    assert "Line 1: missing 'input.messages'" in failed.error.message
    assert client.fine_tuning.jobs.retrieve(right.id).status == "queued"
    assert client.fine_tuning.jobs.retrieve(sft_on_pairs.id).status == "failed"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(
            model="ft:gpt-4.1:nobody:x:1", training_file=pair_file.id, method=dpo
        )


class DiesDuringPreference(RunReporter):
    """The worker ends while the preference job trains."""

    submitted = False

    def progress(self, fraction: float, stage: str | None = None, metrics: Any = None) -> None:
        super().progress(fraction, stage, metrics)
        if stage and stage.startswith("submit preference job"):
            self.submitted = True
        elif self.submitted and stage and stage.startswith("train:"):
            raise WorkerDied


def test_a_worker_restart_resumes_the_preference_job_without_a_second_one(
    corrected, tmp_path, openai_server: FakeOpenAIServer, fine_tuning: FakeFineTuning
):
    harness = openai_pref_harness(corrected, tmp_path, openai_server)
    run_id = harness.enqueue("openai")
    with pytest.raises(WorkerDied):
        harness.execute(run_id, reporter=DiesDuringPreference)
    assert len(fine_tuning.jobs) == 2

    time.sleep(0.01)
    assert recover_stale_runs(harness.engine, timedelta(0)) == [run_id]
    run = harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(fine_tuning.job_requests()) == 2  # never a third job
    assert len(openai_server.requests_to("POST", "/v1/files")) == 4  # nor a second upload
    _, dpo_id = fine_tuning.jobs
    (version,) = harness.versions()
    assert version.hosted_model_id == fine_tuning.jobs[dpo_id]["fine_tuned_model"]
    assert run.metrics["preference"]["used"] is True


def test_together_continues_the_supervised_checkpoint_with_dpo(
    corrected, tmp_path, together_server: FakeTogetherServer
):
    together_server.add_route("POST", "/v1/chat/completions", voice_reply)
    harness = make_harness(
        corrected,
        tmp_path / "artifacts",
        together_server,
        together_api_key="tg-test",
        together_base_url=together_server.base_url,
        preference_min_pairs=5,
    )
    run_id = harness.enqueue("together")

    run = harness.execute(run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    sft_id, dpo_id = together_server.jobs
    sft, dpo = (r.body for r in together_server.job_requests())
    assert sft["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
    assert "model" not in dpo and "train_on_inputs" not in dpo["training_method"]
    assert dpo["from_checkpoint"] == sft_id
    assert dpo["training_method"] == {
        "method": "dpo",
        "dpo_normalize_logratios_by_length": False,
        "dpo_reference_free": False,
    }
    assert dpo["suffix"] == f"brandvoice-r{run_id}-dpo"
    pairs = snapshot_of(harness, run_id).stats["preference"]["train"]
    assert run.metrics["preference"] == {"pairs": pairs, "used": True}
    (version,) = harness.versions()
    assert version.hosted_model_id == together_server.jobs[dpo_id]["model_output_name"]
    downloads = together_server.requests_to("GET", "/v1/finetune/download")
    assert [r.query for r in downloads] == [f"ft_id={dpo_id}&checkpoint=adapter"]
    assert Path(version.adapter_path or "").is_dir()
