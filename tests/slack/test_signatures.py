"""Only requests signed by Slack, recently, reach the listeners."""

from __future__ import annotations

import json
import time

import pytest

from tests.slack.conftest import ALICE, BOT, CHANNEL, sign

pytestmark = pytest.mark.anyio


def mention_body(slack) -> bytes:
    ts = slack.new_ts()
    event = {
        "type": "app_mention",
        "user": ALICE,
        "text": f"<@{BOT}> hi",
        "ts": ts,
        "channel": CHANNEL,
    }
    return json.dumps(slack.envelope(event)).encode()


async def test_a_signed_event_is_accepted(slack):
    response = await slack.post(mention_body(slack), "application/json")
    await slack.settle()
    assert response.status_code == 200
    assert len(slack.api.calls_to("chat.stopStream")) == 1


async def test_a_wrong_secret_is_rejected(slack):
    body = mention_body(slack)
    stamp = str(int(time.time()))
    response = await slack.post(
        body,
        "application/json",
        timestamp=int(stamp),
        signature=sign(body, stamp, "not-the-secret"),
    )
    await slack.settle()
    assert response.status_code == 401
    assert slack.api.calls == []


async def test_a_tampered_body_is_rejected(slack):
    body = mention_body(slack)
    stamp = str(int(time.time()))
    signature = sign(body, stamp)
    tampered = body.replace(b"hi", b"delete everything")
    response = await slack.post(
        tampered, "application/json", timestamp=int(stamp), signature=signature
    )
    await slack.settle()
    assert response.status_code == 401
    assert slack.api.calls == []


async def test_a_stale_request_is_rejected_even_with_a_valid_signature(slack):
    body = mention_body(slack)
    stale = int(time.time()) - 6 * 60
    response = await slack.post(body, "application/json", timestamp=stale)
    await slack.settle()
    assert response.status_code == 401
    assert slack.api.calls == []


async def test_a_form_encoded_command_with_a_bad_signature_is_rejected(slack):
    body = b"command=%2Fbrandvoice&text=rollback&user_id=U0CURATOR&team_id=T1"
    response = await slack.post(
        body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64
    )
    await slack.settle()
    assert response.status_code == 401
    assert slack.responses() == []


async def test_url_verification_answers_the_challenge(slack):
    body = json.dumps(
        {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    ).encode()
    response = await slack.post(body, "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_health_answers_without_slack(slack):
    response = await slack.http.get("/healthz")
    assert response.status_code == 200
