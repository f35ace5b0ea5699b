"""Training and model commands: train, eval, models, runs, chat."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from brandvoice.bot.cli.context import (
    CliError,
    backends,
    console,
    engine,
    friendly_errors,
    settings,
)
from brandvoice.bot.cli.progress import ConsoleRunReporter, progress_bar
from brandvoice.bot.runs import TrainRequest, enqueue_request
from brandvoice.inference.chat import Sampling
from brandvoice.store.audit import record_refusal
from brandvoice.store.db import session_scope
from brandvoice.store.models import RunStatus, TrainingRun, utcnow
from brandvoice.store.runs import (
    ActiveRunError,
    claim_next_run,
    latest_runs,
    request_cancel,
    requeue_run,
    waiting_reasons,
)
from brandvoice.store.signal import version_signals
from brandvoice.trainer.eval_report import report_of
from brandvoice.trainer.production_signal import report_signal
from brandvoice.trainer.registry import (
    RegistryError,
    discard_version,
    get_version,
    list_versions,
    promote_version,
    rollback,
)

models_app = typer.Typer(
    help="The model registry: list, promote, roll back, discard.", no_args_is_help=True
)
runs_app = typer.Typer(help="Training runs: list and cancel.", no_args_is_help=True)


def execute_run(run_id: int, **train_overrides: Any) -> TrainingRun:
    """Run ``run_id`` here and now with a progress bar; returns the finished run."""
    from brandvoice.bot.services import make_worker  # torch and the trainer: only when training

    worker = make_worker(
        settings(),
        engine(),
        reporter_factory=ConsoleRunReporter,
        backends=backends(),
        log_reports=False,  # the caller prints the report
        **train_overrides,
    )
    with progress_bar() as bar:
        ConsoleRunReporter.bar = bar
        if claim_next_run(engine(), worker.name, run_id) is None:
            raise CliError(f"run {run_id} could not be claimed (another run is in progress?)")
        worker.execute_claimed(run_id)
    with session_scope(engine()) as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        return run


def print_run_outcome(run: TrainingRun) -> None:
    if run.status == RunStatus.SUCCEEDED:
        from brandvoice.bot.cli.report import print_report

        with session_scope(engine()) as session:
            version = get_version(session, run.metrics["version"])
        print_report(version)
    elif run.status == RunStatus.SKIPPED:
        console.print(f"run {run.id} skipped: {run.error}")
    else:
        raise CliError(f"run {run.id} {run.status.value}: {run.error}", exit_code=1)


@friendly_errors
def train_command(
    snapshot: Annotated[
        int | None, typer.Option(help="Train on this snapshot instead of a new one.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs (default: the measured default).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps.")
    ] = None,
    resume: Annotated[
        int | None, typer.Option(help="Resume a cancelled or failed run from its checkpoint.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Train even with few new examples.")] = True,
    backend: Annotated[
        Literal["local", "openai", "together"] | None,
        typer.Option(help="Where to train (default: TRAINING_BACKEND)."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Start a hosted job without confirming its cost.")
    ] = False,
) -> None:
    """Train a candidate now, evaluate it against production and register it."""
    overrides = {"epochs": epochs, "max_steps": max_steps}
    chosen = backend or settings().training_backend
    if resume is None and chosen != "local":
        snapshot = _confirm_hosted_cost(chosen, snapshot, yes)
    try:
        with session_scope(engine()) as session:
            if resume is not None:
                run = requeue_run(session, resume, "cli")
            else:
                request = TrainRequest(force=force, backend=chosen, snapshot=snapshot, **overrides)
                run = enqueue_request(session, "cli", request, default_backend=chosen)
            run_id = run.id
    except ActiveRunError as exc:
        with session_scope(engine()) as session:
            record_refusal(session, "cli", "run.enqueue", None, str(exc))
        raise CliError(str(exc)) from exc
    assert run_id is not None
    print_run_outcome(execute_run(run_id))


def _confirm_hosted_cost(backend: str, snapshot_id: int | None, yes: bool) -> int:
    """Pre-flight what a hosted job would upload, show its cost and ask (unless ``yes``).

    Returns the snapshot, so the run uploads exactly what was confirmed.
    """
    from brandvoice.bot.services import pipeline_config
    from brandvoice.store.models import DatasetSnapshot
    from brandvoice.trainer.hosted import HostedTrainingError, make_provider, snapshot_preflight
    from brandvoice.trainer.pipeline import take_snapshot

    config = pipeline_config(settings())
    if snapshot_id is None:
        chosen = take_snapshot(engine(), config, "cli")
    else:
        with session_scope(engine()) as session:
            found = session.get(DatasetSnapshot, snapshot_id)
        if found is None:
            raise CliError(f"snapshot {snapshot_id} does not exist")
        chosen = found
    try:
        estimate = snapshot_preflight(chosen, make_provider(backend, config.hosted), config.hosted)
    except HostedTrainingError as exc:
        raise CliError(str(exc), exit_code=1) from exc
    console.print(f"snapshot {chosen.id}: {estimate.summary()}")
    if not yes and not typer.confirm("Upload it and start the fine-tuning job?"):
        raise CliError("not started; nothing was uploaded", exit_code=1)
    assert chosen.id is not None
    return chosen.id


WindowHours = Annotated[
    float | None,
    typer.Option(
        min=0.001,
        help="Count only replies served in the last this many hours (default: all time).",
    ),
]


@friendly_errors
def eval_command(
    version: str,
    window_hours: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="The production signal over the last this many hours "
            "(default: SIGNAL_WINDOW_HOURS).",
        ),
    ] = None,
) -> None:
    """Show the evaluation report of VERSION, with the production signal as it stands now."""
    from brandvoice.bot.cli.report import print_report

    hours = window_hours or settings().signal_window_hours
    with session_scope(engine()) as session:
        chosen = get_version(session, version)
        signal = report_signal(session, chosen, timedelta(hours=hours), utcnow())
        print_report(chosen, signal)


@models_app.command("list")
@friendly_errors
def list_models(window_hours: WindowHours = None) -> None:
    """Every version, its status, headline metrics and how people rated its replies (95%
    Wilson intervals)."""
    table = Table()
    for column in (
        "version",
        "status",
        "base",
        "voice sim.",
        "win vs prod.",
        "verdict",
        "promoted by",
        "replies",
        "👍/👎",
        "👎 rate",
        "approved",
        "corrected",
    ):
        table.add_column(column)
    since = utcnow() - timedelta(hours=window_hours) if window_hours else None
    with session_scope(engine()) as session:
        signals = version_signals(session, since=since)
        for v in list_versions(session):
            report = report_of(v)
            signal = signals[v.id]
            table.add_row(
                v.name,
                v.status,
                v.base_model,
                str(report.voice_similarity.candidate) if report else "–",
                str(report.win_rate.vs_production) if report else "–",
                ("promote" if report.verdict.recommend_promote else "hold") if report else "–",
                f"{v.promoted_by} {v.promoted_at:%Y-%m-%d %H:%M}" if v.promoted_at else "",
                str(signal.served),
                f"{signal.up_votes}/{signal.down_votes}",
                signal.down_rate.describe(),
                signal.approval_rate.describe(),
                signal.correction_rate.describe(),
            )
        base = signals[None]
        if base.served:
            table.add_row(
                base.version, "", settings().base_model, "–", "–", "–", "", str(base.served),
                f"{base.up_votes}/{base.down_votes}", base.down_rate.describe(),
                base.approval_rate.describe(), base.correction_rate.describe(),
            )  # fmt: skip
    console.print(table)
    window = f"the last {window_hours:g} h" if window_hours else "all time"
    console.print(
        f"replies served {window}; 👎 rate: replies with a 👎 of those with any 👍/👎; "
        "approved, corrected: of replies served; 95% Wilson intervals"
    )


@contextmanager
def audited_refusal(actor: str, action: str, target: str | None) -> Iterator[None]:
    """A refused registry transition is audited, then shown as one line (exit 2)."""
    try:
        yield
    except RegistryError as exc:
        with session_scope(engine()) as session:
            record_refusal(session, actor, action, target, str(exc))
        raise CliError(str(exc)) from exc


@models_app.command("promote")
@friendly_errors
def promote_command(version: str, actor: str = "cli") -> None:
    """Put VERSION in production (the previous one is retired)."""
    with audited_refusal(actor, "model.promote", version), session_scope(engine()) as session:
        _, changed = promote_version(session, version, actor)
    console.print(f"{version} promoted" if changed else f"{version} is already in production")


@models_app.command("rollback")
@friendly_errors
def rollback_command(actor: str = "cli") -> None:
    """Return to the previously promoted version (or the base model)."""
    with audited_refusal(actor, "model.rollback", None), session_scope(engine()) as session:
        restored, demoted = rollback(session, actor)
    console.print(
        f"rolled back {demoted.name}; now serving {restored.name if restored else 'the base model'}"
    )


@models_app.command("discard")
@friendly_errors
def discard_command(version: str, actor: str = "cli") -> None:
    """Mark VERSION as discarded so it can never be promoted."""
    with audited_refusal(actor, "model.discard", version), session_scope(engine()) as session:
        _, changed = discard_version(session, version, actor)
    console.print(f"{version} discarded" if changed else f"{version} was already discarded")


@runs_app.command("list")
@friendly_errors
def list_runs(limit: Annotated[int, typer.Option(min=1, max=1000)] = 10) -> None:
    """The latest runs; a queued run says what it is waiting for."""
    table = Table()
    for column in ("run", "kind", "status", "stage", "progress", "requested by", "note"):
        table.add_column(column)
    stale_after = timedelta(seconds=settings().run_stale_after_s)
    with session_scope(engine()) as session:
        runs = latest_runs(session, limit)
        waiting = waiting_reasons(session, runs, stale_after)
    for run in runs:
        note = waiting.get(run.id or 0) or (run.error or "")[:60]
        if run.status == RunStatus.RUNNING and run.worker:
            note = note or f"on worker {run.worker}, attempt {run.attempts}"
        table.add_row(
            str(run.id), run.kind, run.status, run.stage or "", f"{run.progress:.0%}",
            run.requested_by or "", note,
        )  # fmt: skip
    console.print(table)


@runs_app.command("cancel")
@friendly_errors
def cancel_run(run_id: int, actor: str = "cli") -> None:
    """Cancel a queued run, or ask a running one to stop at its next step."""
    with session_scope(engine()) as session:
        run = request_cancel(session, run_id, actor)
    console.print(
        f"run {run_id}: {'cancelled' if run.status == RunStatus.CANCELLED else 'cancel requested'}"
    )


@friendly_errors
def chat_command(
    prompt: str,
    version: Annotated[
        str | None, typer.Option(help="A version such as v2 (default: promoted).")
    ] = None,
    max_tokens: int = 200,
    temperature: float = 0.0,
) -> None:
    """Ask the promoted model (or VERSION) one question, with the team knowledge that fits it."""
    from rich.markup import escape

    from brandvoice.bot.knowledge import KnowledgeService, sources_line
    from brandvoice.trainer.registry import promoted_version

    with session_scope(engine()) as session:
        chosen = get_version(session, version) if version else promoted_version(session)
    backend = backends().load(chosen)
    messages = [
        {"role": "system", "content": settings().system_prompt},
        {"role": "user", "content": prompt},
    ]
    retrieved = KnowledgeService(settings()).augment_or_plain(engine(), messages)
    sampling = Sampling(temperature=temperature, max_tokens=max_tokens)
    result = backend.complete(retrieved.messages, sampling)
    console.print(f"[dim]{chosen.name if chosen else 'base model'}:[/dim] {result.text}")
    if retrieved.hits:
        console.print(f"[dim]{escape(sources_line(retrieved.hits))}[/dim]", highlight=False)
