"""The app manifest asks for what the code uses: the same ids, events and scopes."""

from __future__ import annotations

from pathlib import Path

import yaml

from brandvoice.bot.slack.blocks import CORRECTION_SHORTCUT
from brandvoice.bot.slack.commands import COMMAND

MANIFEST = yaml.safe_load((Path(__file__).parents[2] / "slack-manifest.yml").read_text())
EVENTS_URL = "https://brandvoice.example.com/slack/events"


def test_everything_arrives_at_one_url():
    settings = MANIFEST["settings"]
    assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
    assert [c["url"] for c in MANIFEST["features"]["slash_commands"]] == [EVENTS_URL]


def test_the_command_shortcut_and_events_match_the_listeners():
    features = MANIFEST["features"]
    assert [c["command"] for c in features["slash_commands"]] == [COMMAND]
    assert [(s["type"], s["callback_id"]) for s in features["shortcuts"]] == [
        ("message", CORRECTION_SHORTCUT)
    ]
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert events == {
        "app_mention",
        "assistant_thread_started",
        "assistant_thread_context_changed",
        "message.im",
        "reaction_added",
        "reaction_removed",
    }
    assert "assistant_view" in features


def test_the_bot_has_the_scopes_of_the_methods_it_calls():
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    needed = {
        "chat.postMessage": "chat:write",
        "chat.startStream": "chat:write",
        "assistant.threads.setSuggestedPrompts": "assistant:write",
        "assistant.threads.setTitle": "assistant:write",
        "conversations.replies": "channels:history",
        "reactions.add": "reactions:write",
        "usergroups.users.list": "usergroups:read",
        "app_mention": "app_mentions:read",
        "message.im": "im:history",
        "reaction_added": "reactions:read",
        "/brandvoice": "commands",
    }
    assert set(needed.values()) <= scopes
