"""Preference pair commands: derive them from corrections and 👎 votes, list and export them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brandvoice.bot.cli.context import CliError, console, engine, friendly_errors, settings
from brandvoice.store.db import session_scope
from brandvoice.store.models import PreferenceSource, Split
from brandvoice.store.preference_jsonl import EXPORT_FORMATS, write_records
from brandvoice.store.preferences import derive_preference_pairs, export_pairs, list_pairs

pairs_app = typer.Typer(
    help="Preference pairs (a reply people preferred over the bot's): derive, list, export.",
    no_args_is_help=True,
)


@pairs_app.command("derive")
@friendly_errors
def derive_command() -> None:
    """Store the pairs that corrections and 👎 replies answered well elsewhere imply (snapshots
    do this too); running it again adds nothing."""
    config = settings()
    with session_scope(engine()) as session:
        result = derive_preference_pairs(session, config.redactor, config.val_share)
    sources = ", ".join(f"{n} from {source}s" for source, n in sorted(result.by_source.items()))
    console.print(
        f"added {len(result.inserted_ids)} pair(s){f' ({sources})' if sources else ''}; "
        f"{result.duplicates} already stored, {result.identical} left out (same reply twice), "
        f"{sum(result.redactions.values())} redaction(s)"
    )


@pairs_app.command("list")
@friendly_errors
def list_command(
    source: Annotated[str | None, typer.Option(help="correction or downvote.")] = None,
    split: Annotated[str | None, typer.Option(help="train or val.")] = None,
    limit: int = 20,
) -> None:
    """Show stored pairs, oldest first: the request, the chosen and the rejected reply."""
    with session_scope(engine()) as session:
        rows = list_pairs(
            session,
            source=PreferenceSource(source) if source else None,
            split=Split(split) if split else None,
            limit=limit,
        )
    table = Table()
    for column in ("id", "source", "split", "example", "voters", "user", "chosen", "rejected"):
        table.add_column(column)
    for row in rows:
        user = next(
            (m["content"] for m in reversed(row.prompt_messages) if m["role"] == "user"), ""
        )
        table.add_row(
            str(row.id),
            row.source,
            row.split,
            str(row.example_id),
            ", ".join(row.provenance.get("voters") or []),
            user[:40],
            row.chosen[:40],
            row.rejected[:40],
        )
    console.print(table)


@pairs_app.command("export")
@friendly_errors
def export_command(
    file: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    format: Annotated[
        str, typer.Option("--format", help="trl (prompt/chosen/rejected) or openai (preference).")
    ] = "trl",
    split: Annotated[str, typer.Option(help="train, val or all.")] = "all",
) -> None:
    """Export the pairs a snapshot would hold now (their chosen example approved), in TRL's DPO
    format or OpenAI's preference fine-tuning format."""
    if format not in EXPORT_FORMATS:
        raise CliError(f"--format must be {' or '.join(EXPORT_FORMATS)}, not {format!r}")
    if split not in ("train", "val", "all"):
        raise CliError(f"--split must be train, val or all, not {split!r}")
    record = EXPORT_FORMATS[format]
    with session_scope(engine()) as session:
        pairs = export_pairs(session, None if split == "all" else Split(split))
        records = [record(p.prompt_messages, p.chosen, p.rejected) for p in pairs]
    written = write_records(file, records)
    console.print(f"exported {written} pair(s) to {file} ({format} format)")
