"""The retrain pipeline end to end on a tiny budget: real SmolLM2 training, evaluation, registry."""

from __future__ import annotations

from html import escape
from pathlib import Path

from sqlmodel import select

from brandvoice.bot.worker import Worker
from brandvoice.inference.embeddings import cosine_similarity
from brandvoice.inference.local_chat import LocalChat
from brandvoice.samples import general_text_path, sample_examples_path
from brandvoice.store.db import session_scope
from brandvoice.store.importer import import_jsonl
from brandvoice.store.models import AuditLog, ModelVersion, RunKind, RunStatus, TrainingRun
from brandvoice.store.runs import enqueue_run
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.eval_report import report_of
from brandvoice.trainer.evaluate import EvalConfig
from brandvoice.trainer.pipeline import (
    PipelineConfig,
    PipelineServices,
    reply_cache,
    run_retrain,
)


def _config(tmp_path: Path, **overrides) -> PipelineConfig:  # type: ignore[no-untyped-def]
    general = general_text_path().read_text().splitlines()[:3]
    return PipelineConfig(
        artifacts_dir=tmp_path / "artifacts",
        train=TrainConfig(max_steps=2, batch_size=2, max_length=192, seed=0),
        eval=EvalConfig(max_examples=2, max_new_tokens=12, samples=2),
        general_texts=tuple(general),
        **overrides,
    )


def serve(version: ModelVersion | None) -> LocalChat:
    """A version as the bot serves it: the packaged base with the version's adapter."""
    return LocalChat(adapter=version.adapter_path) if version else LocalChat()


def _services() -> PipelineServices:
    return PipelineServices(load_backend=serve, similarity=cosine_similarity)


def _worker(engine, config: PipelineConfig) -> Worker:  # type: ignore[no-untyped-def]
    services = _services()
    return Worker(
        engine, lambda run_id, reporter: run_retrain(engine, run_id, config, services, reporter)
    )


def test_a_retrain_registers_an_evaluated_candidate_and_writes_its_report(
    engine, count_tokens, tmp_path
):
    with session_scope(engine) as session:
        import_jsonl(session, sample_examples_path(), count_tokens)
        run_id = enqueue_run(session, "U1").id
    config = _config(tmp_path)
    assert _worker(engine, config).tick() == run_id

    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        version = session.exec(select(ModelVersion)).one()
        actions = [a.action for a in session.exec(select(AuditLog))]
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.progress == 1.0 and run.snapshot_id == version.snapshot_id
    assert run.metrics["version"] == "v1"
    assert (version.name, version.status, version.run_id) == ("v1", "candidate", run_id)
    assert (Path(version.adapter_path) / "adapter_model.safetensors").is_file()
    assert Path(version.adapter_path).parts[-2:] == (f"run-{run_id}", "attempt-1")
    report = report_of(version)
    assert 0 <= report.voice_similarity.candidate <= 1
    assert 0 <= report.win_rate.vs_production <= 1
    assert report.val_loss.candidate > 0 and report.forgetting > 0 and report.not_measured == []
    assert report.training.steps == 2 and report.training.evals
    assert report.training.preference.used is False  # no corrections yet: the report says so
    assert "0 training pairs" in report.training.preference.reason
    assert report.snapshot.val >= 1 and len(report.samples) == 2
    assert run.metrics["verdict"] == report.verdict.model_dump()
    html = Path(report.report_path).read_text()
    assert "brandvoice v1" in html and escape(report.samples[0].reference[:20]) in html
    assert "model.register" in actions
    kept = {r.text for r in reply_cache(config.artifacts_dir, version).read().values()}
    assert {s.candidate for s in report.samples} <= kept, "v1 will not be asked these again"

    # Nothing new since that run: a scheduled (unforced) retrain is skipped with its reason.
    with session_scope(engine) as session:
        skipped_id = enqueue_run(session, "scheduler").id
    _worker(engine, config).tick()
    with session_scope(engine) as session:
        skipped = session.get(TrainingRun, skipped_id)
    assert skipped.status == RunStatus.SKIPPED
    assert skipped.error.startswith("only 0 new approved example(s)")


def test_a_cancelled_run_leaves_the_registry_as_it_was(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        import_jsonl(session, sample_examples_path(), count_tokens)
        run_id = enqueue_run(session, "U1", force=True).id
    config = _config(tmp_path)

    def cancel_on_first_report(run_id_: int, reporter) -> None:  # type: ignore[no-untyped-def]
        from brandvoice.store.runs import request_cancel

        with session_scope(engine) as session:
            request_cancel(session, run_id_, "U2")
        return run_retrain(engine, run_id_, config, _services(), reporter)

    Worker(engine, cancel_on_first_report).tick()
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        versions = session.exec(select(ModelVersion)).all()
    assert run.status == RunStatus.CANCELLED and versions == []


def test_a_generate_run_from_slack_expands_with_the_requested_count(engine, tmp_path):
    asked: list[int] = []

    def generate(engine_, progress, per_example):  # type: ignore[no-untyped-def]
        asked.append(per_example)
        return {"kept": 2 * per_example}

    services = PipelineServices(load_backend=serve, similarity=cosine_similarity, generate=generate)
    with session_scope(engine) as session:
        run_id = enqueue_run(session, "U1", kind=RunKind.GENERATE, config={"per_example": 3}).id
    config = _config(tmp_path)
    Worker(
        engine, lambda rid, reporter: run_retrain(engine, rid, config, services, reporter)
    ).tick()
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        versions = session.exec(select(ModelVersion)).all()
    assert asked == [3] and run.status == RunStatus.SUCCEEDED
    assert run.metrics == {"generated": {"kept": 6}} and versions == []
