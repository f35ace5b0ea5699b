"""Only the workspace (or, configured so, the org) and the app the bot token belongs to are served.

Requests arrive correctly signed: the app's signing secret signs every installation's events, so
a valid signature alone does not say the request is for the installation the token acts in.
"""

from __future__ import annotations

import json
import logging

import pytest
from sqlmodel import select

from brandvoice.bot.slack.auth import Installation, foreign_request
from brandvoice.store.db import session_scope
from brandvoice.store.models import FeedbackVote, Interaction, TrainingRun
from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.conftest import ALICE, BOT, CHANNEL, CURATOR, harness, make_settings

pytestmark = pytest.mark.anyio


def mention(slack, text: str = "hello") -> dict:
    ts = slack.new_ts()
    return {
        "type": "app_mention",
        "user": ALICE,
        "text": f"<@{BOT}> {text}",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }


def replies_started(api: FakeSlackAPI) -> int:
    """Replies the bot began, streamed or posted."""
    return len(api.calls_to("chat.startStream")) + len(api.calls_to("chat.postMessage"))


def rows(engine, table) -> list:
    with session_scope(engine) as session:
        return list(session.exec(select(table)))


@pytest.mark.parametrize(
    "installation",
    [
        pytest.param({"team_id": "T0OTHER"}, id="other-workspace"),
        pytest.param({"app_id": "A0OTHER"}, id="other-app"),
        pytest.param({"team_id": None, "enterprise_id": "E1", "org_install": True}, id="org"),
    ],
)
async def test_an_event_for_another_installation_is_acknowledged_and_dropped(
    slack, engine, caplog, installation
):
    with caplog.at_level(logging.WARNING):
        response = await slack.event(mention(slack), **installation)
        await slack.settle()
    assert response.status_code == 200  # so Slack neither retries nor counts it as a failure
    assert replies_started(slack.api) == 0
    assert rows(engine, Interaction) == []
    assert "refused a Slack event_callback" in caplog.text


async def test_a_reaction_from_another_workspace_casts_no_vote(slack, engine):
    await slack.mention("hello")
    reply_ts = slack.last_reply()["ts"]
    event = {
        "type": "reaction_added",
        "user": "U0STRANGER",
        "reaction": "+1",
        "item": {"type": "message", "channel": CHANNEL, "ts": reply_ts},
        "event_ts": slack.new_ts(),
    }
    assert (await slack.event(event, team_id="T0OTHER")).status_code == 200
    await slack.settle()
    assert rows(engine, FeedbackVote) == []
    assert (await slack.event(event)).status_code == 200  # the same from home counts
    await slack.settle()
    assert len(rows(engine, FeedbackVote)) == 1


async def test_a_command_from_another_workspace_is_refused(slack, engine):
    response = await slack.command("train", user=CURATOR, team_id="T0OTHER")
    assert response.status_code == 403
    assert "workspace T0OTHER is not the installed workspace T1" in response.json()["error"]
    assert slack.responses() == []
    assert rows(engine, TrainingRun) == []


async def test_an_event_in_a_channel_shared_with_another_org_is_served(slack, engine):
    """Slack Connect: the envelope names the other org's workspace, ``authorizations`` ours."""
    envelope = slack.envelope(mention(slack))
    envelope["team_id"] = "T0PARTNER"
    envelope["is_ext_shared_channel"] = True
    response = await slack.post(json.dumps(envelope).encode(), "application/json")
    await slack.settle()
    assert response.status_code == 200
    assert replies_started(slack.api) == 1


async def test_an_org_install_serves_every_workspace_of_its_org_when_configured(engine, model):
    with FakeSlackAPI(bot_user_id=BOT, team_id=None, enterprise_id="E1") as api:
        settings = make_settings(api, slack_org_install=True)
        async with harness(settings, engine, api, model) as slack:
            await slack.event(
                mention(slack, "from T7"), team_id="T7", enterprise_id="E1", org_install=True
            )
            await slack.settle()
            assert len(rows(engine, Interaction)) == 1
            await slack.event(
                mention(slack, "from E2"), team_id="T8", enterprise_id="E2", org_install=True
            )
            await slack.settle()
            assert len(rows(engine, Interaction)) == 1


async def test_an_org_token_without_the_setting_serves_nothing_and_says_why(engine, model, caplog):
    with FakeSlackAPI(bot_user_id=BOT, team_id=None, enterprise_id="E1") as api:
        async with harness(make_settings(api), engine, api, model) as slack:
            with caplog.at_level(logging.WARNING):
                await slack.event(
                    mention(slack), team_id="T7", enterprise_id="E1", org_install=True
                )
                await slack.settle()
    assert replies_started(api) == 0
    assert "set SLACK_ORG_INSTALL=true" in caplog.text


HOME = Installation(team_id="T1", enterprise_id=None, app_id="A1")
ORG = Installation(team_id=None, enterprise_id="E1", app_id="A1", is_enterprise_install=True)


@pytest.mark.parametrize(
    ("installed", "org_install", "request_ids", "refused"),
    [
        (HOME, False, ("T1", None, "A1"), False),
        (HOME, False, ("T1", None, None), False),  # slash commands carry no enterprise
        (HOME, False, ("T2", None, "A1"), True),
        (HOME, False, (None, None, "A1"), True),
        (HOME, False, ("T1", None, "A2"), True),
        (HOME, True, ("T1", None, "A1"), True),  # the setting needs an org token
        (ORG, True, ("T7", "E1", "A1"), False),
        (ORG, True, (None, "E1", "A1"), False),
        (ORG, True, ("T7", "E2", "A1"), True),
        (ORG, False, ("T7", "E1", "A1"), True),
        (Installation("T1", None, None), False, ("T1", None, "A9"), False),  # app id unknown
    ],
)
def test_which_requests_belong_to_the_installation(installed, org_install, request_ids, refused):
    team_id, enterprise_id, app_id = request_ids
    reason = foreign_request(
        installed,
        org_install=org_install,
        team_id=team_id,
        enterprise_id=enterprise_id,
        app_id=app_id,
    )
    assert (reason is not None) == refused, reason
