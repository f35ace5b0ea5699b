"""A loopback server that speaks the Slack Web API's wire format, for driving the real ``slack_sdk``.

It listens on a random port, records every call with its parsed body (form, JSON or query string),
and answers the methods brandvoice uses the way Slack does: ``{"ok": true, ...}`` with HTTP 200,
``{"ok": false, "error": "..."}`` for refusals (``not_in_channel``, ``msg_too_long``,
``invalid_blocks``, ``already_reacted``), and ``429`` with ``Retry-After`` when scripted. Messages
posted through it are kept so ``conversations.replies`` can return a thread. ``POST /response/...``
stands in for the ``response_url`` of commands and interactions.

The AI-app methods answer as Slack documents them: ``chat.startStream`` (a thread reply; channels
need ``recipient_user_id`` and ``recipient_team_id``), ``chat.appendStream`` and
``chat.stopStream`` (``message_not_in_streaming_state`` once stopped, ``invalid_chunks`` for a
chunk that is not a non-empty ``markdown_text`` of at most 12,000 characters), and
``assistant.threads.setStatus``/``setSuggestedPrompts``/``setTitle``. Blocks are checked against
Block Kit's rules for ``context_actions`` (``feedback_buttons`` and ``icon_button`` only, at most 5).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSON_FIELDS = (
    "blocks",
    "attachments",
    "metadata",
    "view",
    "chunks",
    "prompts",
    "loading_messages",
)
SECTION_TEXT_LIMIT = 3000
TEXT_LIMIT = 40_000
MARKDOWN_LIMIT = 12_000
CHUNK_TYPES = {"markdown_text", "task_update", "plan_update", "blocks"}
ICONS = {"trash"}
"""Icons an ``icon_button`` may show: Slack documents ``trash`` as the only one available."""


class KeepAliveServer(ThreadingHTTPServer):
    """Slack's API keeps connections open and never refuses one for a full accept queue; the
    standard library's server keeps 5 waiting, and ``server_close`` would wait for idle clients."""

    request_queue_size = 1024
    block_on_close = False


