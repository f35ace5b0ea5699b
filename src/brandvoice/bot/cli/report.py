"""The evaluation report on the terminal."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from brandvoice.bot.cli.context import console
from brandvoice.store.models import ModelVersion
from brandvoice.trainer.eval_report import EvalReport, ProductionSignal, report_of


def _arrow(candidate: float | None, production: float | None, higher_is_better: bool) -> str:
    if candidate is None or production is None:
        return ""
    if candidate == production:
        return "= same"
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
    claims = report.unsupported_claims
    if claims is not None:
        table.add_row("unsupported-claim rate", claims.production.describe(),
                      claims.candidate.describe(),
                      _arrow(claims.candidate.rate, claims.production.rate, False))  # fmt: skip
    parts: list[RenderableType] = [table]
    if claims is not None:
        for role, example in claims.examples():
            line = Text(f"unsupported claim ({role}): ", style="bold")
            parts.append(line.append(f"“{example.reply}” — {example.claim}: {example.reason}"))
    parts.extend(Text(f"not measured: {reason}") for reason in report.not_measured)
    if report.training is not None:
        for part in (report.training.context, report.training.preference):
            if part is not None:
                parts.append(Text(part.describe()))
    if report.production_signal is not None:
        parts.append(signal_table(report.production_signal))
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


def signal_table(signal: ProductionSignal) -> Table:
    """How people rated production's replies (and the candidate's), with 95% Wilson intervals."""
    table = Table(
        title=f"production signal, replies served {signal.window}",
        caption="👎 rate: replies with a 👎 of those with any 👍/👎; "
        "approved, corrected: of replies served",
    )
    for column in ("version", "replies", "👍", "👎", "👎 rate", "approved", "corrected"):
        table.add_column(column)
    for role, s in signal.versions():
        table.add_row(
            f"{s.version} ({role})", str(s.served), str(s.up_votes), str(s.down_votes),
            s.down_rate.describe(), s.approval_rate.describe(), s.correction_rate.describe(),
        )  # fmt: skip
    return table


def print_report(version: ModelVersion, signal: ProductionSignal | None = None) -> None:
    """The report of ``version``; with ``signal``, the production signal measured now instead of
    the one stored with the report."""
    report = report_of(version)
    if report is None:
        console.print(f"{version.name} has no evaluation report")
        return
    if signal is not None:
        report = report.with_signal(signal)
    console.print(report_renderable(version.name, report))
