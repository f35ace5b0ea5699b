"""``/brandvoice``: parsing the subcommand and carrying it out.

Answers are ephemeral unless they announce a change the channel should know about (a promotion,
a rollback, a queued retrain, a new schedule). Unknown input gets the help.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from brandvoice.bot.slack.blocks import slack_date
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.operations import (
    SCHEDULE_OFF,
    OperationError,
    current_schedule,
    enqueue_generation,
    enqueue_training,
    latest_snapshot,
    next_run_at,
    set_schedule,
    status_summary,
)
from brandvoice.store.audit import record_refusal
from brandvoice.store.examples import example_counts
from brandvoice.store.knowledge import list_documents
from brandvoice.trainer.eval_report import report_of
from brandvoice.trainer.registry import RegistryError, discard_version, promote_version, rollback

COMMAND = "/brandvoice"
SUBCOMMANDS = (
    "help",
    "status",
    "train",
    "promote",
    "rollback",
    "discard",
    "dataset",
    "schedule",
    "generate",
    "knowledge",
)
CURATOR_ONLY = frozenset({"train", "promote", "rollback", "discard", "generate"})
AUDITED_ACTIONS = {
    "train": "run.enqueue",
    "generate": "run.enqueue",
    "promote": "model.promote",
    "rollback": "model.rollback",
    "discard": "model.discard",
    "schedule": "setting.set",
}
"""The audit action of each command that changes something; refusals are audited as ``….refused``."""

HELP = """*brandvoice* teaches the bot your team's voice.
`/brandvoice status`: the model in production and how people rate it, the dataset, the last and next retrain
`/brandvoice dataset`: examples by status, source and split
`/brandvoice knowledge`: the files the bot takes facts from
`/brandvoice train [force]`: queue a retrain now _(curators)_
`/brandvoice promote VERSION`: put a version in production _(curators)_
`/brandvoice rollback`: go back to the previous good version _(curators)_
`/brandvoice discard VERSION`: drop a candidate _(curators)_
`/brandvoice schedule [CRON|off]`: show the retrain schedule, or change it _(curators)_
`/brandvoice generate [N]`: queue N synthetic variations per approved example _(curators)_
Mention @brandvoice to ask it something. React :+1: to a good reply (curators: the approval \
reaction) to add it to the training set, or use *⋯ › Improve this reply* to correct one."""


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""
    unknown: str | None = None
    """The input when it was not understood (the help is shown)."""


@dataclass(frozen=True)
class CommandReply:
    text: str
    public: bool = False
    """True: posted in the channel for everyone; False: only the person who asked sees it."""

    def as_response(self) -> dict[str, Any]:
        return {"response_type": "in_channel" if self.public else "ephemeral", "text": self.text}


def parse_command(text: str) -> Command:
    words = text.strip().split(maxsplit=1)
    if not words:
        return Command("help")
    name, arg = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if name not in SUBCOMMANDS:
        return Command("help", unknown=text.strip())
    if name in ("promote", "discard") and not arg:
        return Command("help", unknown=text.strip())
    return Command(name, arg)


def needs_curator(command: Command) -> bool:
    return command.name in CURATOR_ONLY or (command.name == "schedule" and bool(command.arg))


async def run_command(deps: SlackDeps, user: str, command: Command) -> CommandReply:
    if command.name == "help":
        intro = f"I don't know `{command.unknown}`.\n" if command.unknown else ""
        return CommandReply(intro + HELP)
    if needs_curator(command) and not await deps.auth.is_curator(user):
        await _audit_refusal(deps, user, command, "not a curator")
        return CommandReply(deps.auth.refusal(f"use `/brandvoice {command.name}`"))
    handler = HANDLERS[command.name]
    try:
        return await deps.in_session(lambda session: handler(session, deps, user, command.arg))
    except (RegistryError, OperationError) as exc:
        await _audit_refusal(deps, user, command, str(exc))
        return CommandReply(f"Cannot {command.name}: {exc}")


async def _audit_refusal(deps: SlackDeps, user: str, command: Command, reason: str) -> None:
    action = AUDITED_ACTIONS.get(command.name)
    if action is None:
        return
    target = command.arg or None if command.name in ("promote", "discard") else None
    if command.name == "schedule":
        target = "retrain_schedule"
    await deps.in_session(lambda session: record_refusal(session, user, action, target, reason))


def _status(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    settings = deps.settings
    window = timedelta(hours=settings.signal_window_hours)
    summary = status_summary(session, settings.retrain_schedule, settings.timezone, window)
    lines = []
    version = summary.promoted
    if version is None:
        lines.append(
            f"*In production:* the base model `{settings.base_model}` (nothing promoted yet)"
        )
    else:
        when = f" {slack_date(version.promoted_at)}" if version.promoted_at else ""
        report = report_of(version)
        highlights = report.highlights() if report is not None else {}
        scores = " · ".join(f"{k} {v:.3g}" for k, v in highlights.items())
        lines.append(
            f"*In production:* {version.name}, promoted by <@{version.promoted_by}>{when}"
            + (f" · {scores}" if scores else "")
        )
    since = f"since {slack_date(summary.signal.since)}" if summary.signal.since else "all time"
    lines.append(f"*With people* ({since}): {summary.signal.summary()}")
    lines.append("*Dataset:* " + _counts_line(summary.counts))
    run = summary.last_run
    if run is None:
        lines.append("*Last run:* none yet")
    else:
        lines.append(f"*Last run:* #{run.id} {run.status.value} {slack_date(run.created_at)}")
    if summary.next_run is None:
        lines.append("*Next retrain:* scheduled retrains are off")
    else:
        lines.append(
            f"*Next retrain:* {slack_date(summary.next_run)} (`{summary.schedule}`, {settings.timezone})"
        )
    return CommandReply("\n".join(lines))


def _counts_line(counts: dict[str, dict[str, int]]) -> str:
    status, source, split = counts["status"], counts["source"], counts["split"]
    approved = status.get("approved", 0)
    by_source = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(source.items()))
    text = f"{approved} approved" + (f" ({by_source})" if by_source else "")
    text += f", {status.get('pending', 0)} pending review"
    if split:
        text += f" · {split.get('train', 0)} train / {split.get('val', 0)} validation"
    return text


def _dataset(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    counts = example_counts(session)
    lines = ["*Dataset:* " + _counts_line(counts)]
    for kind in ("rejected", "retired"):
        if counts["status"].get(kind):
            lines.append(f"{counts['status'][kind]} {kind}")
    snapshot = latest_snapshot(session)
    if snapshot is not None:
        lines.append(
            f"*Latest snapshot:* #{snapshot.id} `{snapshot.content_hash[:12]}`, "
            f"{len(snapshot.example_ids)} examples, {slack_date(snapshot.created_at)}"
        )
    return CommandReply("\n".join(lines))


KNOWLEDGE_LISTED = 15


def _knowledge(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    docs = list_documents(session)
    if not docs:
        return CommandReply(
            "*Knowledge:* none yet. Add markdown or text files with `brandvoice knowledge add FILE…`."
        )
    chunks = sum(d.chunks for d in docs)
    lines = [f"*Knowledge:* {len(docs)} file(s), {chunks} chunk(s)"]
    for row in docs[:KNOWLEDGE_LISTED]:
        lines.append(
            f"• `{row.doc.name}` {row.doc.title} · {row.chunks} chunk(s) · "
            f"{slack_date(row.doc.created_at)}"
        )
    if len(docs) > KNOWLEDGE_LISTED:
        lines.append(f"…and {len(docs) - KNOWLEDGE_LISTED} more (`brandvoice knowledge list`)")
    return CommandReply("\n".join(lines))


def _train(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    force = arg.lower() == "force"
    if arg and not force:
        raise OperationError(f"`train` takes nothing or `force`, not `{arg}`")
    run = enqueue_training(session, user, backend=deps.settings.training_backend, force=force)
    note = (
        ""
        if force
        else f" It is skipped if fewer than {deps.settings.min_new_examples} approved examples "
        "are new; `/brandvoice train force` runs it anyway."
    )
    return CommandReply(f"<@{user}> queued retrain run #{run.id}.{note}", public=True)


def _generate(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    try:
        per_example = int(arg) if arg else deps.settings.synthetic_per_example
    except ValueError as exc:
        raise OperationError(f"`generate` takes a number of variations, not `{arg}`") from exc
    run = enqueue_generation(session, user, per_example)
    return CommandReply(
        f"<@{user}> queued run #{run.id}: {per_example} synthetic variations per approved example.",
        public=True,
    )


def _promote(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    version, changed = promote_version(session, arg, user)
    if not changed:
        return CommandReply(f"{version.name} is already in production; nothing changed.")
    return CommandReply(
        f"<@{user}> promoted *{version.name}*: it answers from now on.", public=True
    )


def _rollback(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    restored, demoted = rollback(session, user)
    now = restored.name if restored else f"the base model `{deps.settings.base_model}`"
    return CommandReply(
        f"<@{user}> rolled back *{demoted.name}*; {now} answers again.", public=True
    )


def _discard(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    version, changed = discard_version(session, arg, user)
    if not changed:
        return CommandReply(f"{version.name} was already discarded.")
    return CommandReply(f"<@{user}> discarded *{version.name}*.", public=True)


def _schedule(session: Session, deps: SlackDeps, user: str, arg: str) -> CommandReply:
    tz = deps.settings.timezone
    if not arg:
        cron = current_schedule(session, deps.settings.retrain_schedule)
        if cron == SCHEDULE_OFF:
            return CommandReply(
                "Scheduled retrains are off. `/brandvoice schedule CRON` turns them on."
            )
        upcoming = next_run_at(cron, tz)
        when = slack_date(upcoming) if upcoming else "never"
        return CommandReply(f"Retrains run on `{cron}` ({tz}); next {when}.")
    cron = set_schedule(session, arg, user, tz)
    if cron == SCHEDULE_OFF:
        return CommandReply(f"<@{user}> turned scheduled retrains off.", public=True)
    upcoming = next_run_at(cron, tz)
    when = slack_date(upcoming) if upcoming else "never"
    return CommandReply(f"<@{user}> set retrains to `{cron}` ({tz}); next {when}.", public=True)


HANDLERS = {
    "status": _status,
    "dataset": _dataset,
    "knowledge": _knowledge,
    "train": _train,
    "generate": _generate,
    "promote": _promote,
    "rollback": _rollback,
    "discard": _discard,
    "schedule": _schedule,
}
