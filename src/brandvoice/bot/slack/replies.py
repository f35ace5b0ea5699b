"""Answering a mention or a DM: thread context, the promoted model, the reply streamed as written.

Each triggering message is claimed once in the store, so the same question delivered as
``app_mention`` and as ``message``, or retried by Slack, is answered once. The finished reply
carries its curation hint, feedback buttons and metadata naming the interaction. Before the model
writes, the team knowledge most relevant to the question goes into the prompt; the reply then
shows those sources in one line, and the interaction and the message metadata record them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from brandvoice.bot.knowledge import Retrieved, sources_line
from brandvoice.bot.slack.blocks import build_reply_footer, curation_hint, reply_metadata
from brandvoice.bot.slack.client import log_slack_error, thread_messages
from brandvoice.bot.slack.deps import ActiveModel, SlackDeps
from brandvoice.bot.slack.reply_stream import PLACEHOLDER, ReplyStream, ReplyUndeliverable
from brandvoice.inference.chat import ChatDelta, ChatResult, Sampling, collect_deltas
from brandvoice.inference.tokens import count_chat_tokens
from brandvoice.store.feedback import claim_event, record_interaction

log = logging.getLogger(__name__)

__all__ = ["PLACEHOLDER", "Question", "answer_question", "question_from_event"]

FAILURE = "Sorry, I could not write a reply just now. Please try again in a moment."
_MENTION = re.compile(r"<@(\w+)(?:\|[^>]*)?>")
LOADING_MESSAGES = ["Thinking in the team's voice…", "Writing a reply…"]

SetStatus = Callable[..., Awaitable[Any]]
"""Bolt's ``set_status`` of an assistant thread (``assistant.threads.setStatus``)."""


@dataclass(frozen=True)
class Question:
    channel: str
    ts: str
    reply_thread_ts: str
    """Where the answer goes: the question's thread, or a new thread under it."""
    in_thread: bool
    user: str
    text: str


def question_from_event(event: Mapping[str, Any], bot_user_id: str | None) -> Question | None:
    """The question in an ``app_mention`` or ``message`` event, or None when there is nothing to answer.

    Edits, deletions, other subtypes and bot messages are ignored; a channel ``message`` is only
    a question when it mentions the bot (it then also arrives as ``app_mention``).
    """
    if event.get("subtype") or event.get("bot_id") or not event.get("user"):
        return None
    if event.get("user") == bot_user_id:
        return None
    text = event.get("text") or ""
    mentioned = bot_user_id is not None and f"<@{bot_user_id}" in text
    if event.get("type") == "message" and event.get("channel_type") != "im" and not mentioned:
        return None
    question = strip_mention(text, bot_user_id)
    if not question:
        return None
    thread_ts = event.get("thread_ts")
    return Question(
        channel=event["channel"],
        ts=event["ts"],
        reply_thread_ts=thread_ts or event["ts"],
        in_thread=bool(thread_ts and thread_ts != event["ts"]),
        user=event["user"],
        text=question,
    )


def strip_mention(text: str, bot_user_id: str | None) -> str:
    def replace(match: re.Match[str]) -> str:
        return "" if match.group(1) == bot_user_id else match.group(0)

    return _MENTION.sub(replace, text).strip()


def thread_to_messages(
    thread: Sequence[Mapping[str, Any]], question: Question, bot_user_id: str | None
) -> list[dict[str, str]]:
    """The thread up to the question as chat turns: the bot's messages are the assistant's."""
    turns: list[dict[str, str]] = []
    for message in thread:
        if float(message.get("ts", "0")) >= float(question.ts):
            continue
        from_bot = bool(message.get("bot_id")) or message.get("user") == bot_user_id
        text = strip_mention(message.get("text") or "", bot_user_id)
        if text and text != PLACEHOLDER:
            turns.append({"role": "assistant" if from_bot else "user", "content": text})
    turns.append({"role": "user", "content": question.text})
    return turns


def fit_to_budget(
    system_prompt: str,
    turns: Sequence[dict[str, str]],
    budget: int,
    count: Callable[[Sequence[Mapping[str, object]]], int] = count_chat_tokens,
) -> list[dict[str, str]]:
    """System prompt plus the most recent turns that fit ``budget`` tokens; the question always stays."""
    system = {"role": "system", "content": system_prompt}
    kept: list[dict[str, str]] = [dict(turns[-1])]
    for turn in reversed(turns[:-1]):
        if count([system, dict(turn), *kept]) > budget:
            break
        kept.insert(0, dict(turn))
    return [system, *kept]


