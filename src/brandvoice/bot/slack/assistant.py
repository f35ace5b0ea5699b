"""Slack's AI app split view (the assistant container), through Bolt's ``Assistant`` middleware.

A new assistant thread gets a greeting and suggested prompts: the configured ones, or else the
team's most recent approved requests, so people see what the bot is good at. A message in the
thread is answered like any question, with the thread's loading status shown while the model
writes, and the thread is titled after its first request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError
from sqlmodel import Session, col, select

from brandvoice.bot.slack.blocks import truncate
from brandvoice.bot.slack.client import log_slack_error
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.replies import answer_question, question_from_event
from brandvoice.store.feedback import claim_event
from brandvoice.store.models import Example, ExampleSource, ExampleStatus

log = logging.getLogger(__name__)

MAX_PROMPTS = 4
TITLE_LIMIT = 60
PROMPT_TITLE_LIMIT = 40


def recent_approved_requests(session: Session, limit: int = MAX_PROMPTS) -> list[str]:
    """The last question of the newest approved real (not synthetic) examples, distinct."""
    query = (
        select(Example)
        .where(Example.status == ExampleStatus.APPROVED)
        .where(Example.source != ExampleSource.SYNTHETIC)
        .order_by(col(Example.created_at).desc(), col(Example.id).desc())
        .limit(limit * 5)
    )
    requests: list[str] = []
    for example in session.exec(query):
        asked = [m.get("content") for m in example.messages if m.get("role") == "user"]
        text = str(asked[-1] or "").strip() if asked else ""
        if text and text not in requests:
            requests.append(text)
        if len(requests) == limit:
            break
    return requests


def suggested_prompts(configured: str, approved_requests: Sequence[str]) -> list[dict[str, str]]:
    """Prompts for a new thread: ``configured`` ('|'-separated) if set, else approved requests."""
    chosen = [p.strip() for p in configured.split("|") if p.strip()] or list(approved_requests)
    return [
        {"title": truncate(text, PROMPT_TITLE_LIMIT), "message": text}
        for text in chosen[:MAX_PROMPTS]
    ]


def thread_title(question: str) -> str:
    return truncate(" ".join(question.split()), TITLE_LIMIT)


async def start_thread(
    deps: SlackDeps,
    say: Callable[..., Awaitable[Any]],
    set_suggested_prompts: Callable[..., Awaitable[Any]],
) -> None:
    """Greet, then offer prompts (none when there is nothing to suggest yet)."""
    await say(deps.settings.assistant_greeting)
    requests = await deps.in_session(recent_approved_requests)
    prompts = suggested_prompts(deps.settings.assistant_prompts, requests)
    if not prompts:
        return
    try:
        await set_suggested_prompts(prompts=prompts, title="Ask me, for example:")
    except SlackApiError as exc:
        log_slack_error("assistant.threads.setSuggestedPrompts", None, exc)


async def answer_in_thread(
    deps: SlackDeps,
    event: dict[str, Any],
    context: AsyncBoltContext,
    set_status: Callable[..., Awaitable[Any]],
) -> None:
    """Answer with the loading status shown; the first request titles the thread."""
    question = question_from_event(event, context.bot_user_id)
    if question is None:
        return
    key = f"title:{question.channel}:{question.reply_thread_ts}"
    if await deps.in_session(lambda s: claim_event(s, key)):
        try:
            await deps.client.assistant_threads_setTitle(
                channel_id=question.channel,
                thread_ts=question.reply_thread_ts,
                title=thread_title(question.text),
            )
        except SlackApiError as exc:
            log_slack_error("assistant.threads.setTitle", question.channel, exc)
    await answer_question(
        deps, question, context.bot_user_id, team_id=context.team_id, set_status=set_status
    )


def build_assistant(deps: SlackDeps) -> AsyncAssistant:
    assistant = AsyncAssistant(logger=logging.getLogger("brandvoice.bot.slack.bolt"))

    @assistant.thread_started
    async def thread_started(
        say: Callable[..., Awaitable[Any]],
        set_suggested_prompts: Callable[..., Awaitable[Any]],
    ) -> None:
        await start_thread(deps, say, set_suggested_prompts)

    @assistant.user_message
    async def user_message(
        event: dict[str, Any],
        context: AsyncBoltContext,
        set_status: Callable[..., Awaitable[Any]],
    ) -> None:
        await answer_in_thread(deps, event, context, set_status)

    return assistant
