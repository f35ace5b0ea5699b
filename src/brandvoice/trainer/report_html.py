"""The evaluation report as a standalone HTML page: metrics, loss curves and samples side by side."""

from __future__ import annotations

from html import escape

from brandvoice.trainer.eval_report import (
    EvalReport,
    LossPoint,
    ProductionSignal,
    SnapshotSummary,
    TrainingSummary,
    UnsupportedClaims,
)

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;color:#1d2b1f}
table{border-collapse:collapse;width:100%;margin:1rem 0}td,th{border:1px solid #cdd5cf;
padding:.4rem .6rem;vertical-align:top;text-align:left}th{background:#eef3ef}
.good{color:#1f7a3a}.bad{color:#b3261e}.verdict{padding:.8rem;border-radius:6px;background:#eef3ef}
pre{white-space:pre-wrap;margin:0;font-family:inherit}
"""


def loss_curve_svg(evals: list[LossPoint], width: int = 640, height: int = 220) -> str:
    """Training and validation loss per evaluation step as an inline SVG line chart."""
    series = {
        "train": [(e.step, e.train_loss) for e in evals if e.train_loss is not None],
        "val": [(e.step, e.eval_loss) for e in evals if e.eval_loss is not None],
    }
    points = [p for values in series.values() for p in values]
    if len(points) < 2:
        return "<p>Not enough evaluation steps for a loss curve.</p>"
    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    lo, hi = min(losses), max(losses)
    x0, x1 = min(steps), max(steps) or 1

    def xy(step: float, loss: float) -> str:
        x = 40 + (width - 60) * (step - x0) / max(x1 - x0, 1)
        y = 10 + (height - 40) * (1 - (loss - lo) / max(hi - lo, 1e-9))
        return f"{x:.1f},{y:.1f}"

    colors = {"train": "#4a7c59", "val": "#c2410c"}
    lines = [
        f'<polyline fill="none" stroke="{colors[name]}" stroke-width="2" '
        f'points="{" ".join(xy(s, v) for s, v in values)}"/>'
        for name, values in series.items()
        if values
    ]
    legend = " ".join(
        f'<tspan fill="{colors[n]}">■ {n} loss</tspan>' for n, v in series.items() if v
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="loss curves">'
        f'<text x="40" y="{height - 8}" font-size="12">{legend} · steps {x0}–{x1} · '
        f"loss {lo:.3f}–{hi:.3f}</text>{''.join(lines)}</svg>"
    )


def _metric_rows(report: EvalReport) -> str:
    rows: list[tuple[str, float | None, float | None, bool]] = [
        (
            "Voice similarity ↑",
            report.voice_similarity.production,
            report.voice_similarity.candidate,
            True,
        )
    ]
    if report.val_loss is not None:
        rows.append(
            ("Validation loss ↓", report.val_loss.production, report.val_loss.candidate, False)
        )
    html = []
    for name, production, candidate, higher_better in rows:
        better = (
            candidate is not None
            and production is not None
            and (candidate > production if higher_better else candidate < production)
        )
        mark = "good" if better else "bad"
        html.append(
            f"<tr><td>{name}</td><td>{production}</td><td class='{mark}'>{candidate}</td></tr>"
        )
    wins = report.win_rate
    html.append(
        f"<tr><td>Win rate vs production</td><td>–</td><td>{wins.vs_production:.0%}</td></tr>"
        f"<tr><td>Win rate vs few-shot base</td><td>–</td><td>{wins.vs_baseline:.0%}</td></tr>"
    )
    if report.forgetting is not None:
        html.append(
            f"<tr><td>General-text perplexity vs base ↓</td><td>1.00</td>"
            f"<td>{report.forgetting:.2f}x</td></tr>"
        )
    claims = report.unsupported_claims
    if claims is not None:
        mark = "good" if claims.candidate.rate <= claims.production.rate else "bad"
        html.append(
            f"<tr><td>Unsupported-claim rate{claims.served_note()} ↓</td>"
            f"<td>{claims.production.describe()}</td>"
            f"<td class='{mark}'>{claims.candidate.describe()}</td></tr>"
        )
    return "".join(html)


def _claims_section(claims: UnsupportedClaims | None) -> str:
    """The flagged claims of production and candidate, and how they were checked."""
    if claims is None:
        return ""
    rows = "".join(
        f"<tr><td>{role}</td><td><pre>{escape(e.reply)}</pre></td><td>{escape(e.claim)}</td>"
        f"<td>{escape(e.reason)}</td></tr>"
        for role, e in claims.examples()
    )
    table = (
        f"<table><tr><th>model</th><th>reply</th><th>claim</th><th>why</th></tr>{rows}</table>"
        if rows
        else "<p>No reply made an unsupported claim.</p>"
    )
    return f"<h2>Unsupported claims</h2><p>Checked: {escape(claims.method)}.</p>{table}"


def _signal_section(signal: ProductionSignal | None) -> str:
    """The production signal beside the offline metrics."""
    if signal is None:
        return ""
    rows = "".join(
        f"<tr><td>{escape(s.version)} ({role})</td><td>{s.served}</td><td>{s.up_votes}</td>"
        f"<td>{s.down_votes}</td><td>{escape(s.down_rate.describe())}</td>"
        f"<td>{escape(s.approval_rate.describe())}</td>"
        f"<td>{escape(s.correction_rate.describe())}</td></tr>"
        for role, s in signal.versions()
    )
    return (
        f"<h2>Production signal</h2><p>Replies served {escape(signal.window)}. 👎 rate: replies "
        "with a 👎 of those with any 👍/👎; approved and corrected: of replies served; 95% "
        "Wilson intervals.</p><table><tr><th>version</th><th>replies</th><th>👍</th><th>👎</th>"
        f"<th>👎 rate</th><th>approved</th><th>corrected</th></tr>{rows}</table>"
    )


def render_report_html(version: str, report: EvalReport) -> str:
    verdict = report.verdict
    reasons = "".join(f"<li>{escape(r)}</li>" for r in verdict.reasons)
    snapshot = report.snapshot or SnapshotSummary()
    training = report.training or TrainingSummary()
    samples = "".join(
        "<tr>"
        + "".join(
            f"<td><pre>{escape(text)}</pre></td>"
            for text in (s.prompt, s.reference, s.production, s.candidate)
        )
        + "</tr>"
        for s in report.samples
    )
    not_measured = "".join(f"<li>{escape(n)}</li>" for n in report.not_measured)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>brandvoice {escape(version)} report</title><style>{STYLE}</style></head><body>
<h1>brandvoice {escape(version)}</h1>
<p class="verdict"><strong>{"Recommend promote" if verdict.recommend_promote else "Do not promote"}</strong>
{f"<ul>{reasons}</ul>" if reasons else ""}</p>
<p>Data: {_known(snapshot.real_train)} real + {_known(snapshot.synthetic_train)} synthetic
training examples, {_known(snapshot.val)} validation; snapshot
<code>{escape((snapshot.hash or "")[:12])}</code>. Production:
{escape(report.labels.production)}. Judge: {escape(report.judge or "")}.</p>
<h2>Metrics</h2><table><tr><th>metric</th><th>production</th><th>candidate</th></tr>
{_metric_rows(report)}</table>
{f"<p>Not measured:</p><ul>{not_measured}</ul>" if not_measured else ""}
{_claims_section(report.unsupported_claims)}
{_signal_section(report.production_signal)}
<h2>Training</h2><p>{_known(training.steps)} steps, best at step
{_known(training.best_step)}, {_known(training.trained_tokens)} trained tokens in
{_known(training.seconds)} s ({escape(training.status or "")}).</p>
{_preference_html(training)}{loss_curve_svg(training.evals)}
<h2>Side by side</h2><table><tr><th>prompt</th><th>reference</th><th>production</th>
<th>candidate</th></tr>{samples}</table></body></html>"""


def _known(value: object) -> str:
    return "?" if value is None else str(value)


def _preference_html(training: TrainingSummary) -> str:
    """The context-training and preference-stage lines, where the run had them."""
    parts = (training.context, training.preference)
    return "".join(f"<p>{escape(part.describe())}.</p>" for part in parts if part is not None)
