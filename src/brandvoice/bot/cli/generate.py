"""Synthetic expansion and brand guidelines: ``generate``, ``guidelines set|show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brandvoice.bot.cli.context import console, engine, friendly_errors, settings
from brandvoice.bot.commands_generate import (
    generator_backend,
    promoted_responder,
    run_generate,
    set_guidelines_from_file,
    show_guidelines,
)

guidelines_app = typer.Typer(
    help="The brand guidelines that go into every generation prompt.", no_args_is_help=True
)


@friendly_errors
def generate_command(
    per_example: Annotated[
        int, typer.Option(min=1, help="Candidates per example and strategy.")
    ] = 1,
    strategy: Annotated[
        list[str] | None, typer.Option(help="paraphrase, new_requests, reply_variation.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Generate and filter, store nothing.")] = False,
    max_parents: Annotated[
        int | None, typer.Option(min=1, help="Expand at most this many examples.")
    ] = None,
) -> None:
    """Expand approved examples into filtered synthetic variations."""
    from brandvoice.inference.embeddings import embed_texts

    config = settings()
    run_generate(
        engine(),
        generator_backend(config),
        embed_texts,
        per_example,
        strategy,
        dry_run,
        responder=promoted_responder(engine(), config),
        redactor=config.redactor,
        concurrency=config.chat_concurrency,
        max_parents=max_parents,
        console=console,
    )


@guidelines_app.command("set")
@friendly_errors
def guidelines_set(file: Path, actor: str = "cli") -> None:
    """Store FILE's text as the team's brand guidelines."""
    text = set_guidelines_from_file(engine(), file, actor)
    console.print(f"guidelines set ({len(text)} characters)")


@guidelines_app.command("show")
@friendly_errors
def guidelines_show() -> None:
    """Print the stored brand guidelines."""
    text = show_guidelines(engine())
    console.print(text if text else "no guidelines set: brandvoice guidelines set FILE")
