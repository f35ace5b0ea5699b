"""Block Kit, built by pure functions: data in, blocks out, no Slack calls.

Identifiers that Slack sends back (action ids, callback ids, block ids) are defined here once and
used by both the builders and the listeners.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from brandvoice.store.models import ModelVersion
from brandvoice.store.signal import BASE_MODEL, VersionSignal
from brandvoice.trainer.eval_report import EvalReport, ProductionSignal, UnsupportedClaims
from brandvoice.trainer.production_signal import SignalAlert

SECTION_LIMIT = 3000
"""Slack refuses a section whose text is longer (``invalid_blocks``)."""
FIELD_LIMIT = 2000
INPUT_LIMIT = 3000
SOURCES_LIMIT = 500
"""A reply's sources line stays compact (Slack's own limit for a context element is 3000)."""

REPLY_EVENT_TYPE = "brandvoice_reply"
PROMOTE_ACTION = "report_promote"
DISCARD_ACTION = "report_discard"
ROLLBACK_ACTION = "signal_rollback"
APPROVE_CORRECTION_ACTION = "correction_approve"
REJECT_CORRECTION_ACTION = "correction_reject"
CORRECTION_SHORTCUT = "improve_reply"
CORRECTION_VIEW = "correction_submit"
CORRECTION_BLOCK = "correction"
CORRECTION_INPUT = "correction_input"
FEEDBACK_ACTION = "reply_feedback"
IMPROVE_ACTION = "reply_improve"
FEEDBACK_UP = "+1"
FEEDBACK_DOWN = "-1"
"""Feedback button values: the reactions a click counts as."""

Block = dict[str, Any]


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(truncate(text, SECTION_LIMIT))}


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def escape(text: str) -> str:
    """Text shown as itself in mrkdwn: Slack reads ``&``, ``<`` and ``>`` as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quote(text: str, limit: int = 600) -> str:
    return "\n".join("> " + line for line in truncate(text.strip(), limit).splitlines()) or ">"


def slack_date(when: datetime) -> str:
    """A date every reader sees in their own time zone."""
    iso = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{iso}>"


# --- replies -----------------------------------------------------------------------------------


def split_message(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Cut a long reply into parts Slack accepts, at paragraph, line or word boundaries."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return parts


def curation_hint(approval_reaction: str, quorum: int, model_label: str) -> str:
    votes = f"{quorum} × :+1:" if quorum > 0 else ":+1:"
    return (
        f"_{model_label}_ · Good answer? A curator's :{approval_reaction}: or {votes} "
        "(reactions or the buttons below) adds it to the training set · "
        "Wrong? *⋯ › Improve this reply*"
    )


def build_reply_blocks(text: str, hint: str | None = None) -> list[Block]:
    blocks = [section(text or " ")]
    if hint:
        blocks.append(context(hint))
    return blocks


def build_feedback_actions(interaction_id: int) -> Block:
    """👍/👎 feedback buttons (counted as :+1:/:-1: reactions) and a button to improve the reply.

    Slack offers ``trash`` as the only icon of an ``icon_button``; its text, shown on hover and
    read by screen readers, says what it does.
    """
    return {
        "type": "context_actions",
        "block_id": f"reply_feedback:{interaction_id}",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": {
                    "text": plain("👍"),
                    "value": FEEDBACK_UP,
                    "accessibility_label": "Good reply: counts like a thumbs-up reaction",
                },
                "negative_button": {
                    "text": plain("👎"),
                    "value": FEEDBACK_DOWN,
                    "accessibility_label": "Bad reply: counts like a thumbs-down reaction",
                },
            },
            {
                "type": "icon_button",
                "icon": "trash",
                "action_id": IMPROVE_ACTION,
                "text": plain("Improve this reply"),
                "value": str(interaction_id),
                "accessibility_label": "Write the reply brandvoice should have given",
            },
        ],
    }


def build_reply_footer(hint: str, interaction_id: int, sources: str = "") -> list[Block]:
    """What goes under a reply: its sources (one compact line, when it had any), who wrote it
    and how to curate it, then the feedback buttons."""
    blocks = [context(escape(truncate(sources, SOURCES_LIMIT)))] if sources else []
    return [*blocks, context(hint), build_feedback_actions(interaction_id)]


def reply_metadata(
    interaction_id: int, model_version: str | None, sources: Sequence[str] = ()
) -> dict[str, Any]:
    """Message metadata naming the interaction, the model version that wrote the reply and what
    was retrieved for it (``knowledge:12``, ``example:3``)."""
    payload: dict[str, Any] = {
        "interaction_id": interaction_id,
        "model_version": model_version or "base",
    }
    if sources:
        payload["sources"] = list(sources)
    return {"event_type": REPLY_EVENT_TYPE, "event_payload": payload}


