"""Served requests for the claims check: recent traffic that no example teaches, redacted."""

from __future__ import annotations

from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.feedback import record_interaction, served_requests
from brandvoice.store.models import ExampleSource

SYSTEM = {"role": "system", "content": "You are the Pebble & Pine assistant."}


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def test_newest_first_one_per_request_without_requests_an_example_holds(engine, count_tokens):
    asked = [
        "When does my tent ship?",
        "Do you ship to Canada?",
        "When does my tent ship?",
        "Can I return boots?",
        "Write back to jo@example.com about the strap.",
    ]
    with session_scope(engine) as session:
        taught = [*ask("Can I return boots?"), {"role": "assistant", "content": "Yes, 60 days."}]
        add_examples(session, [NewExample(taught, ExampleSource.IMPORT)], count_tokens)
        for i, text in enumerate(asked):
            record_interaction(
                session, channel="C1", message_ts=f"1.{i}", prompt_messages=ask(text), reply="ok"
            )

    with session_scope(engine) as session:
        found = served_requests(session, limit=10)
        two = served_requests(session, limit=2)
        none = served_requests(session, limit=0)

    requests = [p[-1]["content"] for p in found]
    assert requests[1:] == ["When does my tent ship?", "Do you ship to Canada?"]
    assert "jo@example.com" not in requests[0] and "about the strap" in requests[0]
    assert all(p[0] == SYSTEM for p in found)
    assert two == found[:2] and none == []
