"""``brandvoice generate`` and ``brandvoice guidelines set|show``, as plain functions the CLI mounts.

Also the retrain pipeline's generate step: the generator is the OpenAI-compatible server when one
is configured, else the local base model; the responder that answers new and reworded requests
is the promoted version (its adapter or hosted model), else the generator itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from brandvoice.datagen.calls import RetryPolicy
from brandvoice.datagen.filters import Embedder, FilterConfig
from brandvoice.datagen.generate import (
    GenerateConfig,
    GenerateProgress,
    GenerateSummary,
    generate_variations,
)
from brandvoice.datagen.guidelines import get_guidelines, set_guidelines
from brandvoice.inference.chat import ChatBackend
from brandvoice.store.db import session_scope
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.redact import Redactor

if TYPE_CHECKING:
    from brandvoice.bot.settings import Settings


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
    """Generate variations with a progress bar, then print the summary table.

    ``strategies`` None or empty: the defaults for ``backend`` (every strategy for a JSON-capable
    server, paraphrasing only for a small local model).
    """
    if per_example < 1:
        raise ValueError(f"--per-example must be at least 1, got {per_example}")
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
        retry=RetryPolicy(),
    )
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


def generator_backend(settings: Settings) -> ChatBackend:
    """The OpenAI-compatible server when ``OPENAI_BASE_URL`` is set, else the local base model."""
    from brandvoice.inference.factory import make_chat_backend

    if settings.openai_base_url:
        return make_chat_backend(
            "openai",
            settings.generator_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout=settings.chat_timeout_s,
            concurrency=settings.chat_concurrency,
        )
    return make_chat_backend("local", settings.base_model, device=settings.device)


def promoted_responder(engine: Engine, settings: Settings) -> ChatBackend | None:
    """The promoted version as a chat backend (adapter or hosted model); None if none is promoted."""
    from brandvoice.bot.slack.provider import settings_backend_loader
    from brandvoice.trainer.registry import promoted_version

    with session_scope(engine) as session:
        version = promoted_version(session)
    return None if version is None else settings_backend_loader(settings)(version)


NO_LOCAL_RESPONDER = (
    "no promoted model to answer in the voice: the local base model's own answers do not survive "
    "the filters (0 of 20 measured), so generation waits for a promoted version or OPENAI_BASE_URL"
)


def pipeline_generate_step(
    settings: Settings, per_example: int = 1
) -> Callable[[Engine, Any], Mapping[str, Any]]:
    """The retrain pipeline's step: expand approved examples not yet expanded, report progress
    between 5% and 25% of the run, and return the summary as a dict. With only the local base
    model (no server, nothing promoted) it skips: that model writes nothing the filters keep."""

    def step(engine: Engine, progress: Any, per_example: int = per_example) -> Mapping[str, Any]:
        from brandvoice.inference.embeddings import embed_texts
        from brandvoice.inference.tokens import count_chat_tokens_batch

        generator = generator_backend(settings)
        responder = promoted_responder(engine, settings)
        if responder is None and not generator.supports_json:
            return {"skipped": NO_LOCAL_RESPONDER}

        def on_progress(p: GenerateProgress) -> None:
            fraction = 0.05 + 0.2 * (p.done / p.total if p.total else 1.0)
            progress.progress(fraction, "generate", {"generate": {"kept": p.kept, "done": p.done}})

        summary = generate_variations(
            engine,
            generator,
            embed=embed_texts,
            count_tokens=count_chat_tokens_batch,
            responder=responder,
            config=GenerateConfig(per_example=per_example, concurrency=settings.chat_concurrency),
            redactor=settings.redactor,
            on_progress=on_progress,
        )
        return summary.as_dict()

    return step
