"""REDACT_ALLOW reaches the Slack paths: the team's own address survives an approval."""

from __future__ import annotations

import pytest
from sqlmodel import select

from brandvoice.bot.settings import Settings
from brandvoice.store.db import session_scope
from brandvoice.store.models import Example
from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.conftest import CURATOR, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(slack_api: FakeSlackAPI) -> Settings:
    return make_settings(slack_api, redact_allow="acme.example")


async def test_an_approved_reply_keeps_the_allowed_domain_and_redacts_the_rest(slack, engine):
    slack.model.next_reply = "Write to help@acme.example, not to ana.perez@gmail.com."
    await slack.mention("Where do I send a return?")
    reply_ts = slack.last_reply()["ts"]
    await slack.react("white_check_mark", reply_ts, user=CURATOR)
    with session_scope(engine) as session:
        [example] = session.exec(select(Example)).all()
    assert example.messages[-1]["content"] == "Write to help@acme.example, not to <EMAIL>."
    assert example.redactions == {"EMAIL": 1, "allowed": 1}
