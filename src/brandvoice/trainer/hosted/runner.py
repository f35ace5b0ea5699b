"""Submit-or-resume a hosted fine-tuning job and follow it to its end, reporting through the run.

The job id is written to the run the moment the provider accepts the job, so a worker that dies
mid-poll leaves a run that the next worker resumes: it polls the same job and never submits a
second one. Polls back off while nothing changes; transient errors (rate limits, outages) are
retried by the project's one policy (:mod:`brandvoice.inference.retry`: backoff, never sooner than
``Retry-After``, up to a total deadline per call); refusals fail the run with the provider's
message and a hint. A cancel request cancels the provider's job too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine

from brandvoice.inference.retry import RetriesExhausted, RetryPolicy, call_with_retries
from brandvoice.store.db import session_scope
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.models import DatasetSnapshot, TrainingRun
from brandvoice.store.preference_jsonl import (
    PreferenceRecord,
    openai_record,
    read_preference_jsonl,
    write_records,
)
from brandvoice.store.runs import RunCancelled, RunClaim, hold_claim
from brandvoice.store.snapshots import PREFERENCE_TRAIN_FILE, PREFERENCE_VAL_FILE, preference_paths
from brandvoice.trainer.hosted.base import (
    HostedConfig,
    HostedJob,
    HostedProvider,
    HostedTrainingError,
    JobRequest,
    JobUpdate,
    LossPoint,
    Preflight,
    billed_eval_passes,
    preflight,
    refusal_hint,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
EVENTS_KEPT = 20


class Progress(Protocol):
    def progress(
        self, fraction: float, stage: str | None = None, metrics: dict[str, Any] | None = None
    ) -> None: ...


def make_provider(backend: str, config: HostedConfig) -> HostedProvider:
    """The provider for ``backend`` (``openai`` or ``together``), checked for a key up front."""
    if backend == "openai":
        if not config.openai_api_key:
            raise ValueError("hosted training on OpenAI needs an API key; set OPENAI_API_KEY")
        from brandvoice.trainer.hosted.openai_ft import OpenAIFineTuning

        return OpenAIFineTuning(
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            base_model=config.openai_model,
            timeout=config.request_timeout_s,
        )
    if backend == "together":
        if not config.together_api_key:
            raise ValueError(
                "hosted training on Together AI needs an API key; set TOGETHER_API_KEY"
            )
        from brandvoice.trainer.hosted.together_ft import TogetherFineTuning

        return TogetherFineTuning(
            api_key=config.together_api_key,
            base_url=config.together_base_url,
            base_model=config.together_model,
            timeout=config.request_timeout_s,
        )
    raise ValueError(f"unknown training backend {backend!r}; choose local, openai or together")


def snapshot_preflight(
    snapshot: DatasetSnapshot,
    provider: HostedProvider,
    config: HostedConfig,
    count_tokens: TokenCounter | None = None,
) -> Preflight:
    """The pre-flight of ``snapshot``'s files for ``provider`` (nothing is uploaded)."""
    from brandvoice.trainer.sft_data import read_chat_jsonl

    if count_tokens is None:
        from brandvoice.inference.tokens import count_chat_tokens_batch as count_tokens
    val = read_chat_jsonl(snapshot.val_path) if _has_validation(snapshot) else []
    return preflight(
        read_chat_jsonl(snapshot.train_path),
        val,
        provider=provider.label,
        base_model=provider.base_model,
        token_limit=provider.token_limit(),
        epochs=config.epochs,
        eval_passes=billed_eval_passes(provider.name, config.epochs, bool(val)),
        price_per_million_tokens=config.price_per_million_tokens,
        count_tokens=count_tokens,
    )


def _has_validation(snapshot: DatasetSnapshot) -> bool:
    """Whether the job gets a validation file (the snapshot holds validation examples)."""
    return bool(snapshot.stats.get("val")) and Path(snapshot.val_path).is_file()


@dataclass
class HostedOutcome:
    job: HostedJob
    model_id: str
    adapter_path: Path | None
    training: dict[str, Any]
    """The training summary for the report (same keys as a local run where they apply)."""
    hyperparameters: dict[str, Any]


def merge_losses(known: LossPoint | None, new: LossPoint) -> LossPoint:
    """One point per step: a provider may report a step's training and evaluation loss apart
    (Together sends them as two rows), so a value already known is kept where the new row has none."""
    if known is None:
        return new
    return LossPoint(
        new.step,
        new.train_loss if new.train_loss is not None else known.train_loss,
        new.eval_loss if new.eval_loss is not None else known.eval_loss,
    )


