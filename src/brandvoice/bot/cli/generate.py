"""Synthetic expansion and brand guidelines: ``generate``, ``guidelines set|show``.

The commands draw a progress bar and print the summary table; the generation itself is
``datagen``'s, with the generator and responder from the process's :class:`Backends`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import col, func, select

from brandvoice.bot.cli.context import backends, console, engine, friendly_errors, settings
from brandvoice.datagen.guidelines import get_guidelines, set_guidelines
from brandvoice.inference.chat import ChatBackend
from brandvoice.store.db import session_scope
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.models import Example, ExampleSource
from brandvoice.store.redact import Redactor

if TYPE_CHECKING:  # the generator pulls in the near-duplicate index (datasketch, scipy)
    from brandvoice.datagen.filters import Embedder, FilterConfig
    from brandvoice.datagen.generate import GenerateProgress, GenerateSummary

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
    from brandvoice.bot.generation import responder_for
    from brandvoice.bot.knowledge import KnowledgeService
    from brandvoice.inference.embeddings import embed_texts

    config = settings()
    generator = backends().generator()
    run_generate(
        engine(),
        generator,
        embed_texts,
        per_example,
        strategy,
        dry_run,
        responder=responder_for(backends(), generator, engine(), KnowledgeService(config)),
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


def run_generate(
    engine: Engine,
    backend: ChatBackend,
    embedder: Embedder,
    per_example: int = 1,
    strategies: Sequence[str] | None = None,
    dry_run: bool = False,
    *,
    responder: ChatBackend | None = None,
    count_tokens: TokenCounter | None = None,
    redactor: Redactor | None = None,
    seed: int = 0,
    concurrency: int = 4,
    max_parents: int | None = None,
    filters: FilterConfig | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    actor: str = "cli",
) -> GenerateSummary:
    """Generate variations with a progress bar, then print the summary table and the kept
    variations beside their parents.

    ``strategies`` None or empty: the defaults for ``backend`` (every strategy for a JSON-capable
    server, few-shot new requests for the local model, paraphrasing for another plain server).
    """
    if per_example < 1:
        raise ValueError(f"--per-example must be at least 1, got {per_example}")
    from brandvoice.datagen.filters import FilterConfig
    from brandvoice.datagen.generate import GenerateConfig, generate_variations
    from brandvoice.inference.tokens import count_chat_tokens_batch

    console = console or Console()
    config = GenerateConfig(
        per_example=per_example,
        strategies=tuple(strategies) if strategies else None,
        seed=seed,
        concurrency=concurrency,
        max_parents=max_parents,
        dry_run=dry_run,
        actor=actor,
        filters=filters or FilterConfig(),
    )
    since = latest_example_id(engine)
    with _progress_bar(console, show_progress) as bar:
        task = bar.add_task("generating", total=None, detail="")

        def on_progress(p: GenerateProgress) -> None:
            detail = f"kept {p.kept}, dropped {p.dropped}" + (
                f", errors {p.errors}" if p.errors else ""
            )
            bar.update(task, total=p.total, completed=p.done, detail=detail)

        summary = generate_variations(
            engine,
            backend,
            embed=embedder,
            count_tokens=count_tokens or count_chat_tokens_batch,
            responder=responder,
            config=config,
            redactor=redactor,
            on_progress=on_progress,
        )
    print_summary(console, summary)
    print_variations(console, engine, since)
    return summary


def _progress_bar(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def summary_table(summary: GenerateSummary) -> Table:
    """Generated, kept and dropped by reason (parse failures by kind), then per strategy."""
    title = "generation summary" + (" (dry run: nothing stored)" if summary.dry_run else "")
    table = Table(title=title, show_header=True)
    table.add_column("")
    table.add_column("candidates", justify="right")
    table.add_column("share", justify="right")

    def share(n: int) -> str:
        return f"{n / summary.generated:.0%}" if summary.generated else "-"

    table.add_row("generated", str(summary.generated), "")
    table.add_row("[green]kept[/green]", str(summary.kept), share(summary.kept))
    for reason, n in summary.dropped.most_common():
        table.add_row(f"dropped: {reason.replace('_', ' ')}", str(n), share(n))
    for kind, n in summary.parse_failures.most_common():
        table.add_row(f"  parse failure, {kind.replace('_', ' ')}", str(n), share(n))
    if summary.errors:
        table.add_row("[red]failed calls (retried next run)[/red]", str(summary.errors), "")
    if summary.skipped:
        table.add_row("already generated earlier", str(summary.skipped), "")
    if len(summary.by_strategy) > 1:
        table.add_section()
        for strategy, counts in summary.by_strategy.items():
            generated, kept = counts.get("generated", 0), counts.get("kept", 0)
            rate = f"{kept / generated:.0%}" if generated else "-"
            table.add_row(f"{strategy}: kept of generated", f"{kept}/{generated}", rate)
    table.caption = (
        f"generator {summary.generator_model}, responder {summary.responder_model}, "
        f"{summary.parents} parent(s), {summary.seconds:.1f} s"
    )
    return table


def print_summary(console: Console, summary: GenerateSummary) -> None:
    parts: list[Any] = [summary_table(summary)]
    for message in summary.error_samples:
        parts.append(f"[red]error:[/red] {message}")
    if summary.dry_run:
        for messages in summary.kept_samples:
            user = next((m["content"] for m in messages if m["role"] == "user"), "")
            reply = next((m["content"] for m in messages if m["role"] == "assistant"), "")
            parts.append(f"[bold]would keep[/bold]\n  user: {user}\n  assistant: {reply}")
    console.print(Group(*parts))


def set_guidelines_from_file(engine: Engine, path: Path, actor: str = "cli") -> str:
    """``brandvoice guidelines set FILE``: store the file's text as the team's guidelines."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read guidelines file {path}: {exc.strerror}") from exc
    with session_scope(engine) as session:
        return set_guidelines(session, text, actor)


def show_guidelines(engine: Engine) -> str | None:
    """``brandvoice guidelines show``: the stored guidelines, or None when none are set."""
    with session_scope(engine) as session:
        return get_guidelines(session)


def latest_example_id(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.max(Example.id))).one() or 0


def print_variations(console: Console, engine: Engine, after_id: int, limit: int = 10) -> None:
    """The kept variations stored after example ``after_id``, each beside the example it came
    from, so a person can judge whether they read as real requests and replies."""
    with session_scope(engine) as session:
        kept = session.exec(
            select(Example)
            .where(Example.source == ExampleSource.SYNTHETIC, col(Example.id) > after_id)
            .order_by(col(Example.id))
        ).all()
        parents = {
            e.id: e
            for e in session.exec(
                select(Example).where(col(Example.id).in_({k.parent_id for k in kept}))
            )
        }
        rows = [(parents.get(k.parent_id), k) for k in kept[:limit]]
        if not rows:
            return
        shown = f"{len(rows)} of {len(kept)}" if len(kept) > len(rows) else str(len(kept))
        table = Table(title=f"kept variations ({shown}), beside their parents", show_lines=True)
        table.add_column("approved example", ratio=1)
        table.add_column("variation (kept)", ratio=1)
        for parent, child in rows:
            table.add_row(_exchange(parent.messages) if parent else "-", _exchange(child.messages))
    console.print(table)


def _exchange(messages: Sequence[dict[str, Any]]) -> str:
    request = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    reply = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
    return f"[bold]{request}[/bold]\n{reply}"
