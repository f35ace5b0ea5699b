"""Builds the running product from settings: the retrain pipeline and the worker.

This is the one place where configuration becomes objects; the CLI, the web app and the worker
all call it, so they behave the same.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from brandvoice.bot.backends import Backends
from brandvoice.bot.generation import pipeline_generate_step
from brandvoice.bot.knowledge import KnowledgeService
from brandvoice.bot.settings import Settings
from brandvoice.bot.signal_watch import AlertPublisher, SignalWatch, log_signal_alert
from brandvoice.bot.worker import RunReporter, Worker
from brandvoice.samples import general_text_path
from brandvoice.store.jsonl import DEFAULT_MAX_TOKENS
from brandvoice.store.models import ModelVersion
from brandvoice.store.snapshots import SnapshotOptions
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.eval_report import EvalReport
from brandvoice.trainer.hosted import HostedConfig
from brandvoice.trainer.hosted.base import billed_eval_passes
from brandvoice.trainer.pipeline import (
    PipelineConfig,
    PipelineServices,
    Publisher,
    run_retrain,
)
from brandvoice.trainer.production_signal import SignalAlertConfig

log = logging.getLogger(__name__)


def pipeline_config(settings: Settings, **train_overrides: Any) -> PipelineConfig:
    train = TrainConfig(
        base_model=settings.base_model,
        device=settings.device or "auto",
        preference_min_pairs=settings.preference_min_pairs,
        **train_overrides,
    )
    general = general_text_path().read_text(encoding="utf-8").splitlines()
    return PipelineConfig(
        artifacts_dir=settings.artifacts_dir,
        train=train,
        min_new_examples=settings.min_new_examples,
        auto_promote=settings.auto_promote,
        snapshot=snapshot_options(settings),
        general_texts=tuple(line for line in general if line.strip()),
        hosted=hosted_config(settings),
        signal_window=signal_window(settings),
    )


def signal_window(settings: Settings) -> timedelta:
    return timedelta(hours=settings.signal_window_hours)


def signal_alert_config(settings: Settings) -> SignalAlertConfig:
    return SignalAlertConfig(
        window=signal_window(settings),
        min_votes=settings.signal_min_votes,
        alpha=settings.signal_alpha,
        auto_rollback=settings.auto_rollback,
    )


def signal_watch(settings: Settings, engine: Engine) -> SignalWatch:
    """The worker's 👎-rate check: alerts go to the log, and to ``REPORT_CHANNEL`` with Slack."""
    from brandvoice.bot.slack.app import slack_enabled
    from brandvoice.bot.slack.signal_alerts import slack_signal_publisher

    publishers: list[AlertPublisher] = [log_signal_alert]
    if slack_enabled(settings) and settings.report_channel:
        publishers.append(slack_signal_publisher(settings))
    return SignalWatch(
        engine,
        signal_alert_config(settings),
        publishers,
        timedelta(seconds=settings.signal_check_interval_s),
    )


def snapshot_options(settings: Settings, epochs: int | None = None) -> SnapshotOptions:
    """How snapshots are taken, and their cost estimate: what a hosted job of ``epochs``
    (default ``HOSTED_EPOCHS``) on the configured provider would bill."""
    epochs = epochs or settings.hosted_epochs
    return SnapshotOptions(
        synthetic_per_example=settings.synthetic_per_example,
        epochs=epochs,
        eval_passes=billed_eval_passes(settings.training_backend, epochs, True),
        price_per_million_tokens=settings.price_per_million_tokens,
        max_tokens_per_example=settings.max_example_tokens or DEFAULT_MAX_TOKENS,
        redactor=settings.redactor,
        val_share=settings.val_share,
    )


def hosted_config(settings: Settings) -> HostedConfig:
    """Providers and hyperparameters for hosted training (TRAINING_BACKEND=openai|together)."""
    return HostedConfig(
        openai_api_key=settings.openai_api_key,
        openai_base_url=settings.openai_base_url or HostedConfig.openai_base_url,
        openai_model=settings.hosted_openai_model,
        together_api_key=settings.together_api_key,
        together_base_url=settings.together_base_url,
        together_model=settings.hosted_together_model,
        epochs=settings.hosted_epochs,
        batch_size=settings.hosted_batch_size or None,
        learning_rate_multiplier=settings.hosted_learning_rate_multiplier or None,
        price_per_million_tokens=settings.price_per_million_tokens,
        poll_interval_s=settings.hosted_poll_interval_s,
        max_poll_interval_s=10 * settings.hosted_poll_interval_s,
        preference_min_pairs=settings.preference_min_pairs,
    )


def log_report(version: ModelVersion, report: EvalReport) -> None:
    verdict = report.verdict
    log.warning(
        "%s registered: voice similarity %s, win rate vs production %s, %s",
        version.name,
        report.voice_similarity.candidate,
        report.win_rate.vs_production,
        "recommend promote" if verdict.recommend_promote else verdict.reason,
    )


def pipeline_services(
    settings: Settings,
    publishers: list[Publisher] | None = None,
    backends: Backends | None = None,
    knowledge: KnowledgeService | None = None,
    log_reports: bool = True,
) -> PipelineServices:
    """What the pipeline calls out to. ``log_reports`` logs each finished report at WARNING, the
    one place a worker without Slack shows it; a caller that prints the report itself turns it
    off so it does not appear twice."""
    from brandvoice.bot.slack.app import slack_enabled
    from brandvoice.bot.slack.reports import slack_report_publisher
    from brandvoice.inference.embeddings import cosine_similarity

    backends = backends or Backends(settings)
    announce: list[Publisher] = [log_report] if log_reports else []
    announce += publishers or []
    if slack_enabled(settings) and settings.report_channel:
        announce.append(slack_report_publisher(settings))
    knowledge = knowledge or KnowledgeService(settings)
    return PipelineServices(
        load_backend=backends.load,
        similarity=cosine_similarity,
        generate=pipeline_generate_step(backends, knowledge),
        judge=backends.judge(),
        publishers=announce,
        retrieve_context=knowledge.context_block if settings.knowledge_enabled else None,
    )


def make_worker(
    settings: Settings,
    engine: Engine,
    publishers: list[Publisher] | None = None,
    reporter_factory: Any = RunReporter,
    backends: Backends | None = None,
    log_reports: bool = True,
    **train_overrides: Any,
) -> Worker:
    """The worker; ``backends`` shares a process's loaded models (the CLI passes its own)."""
    config = pipeline_config(settings, **train_overrides)
    services = pipeline_services(settings, publishers, backends, log_reports=log_reports)

    def execute(run_id: int, reporter: RunReporter) -> dict[str, Any]:
        return run_retrain(engine, run_id, config, services, reporter)

    return Worker(
        engine,
        execute,
        backend=settings.training_backend,
        default_cron=settings.retrain_schedule,
        timezone=settings.timezone,
        poll_interval_s=settings.worker_poll_interval_s,
        heartbeat_interval_s=settings.run_heartbeat_interval_s,
        stale_after=timedelta(seconds=settings.run_stale_after_s),
        reporter_factory=reporter_factory,
        watches=[signal_watch(settings, engine)],
    )