@dataclass
class _JobState:
    """What we know about the job; its ``metrics()`` are what the run row shows."""

    provider: str
    base_model: str
    start: float
    end: float
    job_id: str | None = None
    status: str = "preparing"
    provider_status: str | None = None
    estimate: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    losses: dict[int, LossPoint] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    step: int = 0
    total_steps: int | None = None
    cursor: str | None = None
    model_id: str | None = None
    trained_tokens: int | None = None
    metrics_key: str = "hosted"
    """Where the run's metrics show this job: ``hosted`` (supervised) or ``hosted_preference``."""

    def apply(self, job: HostedJob, update: JobUpdate) -> bool:
        """Take in one poll; True when anything changed."""
        changed = job.provider_status != self.provider_status or bool(update.events)
        self.status, self.provider_status = job.status, job.provider_status
        self.model_id, self.trained_tokens = job.model_id, job.trained_tokens
        self.cursor = update.cursor
        for event in update.events:
            self.events = [*self.events, event.message][-EVENTS_KEPT:]
            self.step = max(self.step, event.step or 0)
            self.total_steps = event.total_steps or self.total_steps
        for point in update.losses:
            merged = merge_losses(self.losses.get(point.step), point)
            changed = changed or merged != self.losses.get(point.step)
            self.losses[point.step] = merged
            self.step = max(self.step, point.step)
        return changed

    def fraction(self) -> float:
        span = self.end - self.start
        if self.status == "succeeded":
            return self.end
        if self.total_steps:
            return self.start + span * (0.1 + 0.9 * min(self.step / self.total_steps, 1.0))
        return self.start + span * (0.1 if self.status == "running" else 0.05)

    def curve(self) -> list[dict[str, Any]]:
        return [
            {"step": p.step, "train_loss": p.train_loss, "eval_loss": p.eval_loss}
            for p in sorted(self.losses.values(), key=lambda p: p.step)
        ]

    def summary(self, job: HostedJob, seconds: float) -> dict[str, Any]:
        """The training section of the report (the keys a local run has, where they apply)."""
        curve = self.curve()
        train_losses = [p["train_loss"] for p in curve if p["train_loss"] is not None]
        return {
            "status": job.status,
            "backend": self.provider,
            "base_model": self.base_model,
            "job_id": job.id,
            "model_id": job.model_id,
            "steps": self.step,
            "total_steps": self.total_steps,
            "first_train_loss": train_losses[0] if train_losses else None,
            "final_train_loss": train_losses[-1] if train_losses else None,
            "trained_tokens": job.trained_tokens,
            "seconds": seconds,
            "evals": curve,
            "estimate": self.estimate,
        }

    def metrics(self) -> dict[str, Any]:
        curve = self.curve()
        last_train = next(
            (p["train_loss"] for p in reversed(curve) if p["train_loss"] is not None), None
        )
        last_eval = next(
            (p["eval_loss"] for p in reversed(curve) if p["eval_loss"] is not None), None
        )
        hosted = {
            "provider": self.provider,
            "base_model": self.base_model,
            "job_id": self.job_id,
            "status": self.status,
            "provider_status": self.provider_status,
            "estimate": self.estimate,
            "request": self.request,
            "steps": self.step,
            "total_steps": self.total_steps,
            "losses": curve,
            "events": self.events,
            "model_id": self.model_id,
            "trained_tokens": self.trained_tokens,
        }
        if self.metrics_key != "hosted":
            return {self.metrics_key: hosted}
        train = {"step": self.step}
        if last_train is not None:
            train["loss"] = last_train
        if last_eval is not None:
            train["eval_loss"] = last_eval
        return {"hosted": hosted, "train": train}


Retry = Callable[[Callable[[], T]], T]