# --- corrections -------------------------------------------------------------------------------


def build_correction_modal(interaction_id: int, question: str, original_reply: str) -> Block:
    """The "Improve this reply" modal, prefilled with the bot's reply."""
    return {
        "type": "modal",
        "callback_id": CORRECTION_VIEW,
        "private_metadata": json.dumps({"interaction_id": interaction_id}),
        "title": plain("Improve this reply"),
        "submit": plain("Save"),
        "close": plain("Cancel"),
        "blocks": [
            section(f"*Question*\n{quote(question)}"),
            {
                "type": "input",
                "block_id": CORRECTION_BLOCK,
                "label": plain("The reply brandvoice should have given"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": CORRECTION_INPUT,
                    "multiline": True,
                    "max_length": INPUT_LIMIT,
                    "initial_value": truncate(original_reply, INPUT_LIMIT),
                },
            },
            context("Curators' corrections are added right away; others go to review first."),
        ],
    }


@dataclass(frozen=True)
class SubmittedCorrection:
    interaction_id: int
    corrected: str
    original: str


def parse_correction_view(view: Mapping[str, Any]) -> SubmittedCorrection:
    """What a ``view_submission`` of the correction modal carries."""
    interaction_id = int(json.loads(view.get("private_metadata") or "{}")["interaction_id"])
    values = view.get("state", {}).get("values", {})
    corrected = (values.get(CORRECTION_BLOCK, {}).get(CORRECTION_INPUT, {}).get("value")) or ""
    original = ""
    for block in view.get("blocks") or []:
        if block.get("block_id") == CORRECTION_BLOCK:
            original = block.get("element", {}).get("initial_value") or ""
    return SubmittedCorrection(interaction_id, corrected.strip(), original.strip())


def correction_errors(submitted: SubmittedCorrection) -> dict[str, str]:
    """Errors shown under the input, or {} when the correction can be saved."""
    if not submitted.corrected:
        return {CORRECTION_BLOCK: "Write the reply brandvoice should have given."}
    if submitted.corrected == submitted.original:
        return {CORRECTION_BLOCK: "This is the bot's reply unchanged; edit it before saving."}
    return {}


def build_correction_card(
    example_id: int, submitter: str, question: str, original: str, corrected: str
) -> list[Block]:
    """The review card posted in the curation channel for a pending correction."""
    value = str(example_id)
    return [
        section(f"<@{submitter}> suggested a better reply (example #{example_id})."),
        section(f"*Question*\n{quote(question)}"),
        {
            "type": "section",
            "fields": [
                mrkdwn(truncate(f"*Bot's reply*\n{original}", FIELD_LIMIT)),
                mrkdwn(truncate(f"*Correction*\n{corrected}", FIELD_LIMIT)),
            ],
        },
        {
            "type": "actions",
            "block_id": f"correction_actions:{example_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_CORRECTION_ACTION,
                    "text": plain("Approve"),
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": REJECT_CORRECTION_ACTION,
                    "text": plain("Reject"),
                    "style": "danger",
                    "value": value,
                },
            ],
        },
    ]


def blocks_with_decision(blocks: Sequence[Block], note: str) -> list[Block]:
    """The same message with its buttons replaced by who decided what, and when."""
    kept = [block for block in blocks if block.get("type") != "actions"]
    return [*kept, context(note)]


# --- training reports --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    label: str
    higher_is_better: bool
    fmt: str = "{:.3f}"
    baseline: float | None = None
    """What the candidate is compared with when production has no value (e.g. 50% win rate)."""


METRICS: dict[str, MetricSpec] = {
    "val_loss": MetricSpec("Validation loss", higher_is_better=False),
    "voice_similarity": MetricSpec("Voice similarity", higher_is_better=True, fmt="{:.2f}"),
    "win_rate": MetricSpec("Win rate vs production", True, "{:.0%}", baseline=0.5),
    "win_rate_vs_base": MetricSpec("Win rate vs prompted base", True, "{:.0%}", baseline=0.5),
    "exact_match": MetricSpec("Exact match", higher_is_better=True, fmt="{:.0%}"),
    "unsupported_claims": MetricSpec("Unsupported-claim rate", False, "{:.0%}"),
    "forgetting": MetricSpec("Forgetting (perplexity ÷ base)", False, "{:.2f}", baseline=1.0),
}


