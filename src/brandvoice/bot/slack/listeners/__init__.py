"""Bolt listeners, grouped by what they react to; each parses a payload and calls a plain function.

Slow work runs in lazy listeners: Bolt acknowledges Slack first, then runs them.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from brandvoice.bot.slack.assistant import build_assistant
from brandvoice.bot.slack.deps import SlackDeps
from brandvoice.bot.slack.listeners import actions, commands, events, reactions, shortcuts, views


def register_listeners(app: AsyncApp, deps: SlackDeps) -> None:
    # Messages in assistant threads stop in this middleware; other messages go on to ``events``.
    app.assistant(build_assistant(deps))
    for group in (events, reactions, commands, shortcuts, actions, views):
        group.register(app, deps)
