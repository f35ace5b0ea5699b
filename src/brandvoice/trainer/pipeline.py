"""The retrain pipeline: snapshot, expand, snapshot, train, evaluate, register, report.

Every step reports progress through the run (which also tells it when it was cancelled). The
registry changes in one transaction at the end, so a run killed at any point leaves the registry
exactly as it was. Every write of the run is fenced by its claim, and each attempt trains into its
own directory, so an attempt that lost its claim can neither register nor overwrite anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import col, select

from brandvoice.datagen.guidelines import claim_sources
from brandvoice.inference.backend_cache import BackendLoader
from brandvoice.inference.chat import ChatBackend
from brandvoice.inference.reply_cache import ReplyCache
from brandvoice.inference.retrieval import with_context
from brandvoice.store.db import session_scope
from brandvoice.store.examples import example_ids_for
from brandvoice.store.feedback import served_requests
from brandvoice.store.jsonl import last_request
from brandvoice.store.models import (
    DatasetSnapshot,
    Example,
    ExampleSource,
    ExampleStatus,
    ModelVersion,
    RunKind,
    RunStatus,
    Split,
    TrainingRun,
    utcnow,
)
from brandvoice.store.preference_jsonl import PreferenceRecord, read_preference_jsonl
from brandvoice.store.runs import RunCancelled, RunClaim, RunSkipped, hold_claim
from brandvoice.store.snapshots import SnapshotOptions, preference_paths, snapshot_dataset
from brandvoice.trainer.checkpoint import resumable
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.context_data import CONTEXT_DIR, write_context_split
from brandvoice.trainer.eval_report import ContextTraining, EvalReport
from brandvoice.trainer.evaluate import Contender, EvalConfig, Similarity, evaluate
from brandvoice.trainer.hosted import HostedConfig, make_provider, run_hosted_training
from brandvoice.trainer.lora import TrainCallback, train_lora
from brandvoice.trainer.production_signal import report_signal
from brandvoice.trainer.registry import (
    RegistryBusy,
    promote_version,
    promoted_version,
    register_candidate,
)
from brandvoice.trainer.report_html import render_report_html

log = logging.getLogger(__name__)


class Progress(Protocol):
    def progress(
        self, fraction: float, stage: str | None = None, metrics: dict[str, Any] | None = None
    ) -> None:
        """Record progress; raises ``RunCancelled`` when the run should stop."""
        ...


class RunProgress(Progress, Protocol):
    claim: RunClaim
    """The claim this attempt holds; every write of the run is fenced by it."""


GenerateStep = Callable[[Engine, Progress, int], Mapping[str, Any]]
"""Adds up to N synthetic variations per approved example that has none yet; returns its summary."""
Publisher = Callable[[ModelVersion, EvalReport], None]
"""Announces a finished report (Slack, log)."""
RetrieveContext = Callable[[Engine, str, Sequence[tuple[str, int]]], str]
"""The context block the reply path retrieves for a request, leaving out the given entries."""


@dataclass(frozen=True)
class PipelineConfig:
    artifacts_dir: Path
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    min_new_examples: int = 20
    auto_promote: bool = False
    few_shot: int = 5
    snapshot: SnapshotOptions = field(default_factory=SnapshotOptions)
    general_texts: tuple[str, ...] = ()
    hosted: HostedConfig = field(default_factory=HostedConfig)
    """Providers, base models and hyperparameters of hosted (non-local) training."""
    signal_window: timedelta | None = timedelta(hours=168)
    """The production signal in the report covers replies served this long before it; None:
    all time."""


@dataclass
class PipelineServices:
    load_backend: BackendLoader
    similarity: Similarity
    generate: GenerateStep | None = None
    judge: ChatBackend | None = None
    publishers: list[Publisher] = field(default_factory=list)
    retrieve_context: RetrieveContext | None = None
    """The reply path's retrieval, so training and evaluation see the context replies carry."""


