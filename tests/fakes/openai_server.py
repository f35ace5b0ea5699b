"""A loopback server that speaks OpenAI's REST wire format, for driving the real ``openai`` SDK in tests.

It records every request and answers from a per-route queue of scripted replies (status, JSON body,
headers, delay) before falling back to the route's default handler. Only ``POST /v1/chat/completions``
has a default handler; other routes (files, fine-tuning jobs, events, cancel) are added with
:meth:`FakeOpenAIServer.add_route`, whose path templates take ``{name}`` parameters.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    """Path without the query string, e.g. ``/v1/chat/completions``."""
    query: str
    headers: Mapping[str, str]
    """Header names lowercased."""
    body: Any
    """Parsed JSON when the body is JSON, else the raw bytes (multipart uploads)."""
    received_at: float
    """``time.monotonic()`` when the request arrived."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Values of ``{name}`` parameters in the matched route template."""


@dataclass(frozen=True)
class FakeResponse:
    status: int = 200
    body: Any = None
    """Serialized as JSON unless it is ``bytes``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering, to provoke client timeouts."""


Handler = Callable[[RecordedRequest], FakeResponse]


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> FakeResponse:
    """An error shaped as OpenAI sends it: ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return FakeResponse(status, {"error": error}, dict(headers or {}), delay)


def chat_completion(
    content: str,
    *,
    model: str = "fake-model",
    prompt_tokens: int = 10,
    completion_tokens: int | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    completion_tokens = len(content.split()) if completion_tokens is None else completion_tokens
    return {
        "id": f"chatcmpl-{abs(hash((content, time.monotonic()))):x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def echo_chat_completion(request: RecordedRequest) -> FakeResponse:
    """Default reply: ``echo: <last message>``, with the requested model and made-up token counts."""
    body = request.body if isinstance(request.body, dict) else {}
    messages = body.get("messages") or [{"content": ""}]
    last = str(messages[-1].get("content", ""))
    words = sum(len(str(m.get("content", "")).split()) for m in messages)
    return FakeResponse(
        200,
        chat_completion(
            f"echo: {last}", model=body.get("model", "fake-model"), prompt_tokens=words
        ),
    )


class FakeOpenAIServer:
    """``with FakeOpenAIServer() as server: OpenAI(base_url=server.base_url, ...)``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.state: dict[str, Any] = {}
        """Free-form storage for route handlers (uploaded files, jobs, ...)."""
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []
        self._queues: dict[tuple[str, str], deque[FakeResponse]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_route("POST", "/v1/chat/completions", echo_chat_completion)

    @property
    def base_url(self) -> str:
        """What the SDK's ``base_url`` should be (includes ``/v1``)."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_id(self, prefix: str) -> str:
        """Sequential ids such as ``file-1`` or ``ftjob-2`` for handlers that create objects."""
        return f"{prefix}-{next(self._ids)}"

    def add_route(self, method: str, template: str, handler: Handler) -> None:
        """Answer ``method template`` (e.g. ``GET /v1/fine_tuning/jobs/{job_id}/events``) with handler."""
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        with self._lock:
            self._routes.insert(0, (method.upper(), template, re.compile(f"^{pattern}$"), handler))

    def script(self, method: str, template: str, *responses: FakeResponse) -> None:
        """Queue replies for a route; each request takes the next one, then the handler answers."""
        with self._lock:
            self._queues[(method.upper(), template)].extend(responses)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def start(self) -> FakeOpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(
        self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes
    ) -> FakeResponse:
        body: Any = raw
        if raw and "json" in headers.get("content-type", ""):
            try:
                body = json.loads(raw)
            except ValueError:
                return openai_error(400, "We could not parse the JSON body of your request.")
        with self._lock:
            match = next(
                (
                    (template, found, handler)
                    for m, template, pattern, handler in self._routes
                    if m == method and (found := pattern.match(path))
                ),
                None,
            )
            params = match[1].groupdict() if match else {}
            request = RecordedRequest(method, path, query, headers, body, time.monotonic(), params)
            self.requests.append(request)
            if match is None:
                return openai_error(404, f"Invalid URL ({method} {path})", code="unknown_url")
            queue = self._queues.get((method, match[0]))
            scripted = queue.popleft() if queue else None
        return scripted or match[2](request)


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server._answer(self.command, path, query, headers, raw)
            if reply.delay:
                time.sleep(reply.delay)
            payload = (
                reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            )
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-request-id", f"req_{len(server.requests)}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a provoked timeout)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return _Handler
