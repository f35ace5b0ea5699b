"""``POST /slack/events``: the signature is checked before a byte of the body is parsed.

Bolt's own HTTP adapter parses the body first (a non-JSON body or a JSON array then ends in a
500 and a traceback, signed or not). Here an unsigned or stale request gets 401 untouched, and a
signed body that is not a Slack payload gets 400 saying what is wrong; only well-formed, signed
payloads reach Bolt (whose own, second signature check is therefore off).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

OBJECT_FIELDS = ("event", "user", "view", "message", "container", "channel")
"""Envelope fields that Bolt reads as objects when present."""


class MalformedPayload(ValueError):
    """A signed request whose body is not a Slack payload."""


def refuse(status: int, reason: str) -> JSONResponse:
    log.warning("refused a Slack request (%s): %s", status, reason)
    return JSONResponse({"error": reason}, status_code=status)


def parse_payload(body: str, content_type: str | None) -> dict[str, Any]:
    """The payload in a signed body (JSON, form or ``payload=`` form), or MalformedPayload."""
    try:
        payload = parse_body(body, content_type)
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedPayload(
            f"the request body must be a JSON object, not a JSON {type(payload).__name__}"
        )
    check_shape(payload)
    return payload


def check_shape(payload: Mapping[str, Any]) -> None:
    """Refuse the shapes Bolt's matchers or our listeners would crash on.

    Slack's payloads always have these types; a signed body without them is a broken client.
    """
    for name in OBJECT_FIELDS:
        value = payload.get(name)
        if value is not None and not isinstance(value, dict) and not _plain_id(name, value):
            raise MalformedPayload(f"the request body's {name!r} must be an object")
    _strings(payload, "", ("type", "team_id", "api_app_id", "event_id", "callback_id"))
    if payload.get("type") == "event_callback" and not isinstance(payload.get("event"), dict):
        raise MalformedPayload("the request body's 'event' must be an object")
    event = payload.get("event")
    if isinstance(event, dict):
        _strings(event, "event.", EVENT_STRINGS)
        if event.get("item") is not None:
            if not isinstance(event["item"], dict):
                raise MalformedPayload("the request body's 'event.item' must be an object")
            _strings(event["item"], "event.item.", ("type", "channel", "ts"))
    view = payload.get("view")
    if isinstance(view, dict):
        if not isinstance(view.get("type"), str):
            raise MalformedPayload("the request body's 'view.type' must be a string")
        _strings(view, "view.", ("callback_id", "private_metadata", "id"))
    team = payload.get("team")
    if team is not None and not isinstance(team, dict | str):
        raise MalformedPayload("the request body's 'team' must be an object or an id")
    for name in ("actions", "authorizations"):
        items = payload.get(name)
        if items is not None and not (
            isinstance(items, list) and all(isinstance(item, dict) for item in items)
        ):
            raise MalformedPayload(f"the request body's {name!r} must be a list of objects")
    for action in payload.get("actions") or ():
        _strings(action, "actions[].", ("action_id", "block_id", "value", "type"))


EVENT_STRINGS = ("type", "subtype", "user", "channel", "ts", "thread_ts", "event_ts", "text")
EVENT_STRINGS += ("reaction", "channel_type", "bot_id")


def _strings(obj: Mapping[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise MalformedPayload(f"the request body's {where + key!r} must be a string")


def _plain_id(name: str, value: Any) -> bool:
    """Slash commands and some events carry ``user``/``channel`` as plain id strings."""
    return name in ("user", "channel") and isinstance(value, str)


def media_type(content_type: str | None) -> str | None:
    """``application/json; charset=utf-8`` -> ``application/json``, as Bolt compares it."""
    return content_type.split(";", 1)[0].strip().lower() if content_type else None


class SlackEndpoint:
    """Verify, parse, then dispatch to the Bolt app; one per web app."""

    def __init__(self, app: AsyncApp, signing_secret: str):
        self.app = app
        self.verifier = SignatureVerifier(signing_secret)

    def signed(self, body: str, headers: Mapping[str, str]) -> bool:
        timestamp = headers.get("x-slack-request-timestamp", "")
        if not timestamp.isascii() or not timestamp.isdigit():
            return False
        return self.verifier.is_valid(body, timestamp, headers.get("x-slack-signature", ""))

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        headers = request.headers
        try:
            # Slack signs text: a body that is not UTF-8 cannot be verified, so it is refused unread.
            body = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return refuse(400, f"the request body is not UTF-8 (byte {exc.start})")
        if not self.signed(body, headers):
            return JSONResponse({"error": "invalid or stale signature"}, status_code=401)
        try:
            parse_payload(body, media_type(headers.get("content-type")))
        except MalformedPayload as exc:
            return refuse(400, str(exc))
        bolt_request = AsyncBoltRequest(
            body=body,
            query=request.query_params,  # type: ignore[arg-type]
            headers=headers,  # type: ignore[arg-type]
        )
        return to_starlette_response(await self.app.async_dispatch(bolt_request))