class _ProgressCallback(TrainCallback):
    """Training steps as run progress between ``start`` and ``end``; a cancel stops after a checkpoint."""

    def __init__(self, progress: Progress, start: float, end: float) -> None:
        self.progress, self.start, self.end = progress, start, end
        self.cancelled = False

    def _report(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        fraction = self.start + (self.end - self.start) * step / max(total, 1)
        try:
            self.progress.progress(fraction, "train", {"train": dict(metrics)})
        except RunCancelled:
            self.cancelled = True
            return "stop"
        return None

    on_step = _report
    on_eval = _report


def new_examples_since_last_success(engine: Engine) -> int:
    """Approved real examples that no successful run has trained or evaluated on yet."""
    with session_scope(engine) as session:
        last = session.exec(
            select(DatasetSnapshot)
            .join(TrainingRun, col(TrainingRun.snapshot_id) == col(DatasetSnapshot.id))
            .where(TrainingRun.status == RunStatus.SUCCEEDED)
            .order_by(col(TrainingRun.id).desc())
        ).first()
        seen = set(last.example_ids) if last else set()
        approved = session.exec(
            select(Example.id).where(
                Example.status == ExampleStatus.APPROVED,
                Example.source != ExampleSource.SYNTHETIC,
            )
        ).all()
    return sum(1 for example_id in approved if example_id not in seen)


def take_snapshot(engine: Engine, config: PipelineConfig, actor: str) -> DatasetSnapshot:
    with session_scope(engine) as session:
        snapshot, _ = snapshot_dataset(session, config.artifacts_dir, config.snapshot, actor)
        return snapshot


def few_shot_examples(engine: Engine, n: int) -> list[list[dict[str, Any]]]:
    """``n`` approved real training examples (hash order, so the same ones each time)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Example.messages)
            .where(
                Example.status == ExampleStatus.APPROVED,
                Example.source != ExampleSource.SYNTHETIC,
                Example.split == Split.TRAIN,
            )
            .order_by(col(Example.content_hash))
            .limit(n)
        ).all()
    return [list(messages) for messages in rows]


def run_dir(artifacts_dir: Path, run_id: int) -> Path:
    """A run's folder: its attempts and the training files every attempt shares."""
    return artifacts_dir / "runs" / f"run-{run_id}"


def attempt_dir(artifacts_dir: Path, claim: RunClaim) -> Path:
    """Where one attempt of a run writes checkpoints and its adapter (never shared by attempts)."""
    return run_dir(artifacts_dir, claim.run_id) / f"attempt-{claim.attempt}"


def _resume_point(artifacts_dir: Path, claim: RunClaim) -> Path | None:
    """The newest checkpoint an earlier attempt of the run left, to continue from."""
    folder = run_dir(artifacts_dir, claim.run_id)
    for attempt in range(claim.attempt - 1, 0, -1):
        if resumable(folder / f"attempt-{attempt}"):
            return folder / f"attempt-{attempt}"
    return folder if resumable(folder) else None


def run_retrain(
    engine: Engine,
    run_id: int,
    config: PipelineConfig,
    services: PipelineServices,
    progress: RunProgress,
) -> dict[str, Any]:
    """Execute run ``run_id``; returns the metrics stored on the run."""
    claim = progress.claim
    assert claim.run_id == run_id, f"{claim.label} cannot execute run {run_id}"
    with session_scope(engine) as session:
        run = hold_claim(session, claim)
        force, backend, actor = run.force, run.backend, run.requested_by or "scheduler"
        pinned = run.config.get("snapshot_id")
        if run.external_job_id and run.snapshot_id is not None:
            pinned = run.snapshot_id  # a hosted job already trains on it: resume that job
        run_config, kind = dict(run.config), run.kind
        train_config = config.train.model_copy(update=run_config.get("train", {}))
    if kind == RunKind.GENERATE:
        if services.generate is None:
            raise ValueError("synthetic generation is not configured for this worker")
        progress.progress(0.05, "generate")
        per_example = int(run_config.get("per_example", 1))
        return {"generated": dict(services.generate(engine, progress, per_example))}
    provider = make_provider(backend, config.hosted) if backend != "local" else None
    generated: Mapping[str, Any] = {}
    if pinned is not None:
        with session_scope(engine) as session:
            snapshot = session.get(DatasetSnapshot, pinned)
        if snapshot is None:
            raise LookupError(f"snapshot {pinned} does not exist")
    else:
        progress.progress(0.01, "check")
        new = new_examples_since_last_success(engine)
        if new < config.min_new_examples and not force:
            raise RunSkipped(
                f"only {new} new approved example(s) since the last successful run "
                f"(MIN_NEW_EXAMPLES is {config.min_new_examples}); force it to train anyway"
            )
        progress.progress(0.03, "snapshot")
        take_snapshot(engine, config, actor)
        if services.generate is not None and run_config.get("generate", True):
            progress.progress(0.05, "generate")
            generated = services.generate(engine, progress, 1)
        snapshot = take_snapshot(engine, config, actor)
    with session_scope(engine) as session:
        stored = hold_claim(session, claim)
        stored.snapshot_id = snapshot.id
        session.add(stored)
    progress.progress(
        0.3, "train", {"snapshot": snapshot.content_hash, "generated": dict(generated)}
    )

    output_dir = attempt_dir(config.artifacts_dir, claim)
    data = contextual_data(
        engine,
        snapshot,
        services,
        train_config,
        run_dir(config.artifacts_dir, claim.run_id),
        provider is None,
    )
    hosted_model_id: str | None = None
    adapter_path: Path | None = output_dir
    hyperparameters: dict[str, Any] = train_config.model_dump(mode="json")
    if provider is not None:
        outcome = run_hosted_training(
            engine, run_id, snapshot, provider, config.hosted, progress, output_dir, claim=claim
        )
        training, hosted_model_id = outcome.training, outcome.model_id
        adapter_path, hyperparameters = outcome.adapter_path, outcome.hyperparameters
        base_model = provider.base_model
    else:
        resume_from = _resume_point(config.artifacts_dir, claim)
        training = _train_locally(
            run_id, snapshot, data, output_dir, train_config, progress, resume_from
        )
        base_model = train_config.base_model
    # Served exactly as the registered version will be: the same loader builds both.
    candidate = ModelVersion(
        name="candidate",
        base_model=base_model,
        backend=backend,
        adapter_path=str(adapter_path) if adapter_path is not None else None,
        hosted_model_id=hosted_model_id,
    )

    progress.progress(0.8, "evaluate", {"training": training})
    evaluated = evaluate_candidate(
        engine, config, services, candidate, data.eval_val, progress, train_config.max_length
    )

    progress.progress(0.97, "register")
    with session_scope(engine) as session:
        version = register_candidate(
            session,
            base_model=base_model,
            backend=backend,
            claim=claim,
            snapshot_id=snapshot.id,
            hyperparameters=hyperparameters,
            adapter_path=str(adapter_path) if adapter_path is not None else None,
            hosted_model_id=hosted_model_id,
            actor=actor,
        )
        html_path = config.artifacts_dir / "reports" / f"{version.name}.html"
        report = evaluated.with_run(
            training=training,
            snapshot=_snapshot_summary(snapshot),
            generated=generated,
            report_path=str(html_path),
            production_signal=report_signal(session, version, config.signal_window, utcnow()),
        )
        version.eval = report.to_stored()
        if config.auto_promote and report.verdict.recommend_promote:
            try:
                with session.begin_nested():  # a refused promotion keeps the registration
                    promote_version(session, version.name, "auto-promote")
            except RegistryBusy:
                log.warning(
                    "%s not auto-promoted: a person changed the registry meanwhile", version.name
                )
        session.add(version)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_report_html(version.name, report), encoding="utf-8")
    for publish in services.publishers:
        try:
            publish(version, report)
        except Exception:  # a failed announcement must not fail a finished run
            log.exception("publishing the report of %s failed", version.name)
    verdict = report.verdict.model_dump(mode="json")
    return {"version": version.name, "verdict": verdict, "training": training}


