"""A loopback server that speaks OpenAI's REST wire format, for driving the real ``openai`` SDK in tests.

It records every request and answers from a per-route queue of scripted replies (status, JSON body,
headers, delay) before falling back to the route's default handler. Only ``POST /v1/chat/completions``
has a default handler, and a request with ``"stream": true`` gets its ``chat.completion`` as
server-sent ``chat.completion.chunk`` events the way OpenAI streams them (usage in a last chunk
when ``stream_options.include_usage`` asks for it, then ``[DONE]``); other routes are added with :meth:`FakeOpenAIServer.add_route`, whose path
templates take ``{name}`` parameters. :class:`FakeFineTuning` adds OpenAI's files and fine-tuning
routes (jobs, events, cancel) with jobs that move along a scripted :class:`JobPlan`: supervised
and DPO jobs (``method.type``), DPO on an existing fine-tuned model, files checked against the
method's documented line shape when the job leaves ``validating_files``.
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


def completion_as_events(completion: Mapping[str, Any], include_usage: bool) -> bytes:
    """A ``chat.completion`` streamed: a role chunk, one chunk per word, the finish, usage, DONE."""
    choice = completion["choices"][0]
    base = {key: completion[key] for key in ("id", "created", "model") if key in completion}

    def event(choices: list[dict[str, Any]], usage: Any = None) -> str:
        chunk = {**base, "object": "chat.completion.chunk", "choices": choices, "usage": usage}
        return f"data: {json.dumps(chunk)}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

    text = choice["message"].get("content") or ""
    words = text.split(" ")
    events = [event(delta({"role": "assistant", "content": ""}))]
    events += [event(delta({"content": w if i == 0 else " " + w})) for i, w in enumerate(words)]
    events.append(event(delta({}, choice.get("finish_reason") or "stop")))
    if include_usage and completion.get("usage"):
        events.append(event([], completion["usage"]))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


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


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


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
            content_type = "application/json"
            asked = _json_or_none(raw) if "json" in headers.get("content-type", "") else None
            streamed = (
                isinstance(asked, dict)
                and asked.get("stream") is True
                and reply.status == 200
                and isinstance(reply.body, dict)
                and reply.body.get("object") == "chat.completion"
            )
            if streamed:
                include_usage = bool((asked.get("stream_options") or {}).get("include_usage"))
                payload = completion_as_events(reply.body, include_usage)
                content_type = "text/event-stream"
            try:
                self.send_response(reply.status)
                if not any(name.lower() == "content-type" for name in reply.headers):
                    self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-request-id", f"req_{len(server.requests)}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a provoked timeout)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return _Handler


# --- files and fine-tuning jobs ------------------------------------------------------------------


def parse_multipart(request: RecordedRequest) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename or None, content)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"content-type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + bytes(request.body or b""))
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


@dataclass(frozen=True)
class JobPlan:
    """How a fake fine-tuning job unfolds: the status each retrieve reports, in turn (the last one
    sticks), the training loss of each step, and the error of a failed job."""

    statuses: tuple[str, ...] = ("validating_files", "queued", "running", "running", "succeeded")
    losses: tuple[float, ...] = (2.0, 1.4, 0.9)
    error: Mapping[str, Any] | None = None
    trained_tokens: int = 4242


class FakeFineTuning:
    """OpenAI's files and fine-tuning routes on a :class:`FakeOpenAIServer`.

    Uploaded files and created jobs are kept; each ``GET`` of a job moves it one status along its
    :class:`JobPlan` and adds the events OpenAI would (messages, and a ``metrics`` event per step,
    listed newest first with cursor pagination). ``script`` on the server still overrides replies.
    """

    JOBS = "/v1/fine_tuning/jobs"

    def __init__(self, server: FakeOpenAIServer, plan: JobPlan | None = None) -> None:
        self.server, self.plan = server, plan or JobPlan()
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.file_errors: dict[str, dict[str, Any] | None] = {}
        """Why each job's files are invalid (found when the job leaves ``validating_files``)."""
        self._ticks: dict[str, int] = {}
        self._steps_done: dict[str, int] = {}
        self._lock = threading.Lock()
        server.add_route("POST", "/v1/files", self._create_file)
        server.add_route("POST", self.JOBS, self._create_job)
        server.add_route("GET", self.JOBS + "/{job_id}", self._retrieve_job)
        server.add_route("GET", self.JOBS + "/{job_id}/events", self._list_events)
        server.add_route("POST", self.JOBS + "/{job_id}/cancel", self._cancel_job)

    def job_requests(self) -> list[RecordedRequest]:
        return self.server.requests_to("POST", self.JOBS)

    def _create_file(self, request: RecordedRequest) -> FakeResponse:
        fields = parse_multipart(request)
        if "file" not in fields or "purpose" not in fields:
            return openai_error(400, "Missing required parameter: 'file' or 'purpose'.")
        filename, content = fields["file"]
        file = {
            "object": "file",
            "id": self.server.next_id("file"),
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": fields["purpose"][1].decode(),
            "status": "processed",
            "status_details": None,
        }
        with self._lock:
            self.files[file["id"]] = {**file, "content": content}
        return FakeResponse(200, file)

    def _create_job(self, request: RecordedRequest) -> FakeResponse:
        body = request.body if isinstance(request.body, dict) else {}
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return openai_error(
                    400, f"invalid {key}: {body[key]}", param=key, code="invalid_file"
                )
        method = body.get("method") or {"type": "supervised"}
        kind = method.get("type")
        if kind not in ("supervised", "dpo"):
            return openai_error(400, f"Invalid method type: {kind!r}", param="method.type")
        hyperparameters = (method.get(kind) or {}).get("hyperparameters") or {}
        refused = _method_problem(kind, hyperparameters) or self._model_problem(body.get("model"))
        if refused:
            return refused
        job_id = self.server.next_id("ftjob")
        self.file_errors[job_id] = self._file_problem(body, kind)
        job = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": body.get("model"),
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-fake",
            "result_files": [],
            "status": "validating_files",
            "validation_file": body.get("validation_file"),
            "training_file": body.get("training_file"),
            "hyperparameters": hyperparameters,
            "method": body.get("method"),
            "trained_tokens": None,
            "error": None,
            "seed": body.get("seed", 0),
            "metadata": body.get("metadata"),
            "estimated_finish": None,
            "integrations": [],
            "user_provided_suffix": body.get("suffix"),
        }
        with self._lock:
            self.jobs[job_id], self._ticks[job_id], self._steps_done[job_id] = job, 0, 0
            self.events[job_id] = []
            self._event(job_id, f"Validating training file: {job['training_file']}")
            self._event(job_id, f"Created fine-tuning job: {job_id}")
        return FakeResponse(200, job)

    def _retrieve_job(self, request: RecordedRequest) -> FakeResponse:
        job_id = request.params["job_id"]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _job_not_found(job_id)
            if job["status"] != "cancelled":
                self._advance(job)
            return FakeResponse(200, dict(job))

    def _model_problem(self, model: Any) -> FakeResponse | None:
        """A fine-tuned model (``ft:...``) can be trained further only if it exists."""
        if not isinstance(model, str) or not model:
            return openai_error(400, "Missing required parameter: 'model'.", param="model")
        tuned = {job["fine_tuned_model"] for job in self.jobs.values()}
        if model.startswith("ft:") and model not in tuned:
            return openai_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return None

    def _file_problem(self, body: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
        """OpenAI validates files after accepting the job: each line must be a chat example
        (``supervised``) or a preference pair (``dpo``), else the job fails."""
        for key in ("training_file", "validation_file"):
            file_id = body.get(key)
            if file_id is None:
                continue
            content = self.files[file_id]["content"].decode("utf-8", "replace")
            for number, line in enumerate(content.splitlines(), start=1):
                problem = _line_problem(line, kind)
                if problem:
                    return {
                        "code": f"invalid_{key}",
                        "param": key,
                        "message": f"The job failed due to an invalid {key.replace('_', ' ')}. "
                        f"Line {number}: {problem}",
                    }
        return None

    def _advance(self, job: dict[str, Any]) -> None:
        job_id, plan = job["id"], self.plan
        tick = self._ticks[job_id] = self._ticks[job_id] + 1
        status = plan.statuses[min(tick, len(plan.statuses) - 1)]
        if status != "validating_files" and self.file_errors.get(job_id):
            error = self.file_errors[job_id]
            job.update(status="failed", error=error, finished_at=int(time.time()))
            self._event(job_id, f"Fine-tuning job failed: {error['message']}", level="error")
            return
        entering = status != job["status"]
        job["status"] = status
        if status == "queued" and entering:
            self._event(job_id, "Files validated, moving job to queued state")
        elif status == "running":
            if entering:
                self._event(job_id, "Fine-tuning job started")
            self._metrics(job_id, 1)
        elif status == "succeeded" and entering:
            self._metrics(job_id, len(plan.losses))
            base = job["model"].split(":")[1] if job["model"].startswith("ft:") else job["model"]
            model = f"ft:{base}:fake-org:{job['user_provided_suffix']}:Ab{job_id[6:]:0>6}"
            job.update(
                fine_tuned_model=model,
                finished_at=int(time.time()),
                trained_tokens=plan.trained_tokens,
                result_files=[self.server.next_id("file")],
            )
            self._event(job_id, f"New fine-tuned model created: {model}")
            self._event(job_id, "The job has successfully completed")
        elif status == "failed" and entering:
            error = dict(plan.error or {"code": "server_error", "message": "Job failed."})
            job.update(error={"param": None, **error}, finished_at=int(time.time()))
            self._event(job_id, f"Fine-tuning job failed: {error['message']}", level="error")

    def _metrics(self, job_id: str, count: int) -> None:
        losses = self.plan.losses
        for _ in range(count):
            step = self._steps_done[job_id]
            if step >= len(losses):
                return
            loss = losses[step]
            self._steps_done[job_id] = step + 1
            data = {
                "step": step + 1,
                "train_loss": loss,
                "valid_loss": round(loss + 0.1, 4),
                "train_mean_token_accuracy": 0.5,
                "total_steps": len(losses),
            }
            message = f"Step {step + 1}/{len(losses)}: training loss={loss:.2f}"
            self._event(job_id, message, type="metrics", data=data)

    def _event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.events[job_id].append(
            {
                "object": "fine_tuning.job.event",
                "id": self.server.next_id("ftevent"),
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": type,
            }
        )

    def _list_events(self, request: RecordedRequest) -> FakeResponse:
        from urllib.parse import parse_qs

        job_id = request.params["job_id"]
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        with self._lock:
            if job_id not in self.jobs:
                return _job_not_found(job_id)
            newest_first = list(reversed(self.events[job_id]))
        ids = [e["id"] for e in newest_first]
        start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
        limit = int(query.get("limit", 20))
        page = newest_first[start : start + limit]
        more = start + limit < len(newest_first)
        return FakeResponse(200, {"object": "list", "data": page, "has_more": more})

    def _cancel_job(self, request: RecordedRequest) -> FakeResponse:
        job_id = request.params["job_id"]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _job_not_found(job_id)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return openai_error(400, f"Job has already {job['status']}: {job_id}")
            job.update(status="cancelled", finished_at=int(time.time()))
            self._event(job_id, "Fine-tuning job cancelled")
            return FakeResponse(200, dict(job))


def _method_problem(kind: str, hyperparameters: Mapping[str, Any]) -> FakeResponse | None:
    """Hyperparameters each method documents; DPO adds ``beta`` (``auto`` or a positive number)."""
    allowed = {"n_epochs", "batch_size", "learning_rate_multiplier"}
    if kind == "dpo":
        allowed.add("beta")
        beta = hyperparameters.get("beta", "auto")
        if beta != "auto" and (
            isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta <= 2
        ):
            return openai_error(
                400, f"Invalid beta: {beta!r}", param=f"method.{kind}.hyperparameters.beta"
            )
    unknown = sorted(set(hyperparameters) - allowed)
    if unknown:
        return openai_error(
            400,
            f"Unknown hyperparameter {unknown[0]!r} for method {kind}.",
            param=f"method.{kind}.hyperparameters",
        )
    return None


def _assistant_reply_problem(value: Any, key: str) -> str | None:
    if (
        not isinstance(value, list)
        or len(value) != 1
        or not isinstance(value[0], dict)
        or value[0].get("role") != "assistant"
        or not isinstance(value[0].get("content"), str)
    ):
        return f"'{key}' must hold exactly one assistant message."
    return None


def _line_problem(line: str, kind: str) -> str | None:
    """Why one JSONL line is not a training example of ``kind`` (OpenAI's documented shapes)."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return "not valid JSON."
    if not isinstance(row, dict):
        return "not a JSON object."
    if kind == "supervised":
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            return "missing 'messages'."
        return None
    messages = (
        (row.get("input") or {}).get("messages") if isinstance(row.get("input"), dict) else None
    )
    if not isinstance(messages, list) or not messages:
        return "missing 'input.messages'."
    for key in ("preferred_output", "non_preferred_output"):
        problem = _assistant_reply_problem(row.get(key), key)
        if problem:
            return problem
    return None


def _job_not_found(job_id: str) -> FakeResponse:
    return openai_error(
        404, f"Could not find fine-tuning job: {job_id}", param="fine_tune_id", code="not_found"
    )