def provider_retry(
    config: HostedConfig,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Retry[Any]:
    """Each provider call under the one retry policy: transient errors are retried (backoff from
    ``retry_initial_s`` to ``retry_max_s``, never sooner than ``Retry-After``) until
    ``give_up_after_s`` has passed; then the run fails with the last error and can be resumed."""
    policy = RetryPolicy(
        attempts=None,
        initial_wait_s=config.retry_initial_s,
        max_wait_s=config.retry_max_s,
        deadline_s=config.give_up_after_s,
        jitter=0.0,
    )

    def retry(call: Callable[[], T]) -> T:
        try:
            return call_with_retries(
                call,
                policy,
                transient=lambda exc: isinstance(exc, HostedTrainingError) and exc.transient,
                retry_after=lambda exc: getattr(exc, "retry_after", None),
                sleep=sleep,
                clock=clock,
            )
        except RetriesExhausted as exhausted:
            last = exhausted.last
            assert isinstance(last, HostedTrainingError)
            raise HostedTrainingError(
                f"{last}; still failing after {exhausted.elapsed_s:.0f} s "
                f"({exhausted.attempts} attempts) — try again later (the run can be resumed)",
                provider_message=last.provider_message,
                status_code=last.status_code,
                code=last.code,
            ) from last

    return retry


def run_hosted_training(
    engine: Engine,
    run_id: int,
    snapshot: DatasetSnapshot,
    provider: HostedProvider,
    config: HostedConfig,
    progress: Progress,
    output_dir: Path,
    *,
    start: float = 0.3,
    end: float = 0.8,
    count_tokens: TokenCounter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    claim: RunClaim | None = None,
) -> HostedOutcome:
    """Train run ``run_id`` on ``provider``: resume its recorded job, or pre-flight, upload and
    submit a new one; then follow it to the end. With enough preference pairs in the snapshot,
    a preference (DPO) job follows on the supervised model (see :func:`preference_decision`).
    Raises ``RunCancelled`` or :class:`HostedTrainingError` (the provider's message and a hint)
    when the supervised job does not succeed."""
    began = clock()
    retry = provider_retry(config, sleep, clock)
    decision = preference_decision(snapshot, provider, config)
    sft_end = start + (end - start) * SFT_SHARE if decision.used else end
    state = _JobState(provider.name, provider.base_model, start, sft_end)
    job_id, previous = _recorded_job(engine, run_id)
    if job_id is None:
        job_id = _submit(
            engine, run_id, snapshot, provider, config, progress, state, retry, count_tokens, claim
        )
    else:
        state.job_id, state.estimate, state.request = (
            job_id,
            previous.get("estimate"),
            previous.get("request"),
        )
        log.info("run %s resumes %s job %s", run_id, provider.label, job_id)
        progress.progress(start, f"resume {provider.label} job {job_id}", state.metrics())
    job = _follow(run_id, provider, config, progress, state, retry, sleep)
    if job.status == "cancelled":
        raise RunCancelled(f"{provider.label} job {job.id} was cancelled at the provider")
    if job.status == "failed":
        reason = job.error or "no reason given"
        raise HostedTrainingError(
            f"{provider.label} fine-tuning job {job.id} failed: {reason} — "
            f"{refusal_hint(None, None, reason, '')}",
            provider_message=job.error,
        )
    if not job.model_id:
        raise HostedTrainingError(
            f"{provider.label} job {job.id} succeeded but named no fine-tuned model; check it in "
            "the provider's dashboard"
        )
    training = state.summary(job, seconds=round(clock() - began, 1))
    hyperparameters = _hyperparameters(provider, state)
    final, preference = job, decision.as_dict()
    if decision.used:
        stage = _PreferenceStage(engine, run_id, snapshot, provider, config, progress, retry, claim)
        tuned, preference, pref_state = stage.run(
            job, decision, output_dir, sft_end, end, sleep, count_tokens
        )
        if tuned is not None:
            final = tuned
            training.update(
                model_id=tuned.model_id,
                preference_job=pref_state.summary(tuned, round(clock() - began, 1)),
            )
            hyperparameters["preference"] = _hyperparameters(provider, pref_state)
    training["preference"] = preference
    progress.progress(sft_end if final is job else end, "preference", {"preference": preference})
    state.end = end
    assert final.model_id is not None
    adapter = _fetch_adapter(provider, final, output_dir, progress, state, retry, training)
    return HostedOutcome(final, final.model_id, adapter, training, hyperparameters)


SFT_SHARE = 0.6
"""Share of the training progress the supervised job takes when a preference job follows."""


@dataclass(frozen=True)
class PreferenceDecision:
    """Whether the preference stage runs, on how many training pairs, and why not."""

    pairs: int
    used: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """What the run's metrics and the report show: ``{"pairs": n, "used": bool}`` and, when
        the pairs were not used, the reason."""
        shown: dict[str, Any] = {"pairs": self.pairs, "used": self.used}
        if self.reason:
            shown["reason"] = self.reason
        return shown


def preference_decision(
    snapshot: DatasetSnapshot, provider: HostedProvider, config: HostedConfig
) -> PreferenceDecision:
    """A preference job follows the supervised one when the provider takes DPO jobs and the
    snapshot has at least ``preference_min_pairs`` (and at least one) training pairs."""
    pairs = int((snapshot.stats.get("preference") or {}).get("train") or 0)
    if not provider.supports_preference:
        reason = f"{provider.label} does not take preference (DPO) fine-tuning jobs"
        return PreferenceDecision(pairs, False, reason)
    if pairs == 0 or pairs < config.preference_min_pairs:
        reason = (
            f"the snapshot has {pairs} preference training pair(s); PREFERENCE_MIN_PAIRS is "
            f"{config.preference_min_pairs}"
        )
        return PreferenceDecision(pairs, False, reason)
    return PreferenceDecision(pairs, True)


@dataclass
class _PreferenceStage:
    """The preference (DPO) job after a supervised one: upload the pairs in the providers'
    preference format, submit on the supervised model, follow it. A refusal or a failed job
    leaves the supervised model as the outcome and says why; a run resumed here follows the
    job it recorded instead of submitting another."""

    engine: Engine
    run_id: int
    snapshot: DatasetSnapshot
    provider: HostedProvider
    config: HostedConfig
    progress: Progress
    retry: Retry[Any]
    claim: RunClaim | None

    def run(
        self,
        sft_job: HostedJob,
        decision: PreferenceDecision,
        output_dir: Path,
        start: float,
        end: float,
        sleep: Callable[[float], None],
        count_tokens: TokenCounter | None,
    ) -> tuple[HostedJob | None, dict[str, Any], _JobState]:
        """(the preference job, or None when the pairs were not used; the preference summary;
        the job's state)."""
        provider, label = self.provider, self.provider.label
        state = _JobState(provider.name, sft_job.model_id or "", start, end)
        state.metrics_key = "hosted_preference"
        recorded = _recorded_preference_job(self.engine, self.run_id)
        if recorded.get("sft_job_id") == sft_job.id and recorded.get("job_id"):
            state.job_id, state.request = recorded["job_id"], recorded.get("request")
            log.info("run %s resumes %s preference job %s", self.run_id, label, state.job_id)
        else:
            try:
                request, used = self._request(sft_job, output_dir, count_tokens)
            except HostedTrainingError as exc:
                if _transient(exc):
                    raise
                return None, self._unused(decision.pairs, str(exc)), state
            if request is None:
                reason = (
                    f"{decision.pairs - used} of {decision.pairs} preference pair(s) exceed the "
                    f"{provider.token_limit():,}-token limit; {used} left, PREFERENCE_MIN_PAIRS "
                    f"is {self.config.preference_min_pairs}"
                )
                return None, self._unused(decision.pairs, reason), state
            state.request = provider.request_body(request)
            self.progress.progress(start, f"submit preference job to {label}", state.metrics())
            try:
                job = self.retry(lambda: provider.submit(request))
            except HostedTrainingError as exc:
                if _transient(exc):
                    raise
                reason = f"{label} refused the preference job: {exc.provider_message or exc}"
                return None, self._unused(decision.pairs, reason), state
            state.job_id = job.id
            _record_preference_job(
                self.engine,
                self.run_id,
                {"job_id": job.id, "sft_job_id": sft_job.id, "request": state.request},
                self.claim,
            )
            log.info("run %s submitted %s preference job %s", self.run_id, label, job.id)
        job = _follow(self.run_id, provider, self.config, self.progress, state, self.retry, sleep)
        if job.status == "cancelled":
            raise RunCancelled(f"{label} preference job {job.id} was cancelled at the provider")
        if job.status != "succeeded" or not job.model_id:
            reason = f"{label} preference job {job.id} failed: {job.error or 'no reason given'}"
            log.warning("run %s: %s; the supervised model stands", self.run_id, reason)
            return None, self._unused(decision.pairs, reason), state
        return job, {"pairs": decision.pairs, "used": True}, state

    def _unused(self, pairs: int, reason: str) -> dict[str, Any]:
        return PreferenceDecision(pairs, False, reason).as_dict()

    def _request(
        self, sft_job: HostedJob, output_dir: Path, count_tokens: TokenCounter | None
    ) -> tuple[JobRequest | None, int]:
        """Upload the pairs that fit the token limit; returns the job request (None when too few
        fit) and how many fit."""
        train_pairs, val_pairs = preference_paths(self.snapshot)
        limit = self.provider.token_limit()
        folder = output_dir / "preference"
        train = _pairs_within(read_preference_jsonl(train_pairs), limit, count_tokens)
        val = (
            _pairs_within(read_preference_jsonl(val_pairs), limit, count_tokens)
            if val_pairs.is_file()
            else []
        )
        if len(train) < max(1, self.config.preference_min_pairs):
            return None, len(train)
        train_file = folder / PREFERENCE_TRAIN_FILE
        write_records(train_file, (openai_record(p.prompt, p.chosen, p.rejected) for p in train))
        training_file = self.retry(lambda: self.provider.upload(train_file))
        validation_file = None
        if val:
            val_file = folder / PREFERENCE_VAL_FILE
            write_records(val_file, (openai_record(p.prompt, p.chosen, p.rejected) for p in val))
            validation_file = self.retry(lambda: self.provider.upload(val_file))
        request = JobRequest(
            training_file=training_file,
            validation_file=validation_file,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            learning_rate_multiplier=self.config.learning_rate_multiplier,
            seed=self.config.seed,
            suffix=f"{self.config.suffix}-r{self.run_id}-dpo",
            metadata={
                "brandvoice_run": str(self.run_id),
                "snapshot": self.snapshot.content_hash[:16],
                "stage": "preference",
            },
            method="dpo",
            parent_job_id=sft_job.id,
            parent_model=sft_job.model_id,
            beta=self.config.preference_beta,
        )
        return request, len(train)


def _pairs_within(
    pairs: list[PreferenceRecord], limit: int, count_tokens: TokenCounter | None
) -> list[PreferenceRecord]:
    """The pairs whose prompt with either reply fits ``limit`` tokens."""
    if count_tokens is None:
        from brandvoice.inference.tokens import count_chat_tokens_batch as count_tokens
    if not pairs:
        return []
    conversations = [
        [*p.prompt, {"role": "assistant", "content": reply}]
        for p in pairs
        for reply in (p.chosen, p.rejected)
    ]
    tokens = count_tokens(conversations)
    return [p for i, p in enumerate(pairs) if max(tokens[2 * i], tokens[2 * i + 1]) <= limit]


def _transient(exc: HostedTrainingError) -> bool:
    """A transient error, or retries of one that ran out: the run fails and can be resumed."""
    cause = exc.__cause__
    return exc.transient or (isinstance(cause, HostedTrainingError) and cause.transient)


def _submit(
    engine: Engine,
    run_id: int,
    snapshot: DatasetSnapshot,
    provider: HostedProvider,
    config: HostedConfig,
    progress: Progress,
    state: _JobState,
    retry: Retry[Any],
    count_tokens: TokenCounter | None,
    claim: RunClaim | None = None,
) -> str:
    estimate = snapshot_preflight(snapshot, provider, config, count_tokens)
    state.estimate = estimate.as_dict()
    log.warning("run %s: %s", run_id, estimate.summary())
    progress.progress(state.start, "preflight", state.metrics())
    progress.progress(state.start + 0.005, f"upload to {provider.label}")
    training_file = retry(lambda: provider.upload(Path(snapshot.train_path)))
    validation_file = None
    if _has_validation(snapshot):
        validation_file = retry(lambda: provider.upload(Path(snapshot.val_path)))
    request = JobRequest(
        training_file=training_file,
        validation_file=validation_file,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate_multiplier=config.learning_rate_multiplier,
        seed=config.seed,
        suffix=f"{config.suffix}-r{run_id}",
        metadata={"brandvoice_run": str(run_id), "snapshot": snapshot.content_hash[:16]},
    )
    state.request = provider.request_body(request)
    provider_price = retry(lambda: provider.price_estimate(request))
    if provider_price is not None:
        estimate = estimate.priced(provider_price)
        state.estimate = estimate.as_dict()
        log.warning("run %s: %s", run_id, estimate.summary())
    progress.progress(state.start + 0.01, f"submit to {provider.label}", state.metrics())
    job = retry(lambda: provider.submit(request))
    _record_job_id(engine, run_id, job.id, claim)
    state.job_id = job.id
    log.info("run %s submitted %s job %s", run_id, provider.label, job.id)
    return job.id


def _follow(
    run_id: int,
    provider: HostedProvider,
    config: HostedConfig,
    progress: Progress,
    state: _JobState,
    retry: Retry[Any],
    sleep: Callable[[float], None],
) -> HostedJob:
    """Poll until the job finishes. Between polls the run still reports every
    ``poll_interval_s``, so a cancel request is seen quickly even while polls back off."""
    assert state.job_id is not None
    job_id, interval = state.job_id, config.poll_interval_s

    def report() -> None:
        try:
            progress.progress(state.fraction(), f"train: {state.provider_status}", state.metrics())
        except RunCancelled:
            _cancel(run_id, provider, progress, state, retry)
            raise

    while True:
        job = retry(lambda: provider.retrieve(job_id))
        changed = state.apply(job, retry(lambda: provider.updates(job_id, state.cursor)))
        report()
        if job.finished:
            return job
        interval = (
            config.poll_interval_s if changed else min(interval * 1.5, config.max_poll_interval_s)
        )
        waited = 0.0
        while waited < interval:
            pause = min(config.poll_interval_s, interval - waited)
            sleep(pause)
            waited += pause
            if waited < interval:
                report()


def _cancel(
    run_id: int, provider: HostedProvider, progress: Progress, state: _JobState, retry: Retry[Any]
) -> None:
    assert state.job_id is not None
    try:
        cancelled = retry(lambda: provider.cancel(state.job_id or ""))
    except HostedTrainingError as exc:  # e.g. the job finished in the meantime
        log.warning(
            "run %s: cancelling %s job %s failed: %s", run_id, provider.label, state.job_id, exc
        )
        return
    state.status, state.provider_status = cancelled.status, cancelled.provider_status
    with contextlib.suppress(RunCancelled):  # the metrics are written before the flag is read
        progress.progress(state.fraction(), f"cancelled {provider.label} job", state.metrics())


def _fetch_adapter(
    provider: HostedProvider,
    job: HostedJob,
    output_dir: Path,
    progress: Progress,
    state: _JobState,
    retry: Retry[Any],
    training: dict[str, Any],
) -> Path | None:
    """The downloaded adapter, or None when the provider has none to give. A failed download
    fails the run: the version must not be registered without the adapter it is meant to have,
    and resuming the run polls the same finished job and downloads again."""
    progress.progress(state.end - 0.005, f"download from {provider.label}")
    try:
        adapter = retry(lambda: provider.fetch_artifacts(job, output_dir))
    except HostedTrainingError as exc:
        raise HostedTrainingError(
            f"{provider.label} job {job.id} finished, but its adapter could not be downloaded: "
            f"{exc} — resume the run (brandvoice train --resume RUN_ID) to download it again",
            provider_message=exc.provider_message,
            status_code=exc.status_code,
        ) from exc
    if adapter is not None:
        training["adapter_path"] = str(adapter)
    return adapter


def _hyperparameters(provider: HostedProvider, state: _JobState) -> dict[str, Any]:
    """What the job was asked to do, without the provider's file ids."""
    request = {k: v for k, v in (state.request or {}).items() if not k.endswith("_file")}
    return {"provider": provider.name, **request}


def _recorded_job(engine: Engine, run_id: int) -> tuple[str | None, dict[str, Any]]:
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise LookupError(f"run {run_id} does not exist")
        return run.external_job_id, dict(run.metrics.get("hosted") or {})


def _recorded_preference_job(engine: Engine, run_id: int) -> dict[str, Any]:
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise LookupError(f"run {run_id} does not exist")
        return dict(run.metrics.get("preference_job") or {})


def _record_preference_job(
    engine: Engine, run_id: int, job: dict[str, Any], claim: RunClaim | None
) -> None:
    """Store the preference job on the run the moment the provider accepts it, so a resumed run
    follows it instead of submitting (and paying for) another."""
    with session_scope(engine) as session:
        run = hold_claim(session, claim) if claim else session.get(TrainingRun, run_id)
        assert run is not None
        run.metrics = {**run.metrics, "preference_job": job}
        session.add(run)


def _record_job_id(engine: Engine, run_id: int, job_id: str, claim: RunClaim | None) -> None:
    """Store the provider's job id on the run (fenced by ``claim`` when a worker executes it)."""
    with session_scope(engine) as session:
        run = hold_claim(session, claim) if claim else session.get(TrainingRun, run_id)
        assert run is not None
        run.external_job_id = job_id
        session.add(run)