async def answer_question(
    deps: SlackDeps,
    question: Question,
    bot_user_id: str | None,
    *,
    team_id: str | None = None,
    set_status: SetStatus | None = None,
) -> None:
    """Claim the question, stream the model's reply into its thread, record it, finish it."""
    key = f"reply:{question.channel}:{question.ts}"
    if not await deps.in_session(lambda s: claim_event(s, key)):
        log.info("already answered %s/%s; ignoring the repeat", question.channel, question.ts)
        return
    reply = ReplyStream(
        deps.client,
        question.channel,
        question.reply_thread_ts,
        recipient_user_id=question.user,
        recipient_team_id=team_id,
        streaming=deps.settings.slack_streaming,
    )
    if not await reply.start():
        return
    if set_status is not None:
        await _show_status(set_status, "is writing a reply…", LOADING_MESSAGES)
    thread = (
        await thread_messages(deps.client, question.channel, question.reply_thread_ts)
        if question.in_thread
        else []
    )
    prompt = fit_to_budget(
        deps.settings.system_prompt,
        thread_to_messages(thread, question, bot_user_id),
        deps.settings.context_token_budget,
    )
    started = time.monotonic()
    retrieved = await retrieve(deps, prompt)
    try:
        active, result = await generate_reply(deps, retrieved.messages, reply)
        message_ts = await reply.message_ts()
    except ReplyUndeliverable:
        log.warning("no reply could be posted in %s; stopped generating", question.channel)
        return
    except Exception:
        log.exception("the model failed to answer %s/%s", question.channel, question.ts)
        await reply.fail(FAILURE)
        return
    finally:
        if set_status is not None:
            await _show_status(set_status, "")
    if message_ts is None:
        return
    text = result.text or "…"
    interaction = await deps.in_session(
        lambda s: record_interaction(
            s,
            channel=question.channel,
            thread_ts=question.reply_thread_ts,
            message_ts=message_ts,
            asker=question.user,
            prompt_messages=prompt,
            reply=text,
            model_version_id=active.version_id,
            latency_ms=int((time.monotonic() - started) * 1000),
            retrieved=retrieved.sources,
        )
    )
    assert interaction.id is not None
    settings = deps.settings
    hint = curation_hint(settings.approval_reaction, settings.approval_quorum, active.label)
    footer = build_reply_footer(hint, interaction.id, sources_line(retrieved.hits))
    sources = [f"{hit.kind}:{hit.id}" for hit in retrieved.hits]
    await reply.finish(
        footer,
        reply_metadata(interaction.id, active.version_name, sources),
        extra="" if result.text else "…",
    )


async def retrieve(deps: SlackDeps, prompt: list[dict[str, str]]) -> Retrieved:
    """The prompt with the team knowledge for its question (unchanged without any), retrieved on
    a worker thread; ``prompt`` itself is what the interaction records."""
    if deps.knowledge is None:
        return Retrieved([dict(m) for m in prompt])
    return await asyncio.to_thread(deps.knowledge.augment_or_plain, deps.engine, prompt)


async def generate_reply(
    deps: SlackDeps, prompt: list[dict[str, Any]], reply: ReplyStream
) -> tuple[ActiveModel, ChatResult]:
    """The model in production answers ``prompt``; each piece goes to ``reply`` as it arrives."""
    settings = deps.settings
    sampling = Sampling(
        temperature=settings.reply_temperature, max_tokens=settings.reply_max_tokens
    )
    active = await asyncio.to_thread(deps.chat_provider)
    deltas: list[ChatDelta] = []
    async with aclosing(active.backend.stream(prompt, sampling)) as stream:
        async for delta in stream:
            deltas.append(delta)
            if delta.text:
                await reply.add(delta.text)
    return active, collect_deltas(deltas, active.backend.model_name)


async def _show_status(
    set_status: SetStatus, status: str, loading: list[str] | None = None
) -> None:
    """The assistant thread's loading state; a refusal is logged, the reply goes on regardless."""
    try:
        await set_status(status, loading_messages=loading)
    except SlackApiError as exc:
        log_slack_error("assistant.threads.setStatus", None, exc)