@dataclass(frozen=True)
class TrainingData:
    """The files a run trains and evaluates on: the snapshot's, or copies carrying context."""

    train: Path
    val: Path
    eval_val: Path
    """What the evaluation answers: the validation split with the context replies would carry."""
    context: ContextTraining | None = None


def contextual_data(
    engine: Engine,
    snapshot: DatasetSnapshot,
    services: PipelineServices,
    train_config: TrainConfig,
    run_folder: Path,
    local: bool,
) -> TrainingData:
    """The run's data. With a retriever, the validation split carries the context replies get (the
    evaluation answers it), and local training with ``context_training`` trains on it too.
    Written once per run (its retries reuse it), so a resumed attempt trains on the same data."""
    train, val = Path(snapshot.train_path), Path(snapshot.val_path)
    if services.retrieve_context is None:
        return TrainingData(train, val, val)
    retrieve = services.retrieve_context

    def context_for(query: str, exclude: Sequence[tuple[str, int]]) -> str:
        return retrieve(engine, query, exclude)

    def ids_for(conversations: list[list[dict[str, Any]]]) -> list[int | None]:
        with session_scope(engine) as session:
            return example_ids_for(session, conversations)

    folder = run_folder / CONTEXT_DIR
    context_val = folder / "val.jsonl"
    if not context_val.exists():
        write_context_split(val, context_val, ids_for, context_for)
    if not (local and train_config.context_training):
        return TrainingData(train, val, context_val)
    context_train = folder / "train.jsonl"
    use_file = folder / "use.json"
    if use_file.exists():
        use = ContextTraining.model_validate_json(use_file.read_text(encoding="utf-8"))
    else:
        use = write_context_split(
            train, context_train, ids_for, context_for,
            train_config.irrelevant_context_share, train_config.seed,
            train_config.grounded_context_only,
        )  # fmt: skip
        use_file.write_text(use.model_dump_json(), encoding="utf-8")
    return TrainingData(context_train, context_val, context_val, use)


