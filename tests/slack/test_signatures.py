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


GARBAGE = [
    pytest.param(b"this is not json", "application/json", id="not-json"),
    pytest.param(b'{"type": "event_callback", "event": ', "application/json", id="truncated-json"),
    pytest.param(b'[{"type": "event_callback"}]', "application/json", id="json-array"),
    pytest.param(b'"event_callback"', "application/json", id="json-string"),
    pytest.param(b"payload=%7Bnot-json", "application/x-www-form-urlencoded", id="form-not-json"),
    pytest.param(b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded", id="form-array"),
    pytest.param(
        b'{"type": "event_callback", "event": ["reaction_added"]}',
        "application/json",
        id="event-not-object",
    ),
    pytest.param(
        b'{"type": "block_actions", "actions": "promote", "user": "U1"}',
        "application/json",
        id="actions-not-list",
    ),
    pytest.param(
        b'{"type": "view_submission", "view": {"callback_id": ["improve_reply"]}}',
        "application/json",
        id="view-without-type",
    ),
    pytest.param(
        b'{"type": "event_callback", "event": {"type": "reaction_added", "user": "U1",'
        b' "reaction": "+1", "item": {"type": "message", "channel": 1, "ts": null}}}',
        "application/json",
        id="item-channel-not-string",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), GARBAGE)
async def test_an_unsigned_garbage_body_is_rejected_before_it_is_parsed(slack, body, content_type):
    response = await slack.post(body, content_type, signature="v0=" + "0" * 64)
    await slack.settle()
    assert response.status_code == 401
    assert "Traceback" not in response.text
    assert slack.api.calls == []


@pytest.mark.parametrize(("body", "content_type"), GARBAGE)
async def test_a_signed_garbage_body_gets_a_clear_400(slack, body, content_type):
    response = await slack.post(body, content_type)
    await slack.settle()
    assert response.status_code == 400
    assert response.json()["error"].startswith("the request body")
    assert slack.api.calls == []


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_body_that_is_not_utf8_cannot_be_verified_and_gets_400(slack, signed):
    body = b'{"type": "event_callback", "event": {"text": "\xff\xfe"}}'
    response = await slack.post(body, "application/json", signature=None if signed else "v0=0")
    await slack.settle()
    assert response.status_code == 400
    assert response.json() == {"error": "the request body is not UTF-8 (byte 46)"}
    assert slack.api.calls == []


@pytest.mark.parametrize("stamp", ["", "soon", "-1"], ids=["missing", "word", "negative"])
async def test_a_timestamp_that_is_not_a_number_is_rejected(slack, stamp):
    body = mention_body(slack)
    response = await slack.http.post(
        "/slack/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(body, stamp),
        },
    )
    await slack.settle()
    assert response.status_code == 401
    assert slack.api.calls == []
