"""The evaluation report on the terminal."""

from __future__ import annotations

from rich.panel import Panel
from rich.table import Table

from brandvoice.bot.cli.context import console
from brandvoice.store.models import ModelVersion


def _arrow(candidate: float | None, production: float | None, higher_is_better: bool) -> str:
    if candidate is None or production is None:
        return ""
    better = candidate > production if higher_is_better else candidate < production
    return "[green]▲ better[/green]" if better else "[red]▼ worse[/red]"


def print_report(version: ModelVersion) -> None:
    report = version.eval or {}
    if not report:
        console.print(f"{version.name} has no evaluation report")
        return
    labels = report.get("labels", {})
    table = Table(title=f"{version.name} against {labels.get('production', 'production')}")
    for column in ("metric", "production", "candidate", ""):
        table.add_column(column)
    sims = report.get("voice_similarity", {})
    table.add_row("voice similarity", str(sims.get("production")), str(sims.get("candidate")),
                  _arrow(sims.get("candidate"), sims.get("production"), True))  # fmt: skip
    loss = report.get("val_loss") or {}
    if loss:
        table.add_row("validation loss", str(loss.get("production")), str(loss.get("candidate")),
                      _arrow(loss.get("candidate"), loss.get("production"), False))  # fmt: skip
    wins = report.get("win_rate", {})
    table.add_row("win rate vs production", "", f"{wins.get('vs_production', 0):.0%}", "")
    table.add_row(f"win rate vs {labels.get('baseline', 'few-shot base')}", "",
                  f"{wins.get('vs_baseline', 0):.0%}", "")  # fmt: skip
    if report.get("forgetting") is not None:
        table.add_row("perplexity vs base (forgetting)", "1.00", f"{report['forgetting']:.2f}x", "")
    console.print(table)
    for sample in report.get("samples", []):
        console.print(
            Panel(
                f"[bold]prompt[/bold] {sample['prompt']}\n[bold]reference[/bold] {sample['reference']}\n"
                f"[bold]production[/bold] {sample['production']}\n[bold]candidate[/bold] {sample['candidate']}",
                expand=True,
            )
        )
    verdict = report.get("verdict", {})
    if verdict.get("recommend_promote"):
        console.print(f"[green bold]verdict: recommend promoting {version.name}[/green bold]")
    else:
        reasons = "; ".join(verdict.get("reasons", []))
        console.print(f"[yellow bold]verdict: hold {version.name}[/yellow bold] ({reasons})")
    if report.get("report_path"):
        console.print(f"HTML report: {report['report_path']}")