def metric_line(name: str, candidate: float | None, production: float | None = None) -> str:
    """``*Validation loss*\\n1.302 → *1.104* ▼ ✅``: production, candidate, direction, verdict."""
    spec = METRICS.get(name) or MetricSpec(name.replace("_", " ").capitalize(), True)
    reference = production if production is not None else spec.baseline
    if candidate is None:
        return f"*{spec.label}*\n–"
    shown = spec.fmt.format(candidate)
    if reference is None:
        return f"*{spec.label}*\n*{shown}*"
    diff = candidate - reference
    if abs(diff) < 1e-9:
        mark = "= same"
    else:
        arrow = "▲" if diff > 0 else "▼"
        mark = f"{arrow} {'✅' if (diff > 0) == spec.higher_is_better else '⚠️'}"
    return f"*{spec.label}*\n{spec.fmt.format(reference)} → *{shown}* {mark}"


def report_metric_lines(report: EvalReport) -> list[str]:
    """One line per measured metric: the candidate against production (or a fixed baseline)."""
    lines = []
    if report.val_loss is not None:
        lines.append(metric_line("val_loss", report.val_loss.candidate, report.val_loss.production))
    similarity = report.voice_similarity
    lines.append(metric_line("voice_similarity", similarity.candidate, similarity.production))
    lines.append(metric_line("win_rate", report.win_rate.vs_production))
    lines.append(metric_line("win_rate_vs_base", report.win_rate.vs_baseline))
    if report.exact_match is not None:
        match = report.exact_match
        lines.append(metric_line("exact_match", match.candidate, match.production))
    if report.forgetting is not None:
        lines.append(metric_line("forgetting", report.forgetting))
    claims = report.unsupported_claims
    if claims is not None:
        line = metric_line("unsupported_claims", claims.candidate.rate, claims.production.rate)
        lines.append(
            f"{line}\n{claims.production.flagged} → {claims.candidate.flagged} "
            f"of {claims.candidate.replies} replies{claims.served_note()}"
        )
    return lines


def claims_block(claims: UnsupportedClaims) -> Block | None:
    """The flagged claims, production's then the candidate's, as one context block."""
    examples = [
        f"_{role}:_ “{truncate(e.reply, 200)}” — *{e.claim}*: {e.reason}"
        for role, e in claims.examples()
    ]
    if not examples:
        return None
    return context(truncate("*Unsupported claims*\n" + "\n".join(examples), 3000))


def build_report_blocks(version: ModelVersion, report: EvalReport) -> list[Block]:
    """The training report of ``version`` with Promote and Discard buttons."""
    name = version.name
    about = [f"Base model `{version.base_model}`"]
    if version.run_id is not None:
        about.append(f"run #{version.run_id}")
    about.append(f"compared with {report.labels.production} (production)")
    data = section("*Data:* –")
    if report.snapshot is not None:
        snapshot = report.snapshot
        data = section(
            f"*Data:* {snapshot.real_examples} real + {snapshot.synthetic_examples} synthetic "
            "examples" + (f" · snapshot `{snapshot.hash[:12]}`" if snapshot.hash else "")
        )
    blocks: list[Block] = [
        {"type": "header", "text": plain(f"Training report · {name}")},
        context(" · ".join(about)),
        data,
    ]
    lines = report_metric_lines(report)
    for start in range(0, len(lines), 10):
        blocks.append({"type": "section", "fields": [mrkdwn(t) for t in lines[start : start + 10]]})
    if report.not_measured:
        blocks.append(context(truncate("Not measured: " + "; ".join(report.not_measured), 3000)))
    if report.training is not None:
        for part in (report.training.context, report.training.preference):
            if part is not None:
                blocks.append(context(truncate(part.describe().capitalize(), 3000)))
    if report.unsupported_claims is not None:
        claims = claims_block(report.unsupported_claims)
        if claims is not None:
            blocks.append(claims)
    if report.production_signal is not None:
        blocks.extend(signal_blocks(report.production_signal))
    for number, sample in enumerate(report.samples[:3], start=1):
        blocks.append({"type": "divider"})
        text = f"*Sample {number}*\n{quote(sample.prompt, 500)}"
        if sample.reference:
            text += f"\n_Reference:_ {truncate(sample.reference, 500)}"
        blocks.append(section(text))
        blocks.append(
            {
                "type": "section",
                "fields": [
                    mrkdwn(truncate(f"*Production*\n{sample.production}", 900)),
                    mrkdwn(truncate(f"*Candidate {name}*\n{sample.candidate}", 900)),
                ],
            }
        )
    blocks.append({"type": "divider"})
    verdict = report.verdict
    headline = "✅ Recommend promote" if verdict.recommend_promote else "⚠️ Keep production"
    reason = verdict.reason
    blocks.append(section(f"*Verdict:* {headline}" + (f" — {reason}" if reason else "")))
    blocks.append(report_actions(name))
    return blocks