@dataclass(frozen=True)
class SlackCall:
    method: str
    """Web API method (``chat.postMessage``) or ``response_url`` for response URL posts."""
    body: dict[str, Any]
    """Parsed form, JSON or query parameters; JSON-valued form fields (blocks, view...) decoded."""
    headers: dict[str, str]
    status: int
    answer: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the call arrived (benchmarks time replies by it)."""


@dataclass
class Scripted:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlackAPI:
    """``with FakeSlackAPI() as slack:`` then point ``base_url`` at ``slack.api_url``.

    The bot token belongs to workspace ``team_id`` of app ``app_id``; an org-wide install has an
    ``enterprise_id`` and no ``team_id``.
    """

    def __init__(
        self,
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        team_id: str | None = "T1",
        app_id: str = "A1",
        enterprise_id: str | None = None,
    ):
        self.bot_user_id, self.bot_id, self.team_id = bot_user_id, bot_id, team_id
        self.app_id, self.enterprise_id = app_id, enterprise_id
        self.calls: list[SlackCall] = []
        self.not_in_channels: set[str] = set()
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._scripted: dict[str, deque[Scripted]] = defaultdict(deque)
        self._reactions: set[tuple[str, str, str]] = set()
        self._ts = itertools.count(1)
        self.streams: dict[str, dict[str, Any]] = {}
        """Streamed messages by ts: ``channel``, ``thread_ts``, ``text`` so far, ``state``."""
        self.statuses: list[dict[str, Any]] = []
        self.titles: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._server = KeepAliveServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    def __enter__(self) -> FakeSlackAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- scripting and inspection ------------------------------------------------------------

    def script(self, method: str, *answers: Scripted) -> None:
        """Answer the next calls to ``method`` with these, before the normal behaviour resumes."""
        self._scripted[method].extend(answers)

    def rate_limit_once(self, method: str, retry_after: int = 0) -> None:
        self.script(
            method,
            Scripted(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}),
        )

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Poll until ``method`` was called ``count`` times (for work Slack does not wait on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls_to(method)
            if len(calls) >= count:
                return calls
            time.sleep(0.02)
        raise AssertionError(
            f"{method} called {len(self.calls_to(method))} times, expected {count}; "
            f"calls so far: {[c.method for c in self.calls]}"
        )

    def first_streamed_text(self) -> SlackCall | None:
        """The first call that put reply text on screen: a stream start or append with text."""
        streamed = ("chat.startStream", "chat.appendStream")
        for call in list(self.calls):
            if call.method in streamed and call.answer.get("ok") and _chunk_text(call.body):
                return call
        return None

    def add_thread_message(self, channel: str, thread_ts: str, **message: Any) -> None:
        self.threads[(channel, thread_ts)].append({"type": "message", **message})

    # --- Slack's behaviour -------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"1700000{next(self._ts):03d}.000100"

    def _answer(
        self, method: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self._scripted[method]:
            scripted = self._scripted[method].popleft()
            return scripted.status, scripted.body, scripted.headers
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, "_" + method.replace(".", "_"), None
        )
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(body), {}

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = {
            "ok": True,
            "url": "https://brandvoice-test.slack.com/",
            "team": "Test",
            "user": "brandvoice",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "is_enterprise_install": self.team_id is None and self.enterprise_id is not None,
        }
        if self.enterprise_id is not None:
            answer["enterprise_id"] = self.enterprise_id
        return answer

    def _message_error(self, body: dict[str, Any]) -> str | None:
        if body.get("channel") in self.not_in_channels:
            return "not_in_channel"
        if len(str(body.get("text") or "")) > TEXT_LIMIT:
            return "msg_too_long"
        for block in body.get("blocks") or []:
            text = (
                (block.get("text") or {}).get("text", "") if block.get("type") == "section" else ""
            )
            if len(text) > SECTION_TEXT_LIMIT:
                return "invalid_blocks"
            if block.get("type") == "context_actions" and not _valid_context_actions(block):
                return "invalid_blocks"
        return None

    def _chat_startStream(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        if channel in self.not_in_channels:
            return {"ok": False, "error": "not_in_channel"}
        if not body.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        in_channel = channel[:1] in ("C", "G")
        if in_channel and not (body.get("recipient_user_id") and body.get("recipient_team_id")):
            return {"ok": False, "error": "invalid_arguments"}
        error = _chunks_error(body)
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        text = _chunk_text(body)
        self.streams[ts] = {
            "channel": channel,
            "thread_ts": body["thread_ts"],
            "text": text,
            "state": "streaming",
        }
        message = {
            "type": "message",
            "bot_id": self.bot_id,
            "user": self.bot_user_id,
            "text": text,
            "ts": ts,
            "thread_ts": body["thread_ts"],
        }
        self.threads[(channel, body["thread_ts"])].append(message)
        return {"ok": True, "channel": channel, "ts": ts}

    def _stream_for(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        stream = self.streams.get(str(body.get("ts") or ""))
        if stream is None or stream["channel"] != body.get("channel"):
            return None, "message_not_found"
        if stream["state"] != "streaming":
            return None, "message_not_in_streaming_state"
        return stream, None

    def _set_stream_text(self, ts: str, stream: dict[str, Any]) -> None:
        for message in self.threads[(stream["channel"], stream["thread_ts"])]:
            if message.get("ts") == ts:
                message["text"] = stream["text"]

    def _chat_appendStream(self, body: dict[str, Any]) -> dict[str, Any]:
        stream, error = self._stream_for(body)
        if stream is None:
            return {"ok": False, "error": error}
        if not body.get("markdown_text") and not body.get("chunks"):
            return {"ok": False, "error": "invalid_arguments"}
        error = _chunks_error(body)
        if error:
            return {"ok": False, "error": error}
        stream["text"] += _chunk_text(body)
        self._set_stream_text(body["ts"], stream)
        return {"ok": True, "channel": body["channel"], "ts": body["ts"]}

    def _chat_stopStream(self, body: dict[str, Any]) -> dict[str, Any]:
        stream, error = self._stream_for(body)
        if stream is None:
            return {"ok": False, "error": error}
        error = _chunks_error(body) or self._message_error({"blocks": body.get("blocks")})
        if error:
            return {"ok": False, "error": error}
        stream["text"] += _chunk_text(body)
        stream.update(state="completed", blocks=body.get("blocks"), metadata=body.get("metadata"))
        self._set_stream_text(body["ts"], stream)
        message = {"type": "message", "text": stream["text"], "ts": body["ts"]}
        return {"ok": True, "channel": body["channel"], "ts": body["ts"], "message": message}

    def _assistant_thread_error(self, body: dict[str, Any]) -> str | None:
        if not body.get("channel_id"):
            return "channel_not_found"
        if not body.get("thread_ts"):
            return "invalid_thread_ts"
        return None

    def _assistant_threads_setStatus(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._assistant_thread_error(body)
        if error or "status" not in body:
            return {"ok": False, "error": error or "invalid_arguments"}
        if len(body.get("loading_messages") or []) > 10:
            return {"ok": False, "error": "invalid_arguments"}
        self.statuses.append(body)
        return {"ok": True}

    def _assistant_threads_setTitle(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._assistant_thread_error(body)
        if error or not body.get("title"):
            return {"ok": False, "error": error or "invalid_arguments"}
        self.titles[(body["channel_id"], body["thread_ts"])] = body["title"]
        return {"ok": True}

    def _assistant_threads_setSuggestedPrompts(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompts")
        if not body.get("channel_id") or not isinstance(prompts, list):
            return {"ok": False, "error": "invalid_arguments"}
        if not 1 <= len(prompts) <= 4 or not all(
            isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts
        ):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(body)
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        message = {
            "type": "message",
            "bot_id": self.bot_id,
            "user": self.bot_user_id,
            "text": body.get("text", ""),
            "ts": ts,
        }
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
            self.threads[(body["channel"], body["thread_ts"])].append(message)
        return {"ok": True, "channel": body["channel"], "ts": ts, "message": message}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(body)
        if error:
            return {"ok": False, "error": error}
        for (channel, _), messages in self.threads.items():
            for message in messages:
                if channel == body["channel"] and message.get("ts") == body["ts"]:
                    message["text"] = body.get("text", "")
        return {"ok": True, "channel": body["channel"], "ts": body["ts"], "text": body.get("text")}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("channel") in self.not_in_channels:
            return {"ok": False, "error": "not_in_channel"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return {"ok": True, "view": {"id": "V1", **body["view"]}}

    def _reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (body["channel"], body["timestamp"], body["name"])
        if key in self._reactions:
            return {"ok": False, "error": "already_reacted"}
        self._reactions.add(key)
        return {"ok": True}

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("channel") in self.not_in_channels:
            return {"ok": False, "error": "not_in_channel"}
        messages = self.threads.get((body["channel"], body["ts"]), [])
        return {"ok": True, "messages": list(messages), "has_more": False}

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("usergroup")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user", "")
        return {"ok": True, "user": self.users.get(user, {"id": user, "name": user.lower()})}

    # --- HTTP --------------------------------------------------------------------------------

    def _record(self, call: SlackCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack's API serves

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> dict[str, Any]:
                parts = urlsplit(self.path)
                body: dict[str, Any] = dict(parse_qsl(parts.query))
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                content_type = self.headers.get("Content-Type", "")
                if raw and "json" in content_type:
                    body.update(json.loads(raw))
                elif raw:
                    body.update(dict(parse_qsl(raw.decode())))
                for name in JSON_FIELDS:
                    if isinstance(body.get(name), str):
                        body[name] = json.loads(body[name])
                return body

            def _handle(self) -> None:
                path = urlsplit(self.path).path
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if path.startswith("/response/"):
                    status, answer, extra = 200, {"ok": True}, {}
                    method = "response_url"
                elif path.startswith("/api/"):
                    method = path.removeprefix("/api/")
                    with fake._lock:
                        status, answer, extra = fake._answer(method, body)
                else:
                    method, status, answer, extra = path, 404, {"ok": False}, {}
                fake._record(SlackCall(method, body, headers, status, answer))
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _handle
            do_POST = _handle

        return Handler


def _chunk_text(body: dict[str, Any]) -> str:
    text = str(body.get("markdown_text") or "")
    for chunk in body.get("chunks") or []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text") or "")
    return text


def _chunks_error(body: dict[str, Any]) -> str | None:
    """``invalid_chunks`` for anything Slack would refuse in ``chunks``; None when they are fine."""
    if len(str(body.get("markdown_text") or "")) > MARKDOWN_LIMIT:
        return "msg_too_long"
    chunks = body.get("chunks")
    if chunks is None:
        return None
    if not isinstance(chunks, list):
        return "invalid_chunks"
    for chunk in chunks:
        if not isinstance(chunk, dict) or chunk.get("type") not in CHUNK_TYPES:
            return "invalid_chunks"
        if chunk["type"] == "markdown_text":
            text = chunk.get("text")
            if not isinstance(text, str) or not text or len(text) > MARKDOWN_LIMIT:
                return "invalid_chunks"
    return None


def _plain_text(value: Any, limit: int | None = None) -> bool:
    if not isinstance(value, dict) or value.get("type") != "plain_text":
        return False
    text = value.get("text")
    return isinstance(text, str) and bool(text) and (limit is None or len(text) <= limit)


def _valid_context_actions(block: dict[str, Any]) -> bool:
    """Block Kit's rules for ``context_actions``: feedback buttons and icon buttons, 1 to 5."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
        return False
    for element in elements:
        kind = element.get("type") if isinstance(element, dict) else None
        if kind == "feedback_buttons":
            for side in ("positive_button", "negative_button"):
                button = element.get(side)
                if not isinstance(button, dict) or not _plain_text(button.get("text"), 75):
                    return False
                if not isinstance(button.get("value"), str) or not button["value"]:
                    return False
        elif kind == "icon_button":
            if element.get("icon") not in ICONS or not _plain_text(element.get("text")):
                return False
        else:
            return False
    return True


@contextmanager
def fake_slack_api() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI() as server:
        yield server
