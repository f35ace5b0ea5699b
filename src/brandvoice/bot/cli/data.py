"""Dataset commands: import, export, stats, snapshots and curation of examples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brandvoice.bot.cli.context import (
    BAD_INPUT_EXIT,
    CliError,
    console,
    engine,
    err_console,
    friendly_errors,
    settings,
)
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.db import session_scope
from brandvoice.store.examples import example_counts, list_examples, set_example_status
from brandvoice.store.importer import ImportRefused, ImportResult, import_jsonl, iter_export
from brandvoice.store.jsonl import ValidationReport, dump_example
from brandvoice.store.models import ExampleSource, ExampleStatus, Split
from brandvoice.store.snapshots import snapshot_dataset

dataset_app = typer.Typer(help="Dataset statistics and snapshots.", no_args_is_help=True)
examples_app = typer.Typer(help="List and curate examples.", no_args_is_help=True)


def print_report(report: ValidationReport) -> None:
    for problem in report.problems:
        err_console.print(str(problem), highlight=False, markup=False)
    if report.problems:
        counts = ", ".join(f"{k}: {n}" for k, n in sorted(report.problem_counts.items()))
        err_console.print(f"{len(report.problems)} invalid line(s) ({counts})", highlight=False)
    for warning, n in sorted(report.warnings.items()):
        err_console.print(f"warning: {n} example(s) with {warning.replace('_', ' ')}")


def import_file(path: Path, skip_invalid: bool, actor: str = "cli") -> ImportResult:
    config = settings()
    with session_scope(engine()) as session:
        return import_jsonl(
            session,
            path,
            count_chat_tokens_batch,
            actor=actor,
            skip_invalid=skip_invalid,
            max_tokens=config.max_example_tokens,
            redactor=config.redactor,
            val_share=config.val_share,
        )


@friendly_errors
def import_command(
    file: Annotated[Path, typer.Argument(help="JSONL in OpenAI's chat fine-tuning format.")],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid lines, report the rest.")
    ] = False,
) -> None:
    """Validate and import a JSONL file of chat examples (all or nothing)."""
    try:
        result = import_file(file, skip_invalid)
    except ImportRefused as refused:
        print_report(refused.report)
        raise CliError(str(refused)) from None
    print_report(result.report)
    redacted = sum(result.redactions.values())
    allowed = f", {result.allowed} kept by REDACT_ALLOW" if result.allowed else ""
    console.print(
        f"imported {result.inserted} example(s) from {file}, skipped {result.duplicates} "
        f"duplicate(s), {len(result.report.problems)} invalid, {redacted} redaction(s){allowed}"
    )
    if result.report.problems:
        raise typer.Exit(BAD_INPUT_EXIT)


@friendly_errors
def export_command(
    split: Annotated[str, typer.Option(help="train, val or all.")] = "all",
    out: Annotated[
        Path | None, typer.Option(help="File to write; standard output if omitted.")
    ] = None,
) -> None:
    """Export approved examples as JSONL, exactly as they were stored."""
    if split not in ("train", "val", "all"):
        raise CliError(f"--split must be train, val or all, not {split!r}")
    chosen = None if split == "all" else Split(split)
    with session_scope(engine()) as session:
        lines = [dump_example(messages) for messages in iter_export(session, chosen)]
    text = "".join(line + "\n" for line in lines)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        err_console.print(f"exported {len(lines)} example(s) to {out}")


@dataset_app.command("stats")
@friendly_errors
def stats_command() -> None:
    """Counts of examples by status, source and split, and matches kept by REDACT_ALLOW."""
    with session_scope(engine()) as session:
        counts = example_counts(session)
    table = Table(title="Examples")
    table.add_column("group")
    table.add_column("value")
    table.add_column("count", justify="right")
    for group, values in counts.items():
        for value, n in sorted(values.items()):
            table.add_row(group, value, str(n))
    console.print(table)


@dataset_app.command("snapshot")
@friendly_errors
def snapshot_command(
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Hosted epochs, for the token and cost estimate (default HOSTED_EPOCHS)."
        ),
    ] = None,
) -> None:
    """Freeze the approved examples into hashed train/val files."""
    from brandvoice.bot.services import snapshot_options

    config = settings()
    options = snapshot_options(config, epochs)
    with session_scope(engine()) as session:
        snapshot, created = snapshot_dataset(session, config.artifacts_dir, options, actor="cli")
    verb = "created" if created else "unchanged, reusing"
    stats = snapshot.stats
    console.print(
        f"snapshot {snapshot.id} {verb} ({snapshot.content_hash[:12]}): "
        f"{stats['train']} train ({stats['synthetic_train']} synthetic), {stats['val']} val, "
        f"~{stats['estimated_training_tokens']} training tokens for {stats['epochs']} epochs, "
        f"est. cost ${stats['estimated_cost']}\n  {snapshot.train_path}\n  {snapshot.val_path}"
    )


@examples_app.command("list")
@friendly_errors
def list_command(
    status: Annotated[
        str | None, typer.Option(help="pending, approved, rejected, retired.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="approved_reply, correction, import, synthetic.")
    ] = None,
    limit: int = 20,
) -> None:
    """Show examples, newest curation first."""
    with session_scope(engine()) as session:
        rows = list_examples(
            session,
            status=ExampleStatus(status) if status else None,
            source=ExampleSource(source) if source else None,
            limit=limit,
        )
    table = Table()
    for column in ("id", "status", "source", "split", "tokens", "user", "assistant"):
        table.add_column(column)
    for row in rows:
        user = next((m["content"] for m in row.messages if m["role"] == "user"), "")
        reply = next((m["content"] for m in reversed(row.messages) if m["role"] == "assistant"), "")
        table.add_row(
            str(row.id),
            row.status,
            row.source,
            row.split,
            str(row.token_count),
            user[:40],
            reply[:50],
        )
    console.print(table)


def _curate(example_ids: list[int], status: ExampleStatus, actor: str) -> None:
    with session_scope(engine()) as session:
        for example_id in example_ids:
            set_example_status(session, example_id, status, actor)
    console.print(f"{status.value} {len(example_ids)} example(s)")


@examples_app.command("approve")
@friendly_errors
def approve_command(example_ids: list[int], actor: str = "cli") -> None:
    """Approve examples so they reach the next snapshot."""
    _curate(example_ids, ExampleStatus.APPROVED, actor)


@examples_app.command("reject")
@friendly_errors
def reject_command(example_ids: list[int], actor: str = "cli") -> None:
    """Reject examples so they never reach training."""
    _curate(example_ids, ExampleStatus.REJECTED, actor)