def signal_text(label: str, signal: VersionSignal) -> str:
    """One version's production signal as a section field."""
    if not signal.served:
        return f"*{label}*\nno replies served"
    return truncate(
        f"*{label}*\n{signal.served} replies · 👍 {signal.up_votes} · 👎 {signal.down_votes}\n"
        f"👎 rate {signal.down_rate.describe()}\n"
        f"approved {signal.approval_rate.describe()}\n"
        f"corrected {signal.correction_rate.describe()}",
        FIELD_LIMIT,
    )


def signal_blocks(signal: ProductionSignal) -> list[Block]:
    """The production signal beside the offline metrics: people's votes, approvals and
    corrections per reply, with 95% Wilson intervals."""
    fields = [mrkdwn(signal_text(f"{s.version} ({role})", s)) for role, s in signal.versions()]
    return [
        section(f"*Production signal* · replies served {signal.window}"),
        {"type": "section", "fields": fields},
        context(
            "👎 rate: replies with a 👎 of those with any 👍/👎; approved and corrected: of "
            "replies served · 95% Wilson intervals"
        ),
    ]


def build_signal_alert_blocks(alert: SignalAlert, base_model: str) -> list[Block]:
    """The alert on a promoted version whose 👎 rate is significantly worse than its
    predecessor's: both signals, the test, and a Roll back button (none when already done)."""
    restores = (
        alert.predecessor if alert.predecessor != BASE_MODEL else f"the base model `{base_model}`"
    )
    hours = f"{alert.window_hours:g} h"
    blocks: list[Block] = [
        {"type": "header", "text": plain(f"⚠️ {alert.version}: more 👎 than {alert.predecessor}")},
        section(
            f"The 👎 rate of *{alert.version}* in production is significantly higher than that of "
            f"{restores}, which a rollback restores."
        ),
        {
            "type": "section",
            "fields": [
                mrkdwn(signal_text(f"{alert.version}, its last {hours}", alert.current)),
                mrkdwn(signal_text(f"{alert.predecessor}, {hours} before", alert.previous)),
            ],
        },
        context(
            f"One-sided two-proportion z-test of the 👎 rates: z = {alert.test.z:.2f}, "
            f"p = {alert.test.p_value:.2g} < α = {alert.alpha:g}"
        ),
    ]
    if alert.rolled_back:
        blocks.append(
            section(
                f"↩️ brandvoice rolled *{alert.version}* back (AUTO_ROLLBACK); {restores} answers again."
            )
        )
    else:
        blocks.append(rollback_actions(alert.version, restores))
    return blocks


def rollback_actions(version: str, restores: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"signal_actions:{version}",
        "elements": [
            {
                "type": "button",
                "action_id": ROLLBACK_ACTION,
                "text": plain(f"Roll back {version}"),
                "style": "danger",
                "value": version,
                "confirm": {
                    "title": plain(f"Roll back {version}?"),
                    "text": mrkdwn(f"{restores} will answer again from the next message."),
                    "confirm": plain("Roll back"),
                    "deny": plain("Cancel"),
                },
            }
        ],
    }


def signal_alert_text(alert: SignalAlert) -> str:
    """Notification and fallback text of the alert."""
    done = " (rolled back automatically)" if alert.rolled_back else ""
    return (
        f"{alert.version} gets significantly more 👎 than {alert.predecessor}: "
        f"{alert.current.down_rate.describe()} against {alert.previous.down_rate.describe()}" + done
    )


def report_actions(version: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"report_actions:{version}",
        "elements": [
            {
                "type": "button",
                "action_id": PROMOTE_ACTION,
                "text": plain(f"Promote {version}"),
                "style": "primary",
                "value": version,
                "confirm": {
                    "title": plain(f"Promote {version}?"),
                    "text": mrkdwn(
                        f"{version} will answer in Slack and the API from the next message. "
                        "`/brandvoice rollback` undoes it."
                    ),
                    "confirm": plain("Promote"),
                    "deny": plain("Cancel"),
                },
            },
            {
                "type": "button",
                "action_id": DISCARD_ACTION,
                "text": plain("Discard"),
                "style": "danger",
                "value": version,
            },
        ],
    }


def report_text(version: ModelVersion, report: EvalReport) -> str:
    """Notification and fallback text of the report."""
    advice = "recommend promote" if report.verdict.recommend_promote else "keep production"
    return f"Training report for {version.name}: {advice}"
