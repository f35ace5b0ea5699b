"""The evaluation report on the terminal."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from brandvoice.bot.cli.context import console
from brandvoice.store.models import ModelVersion
from brandvoice.trainer.eval_report import EvalReport, report_of


def _arrow(candidate: float | None, production: float | None, higher_is_better: bool) -> str:
    if candidate is None or production is None:
        return ""
    better = candidate > production if higher_is_better else candidate < production
    return "[green]▲ better[/green]" if better else "[red]▼ worse[/red]"


def report_renderable(name: str, report: EvalReport) -> RenderableType:
    """The metrics table, the samples side by side and the verdict of version ``name``."""
    labels = report.labels
    table = Table(title=f"{name} against {labels.production}")
    for column in ("metric", "production", "candidate", ""):
        table.add_column(column)
    sims = report.voice_similarity
    table.add_row("voice similarity", str(sims.production), str(sims.candidate),
                  _arrow(sims.candidate, sims.production, True))  # fmt: skip
    loss = report.val_loss
    if loss is not None:
        table.add_row("validation loss", str(loss.production), str(loss.candidate),
                      _arrow(loss.candidate, loss.production, False))  # fmt: skip
    wins = report.win_rate
    table.add_row("win rate vs production", "", f"{wins.vs_production:.0%}", "")
    table.add_row(f"win rate vs {labels.baseline}", "", f"{wins.vs_baseline:.0%}", "")
    if report.forgetting is not None:
        table.add_row("perplexity vs base (forgetting)", "1.00", f"{report.forgetting:.2f}x", "")
    parts: list[RenderableType] = [table]
    parts.extend(Text(f"not measured: {reason}") for reason in report.not_measured)
    for sample in report.samples:
        body = Text()
        for label, text in (
            ("prompt", sample.prompt),
            ("reference", sample.reference),
            ("production", sample.production),
            ("candidate", sample.candidate),
        ):
            body.append(label, style="bold").append(f" {text}\n")
        body.rstrip()
        parts.append(Panel(body, expand=True))
    if report.verdict.recommend_promote:
        parts.append(Text(f"verdict: recommend promoting {name}", style="green bold"))
    else:
        verdict = Text(f"verdict: hold {name}", style="yellow bold")
        parts.append(verdict.append(f" ({report.verdict.reason})", style="default"))
    if report.report_path:
        parts.append(Text(f"HTML report: {report.report_path}"))
    return Group(*parts)


def print_report(version: ModelVersion) -> None:
    report = report_of(version)
    if report is None:
        console.print(f"{version.name} has no evaluation report")
        return
    console.print(report_renderable(version.name, report))