def _train_locally(
    run_id: int,
    snapshot: DatasetSnapshot,
    data: TrainingData,
    output_dir: Path,
    train_config: TrainConfig,
    progress: Progress,
    resume_from: Path | None,
) -> dict[str, Any]:
    """LoRA training here (resuming from a checkpoint an earlier attempt left); returns the
    training summary."""
    callback = _ProgressCallback(progress, 0.3, 0.8)
    result = train_lora(
        data.train,
        data.val if snapshot.stats["val"] else None,
        output_dir,
        train_config,
        callback,
        snapshot_hash=snapshot.content_hash,
        resume_from=resume_from,
        preferences=snapshot_preferences(snapshot),
    )
    if callback.cancelled or result.status == "cancelled":
        raise RunCancelled(f"run {run_id} was cancelled during training (resumable)")
    return {
        "status": result.status,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_eval_loss": result.best_eval_loss,
        "first_train_loss": result.first_train_loss,
        "final_train_loss": result.final_train_loss,
        "trained_tokens": result.trained_tokens,
        "seconds": round(result.seconds, 1),
        "evals": result.evals,
        "preference": result.manifest.get("preference"),
        "context": data.context.model_dump() if data.context else None,
    }


def snapshot_preferences(
    snapshot: DatasetSnapshot,
) -> tuple[list[PreferenceRecord], list[PreferenceRecord]] | None:
    """The snapshot's training and validation pairs, or None for a snapshot taken before pairs
    were snapshotted."""
    train, val = preference_paths(snapshot)
    if not train.exists():
        return None
    return read_preference_jsonl(train), read_preference_jsonl(val) if val.exists() else []


def reply_cache(artifacts_dir: Path, model: ModelVersion | str) -> ReplyCache:
    """The file of one model's greedy replies, named by what serves it: a version's fields (the
    same for the candidate and the version it is registered as) or the base model's name."""
    identity = (
        [model]
        if isinstance(model, str)
        else [model.backend, model.base_model, model.adapter_path, model.hosted_model_id]
    )
    digest = hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()[:24]
    return ReplyCache(artifacts_dir / "replies" / f"{digest}.jsonl")


def evaluate_candidate(
    engine: Engine,
    config: PipelineConfig,
    services: PipelineServices,
    candidate_version: ModelVersion,
    val_path: Path,
    progress: Progress,
    max_length: int,
) -> EvalReport:
    """Evaluate the candidate (local or hosted) against production and the few-shot base model.

    The base comes from ``services.load_backend(None)``; validation loss and forgetting are only
    measured where the models can score tokens (local ones). Recent served requests join the
    claims check, with the context the reply path would retrieve for them now. Every model's
    greedy replies are kept (``reply_cache``), so production and the base answer only prompts
    they have not answered in an earlier round.
    """
    with session_scope(engine) as session:
        current = promoted_version(session)
        knowledge = claim_sources(session)
        served = served_requests(session, config.eval.served_requests, config.snapshot.redactor)
    if services.retrieve_context is not None:
        retrieve = services.retrieve_context
        served = [with_context(p, retrieve(engine, last_request(p) or "", ())) for p in served]
    base_backend = services.load_backend(None)
    base_replies = reply_cache(config.artifacts_dir, base_backend.model_name)
    base = Contender("base model", base_backend, replies=base_replies)
    production = (
        Contender(
            current.name,
            services.load_backend(current),
            replies=reply_cache(config.artifacts_dir, current),
        )
        if current is not None
        else base
    )
    candidate = Contender(
        "candidate",
        services.load_backend(candidate_version),
        replies=reply_cache(config.artifacts_dir, candidate_version),
    )
    shots = few_shot_examples(engine, config.few_shot)
    baseline = Contender(
        f"base + {len(shots)} examples", base_backend, shots=shots, replies=base_replies
    )
    steps = iter((0.82, 0.86, 0.9, 0.93, 0.95, 0.96))

    def step(stage: str) -> None:
        progress.progress(next(steps, 0.96), f"evaluate: {stage}")

    report = evaluate(
        val_path,
        candidate,
        production,
        baseline,
        services.similarity,
        general_texts=list(config.general_texts),
        base=base,
        judge=services.judge,
        config=config.eval,
        max_length=max_length,
        progress=step,
        knowledge=knowledge,
        served=served,
    )
    kept = {c.label: c.replies.reused for c in (production, base) if c.replies is not None}
    log.info("replies kept from earlier evaluations and reused: %s", kept)
    return report


def _snapshot_summary(snapshot: DatasetSnapshot) -> dict[str, Any]:
    return {"id": snapshot.id, "hash": snapshot.content_hash, **snapshot.stats}
