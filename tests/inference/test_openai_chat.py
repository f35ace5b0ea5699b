"""OpenAIChat through the real ``openai`` SDK against a loopback server speaking OpenAI's wire format."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from brandvoice.inference import (
    ChatBackend,
    ChatBackendError,
    ChatTimeoutError,
    OpenAIChat,
    Sampling,
    make_chat_backend,
)
from brandvoice.inference.retry import RetryPolicy
from tests.fakes import FakeOpenAIServer, FakeResponse, chat_completion, openai_error

CHAT = "/v1/chat/completions"
MESSAGES = [
    {"role": "system", "content": "You are Acme's support voice."},
    {"role": "user", "content": "Where is my order?"},
]


def make_chat(server: FakeOpenAIServer, **options) -> OpenAIChat:
    options.setdefault("api_key", "sk-test")
    return OpenAIChat("brand-voice-1", base_url=server.base_url, **options)


def test_complete_sends_the_openai_request_and_reads_the_reply(openai_server):
    chat = make_chat(openai_server, max_retries=0)

    result = chat.complete(MESSAGES, Sampling(temperature=0.2, max_tokens=50))

    assert isinstance(chat, ChatBackend)
    (request,) = openai_server.requests
    assert request.method == "POST" and request.path == CHAT
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "brand-voice-1",
        "messages": MESSAGES,
        "temperature": 0.2,
        "top_p": 1.0,
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert result.text == "echo: Where is my order?"
    assert result.model == "brand-voice-1"
    assert result.finish_reason == "stop"
    assert result.usage.prompt_tokens == 9  # the fake counts the words of all messages
    assert result.usage.completion_tokens == 5


def test_json_mode_and_seed_reach_the_server(openai_server):
    chat = make_chat(openai_server, max_retries=0)

    chat.complete(MESSAGES, Sampling(temperature=0, max_tokens=20, seed=7, json_output=True))

    body = openai_server.requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert body["seed"] == 7
    assert body["temperature"] == 0
    assert "stop" not in body


def test_stop_strings_reach_the_server(openai_server):
    chat = make_chat(openai_server, max_retries=0)

    chat.complete(MESSAGES, Sampling(max_tokens=20, stop=("\nCustomer:", "\n\n")))

    assert openai_server.requests[0].body["stop"] == ["\nCustomer:", "\n\n"]


def test_rate_limit_is_retried_after_the_delay_the_server_asked_for(openai_server):
    openai_server.script(
        "POST",
        CHAT,
        openai_error(
            429,
            "Rate limit reached for requests",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "1"},
        ),
    )
    chat = make_chat(openai_server, max_retries=2)

    result = chat.complete(MESSAGES)

    assert result.text == "echo: Where is my order?"
    first, second = openai_server.requests_to("POST", CHAT)
    assert second.received_at - first.received_at >= 1.0


def test_retries_make_at_most_max_retries_plus_one_requests_not_the_sdks_on_top(openai_server):
    down = openai_error(503, "overloaded", type="server_error")
    openai_server.script("POST", CHAT, *[down] * 10)
    chat = make_chat(openai_server, max_retries=2, retry=RetryPolicy(initial_wait_s=0.01))

    with pytest.raises(ChatBackendError) as raised:
        chat.complete(MESSAGES)

    assert raised.value.status_code == 503 and raised.value.retryable
    assert "(3 requests over 0 s)" in str(raised.value)
    assert len(openai_server.requests_to("POST", CHAT)) == 3
    assert {r.headers["x-stainless-retry-count"] for r in openai_server.requests} == {"0"}


def test_a_retry_after_past_the_deadline_is_not_waited_for(openai_server):
    busy = openai_error(429, "Slow down", code="rate_limit_exceeded", headers={"retry-after": "30"})
    openai_server.script("POST", CHAT, busy)
    chat = make_chat(openai_server, max_retries=4, retry=RetryPolicy(deadline_s=5.0))

    started = time.monotonic()
    with pytest.raises(ChatBackendError) as raised:
        chat.complete(MESSAGES)

    assert time.monotonic() - started < 5.0
    assert raised.value.status_code == 429 and "rate limited" in str(raised.value)
    assert len(openai_server.requests_to("POST", CHAT)) == 1


def test_the_total_deadline_stops_retrying_a_server_that_keeps_failing(openai_server):
    down = openai_error(502, "Bad gateway", type="server_error")
    openai_server.script("POST", CHAT, *[down] * 50)
    policy = RetryPolicy(initial_wait_s=0.2, max_wait_s=0.2, deadline_s=1.0, jitter=0)
    chat = make_chat(openai_server, max_retries=40, retry=policy)

    started = time.monotonic()
    with pytest.raises(ChatBackendError, match="Bad gateway"):
        chat.complete(MESSAGES)

    assert 1.0 <= time.monotonic() - started < 2.5
    # At least one retry; how many fit in the second depends on how fast the machine answers.
    assert 2 <= len(openai_server.requests_to("POST", CHAT)) <= 6


def test_server_error_is_retried_with_backoff(openai_server):
    openai_server.script(
        "POST", CHAT, openai_error(500, "The server had an error", type="server_error")
    )
    chat = make_chat(openai_server, max_retries=2)

    result = chat.complete(MESSAGES)

    assert result.text == "echo: Where is my order?"
    assert len(openai_server.requests_to("POST", CHAT)) == 2


@pytest.mark.parametrize(
    ("status", "message", "code", "hint"),
    [
        (401, "Incorrect API key provided: sk-bad.", "invalid_api_key", "check the API key"),
        (400, "'messages' must contain the word 'json'", None, "rejected the request"),
        (404, "The model 'brand-voice-1' does not exist", "model_not_found", "check the model"),
    ],
)
def test_final_errors_are_not_retried_and_carry_the_provider_message(
    openai_server, status, message, code, hint
):
    openai_server.script("POST", CHAT, openai_error(status, message, code=code))
    chat = make_chat(openai_server, max_retries=3)

    with pytest.raises(ChatBackendError) as raised:
        chat.complete(MESSAGES)

    error = raised.value
    assert error.status_code == status
    assert error.provider_message == message
    assert not error.retryable
    assert message in str(error) and hint in str(error)
    assert openai_server.base_url in str(error) and "'brand-voice-1'" in str(error)
    assert len(openai_server.requests) == 1


def test_rate_limit_that_outlasts_the_retries_is_reported_as_retryable(openai_server):
    too_busy = openai_error(
        429, "Slow down", code="rate_limit_exceeded", headers={"retry-after-ms": "50"}
    )
    openai_server.script("POST", CHAT, too_busy, too_busy)
    chat = make_chat(openai_server, max_retries=1)

    with pytest.raises(ChatBackendError) as raised:
        chat.complete(MESSAGES)

    assert raised.value.status_code == 429 and raised.value.retryable
    assert "Slow down" in str(raised.value)
    assert len(openai_server.requests) == 2


def test_timeout_is_retried_then_reported(openai_server):
    slow = FakeResponse(200, chat_completion("too late"), delay=1.5)
    openai_server.script("POST", CHAT, slow, slow)
    chat = make_chat(openai_server, timeout=0.3, max_retries=1)

    started = time.monotonic()
    with pytest.raises(ChatTimeoutError) as raised:
        chat.complete(MESSAGES)

    assert time.monotonic() - started < 1.5
    assert "within 0.3 s" in str(raised.value) and raised.value.retryable
    assert len(openai_server.requests) == 2


def test_unreachable_server_gives_our_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chat = OpenAIChat("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)

    with pytest.raises(ChatBackendError, match=f"cannot reach http://127.0.0.1:{port}/v1"):
        chat.complete(MESSAGES)


def test_usage_is_estimated_when_the_server_leaves_it_out(openai_server):
    body = chat_completion("Your order ships today.")
    del body["usage"]
    openai_server.script("POST", CHAT, FakeResponse(200, body))

    result = make_chat(openai_server, max_retries=0).complete(MESSAGES)

    assert result.usage.completion_tokens == 5
    assert result.usage.prompt_tokens > 10


def test_batch_keeps_input_order_under_bounded_concurrency(openai_server):
    in_flight = max_in_flight = 0
    lock = threading.Lock()

    def slow_echo(request):
        nonlocal in_flight, max_in_flight
        number = int(request.body["messages"][-1]["content"])
        with lock:
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
        time.sleep(0.05 * (8 - number))  # later conversations finish first
        with lock:
            in_flight -= 1
        return FakeResponse(200, chat_completion(f"reply {number}"))

    openai_server.add_route("POST", CHAT, slow_echo)
    chat = make_chat(openai_server, max_retries=0, concurrency=3)

    results = chat.complete_batch([[{"role": "user", "content": str(n)}] for n in range(8)])

    assert [r.text for r in results] == [f"reply {n}" for n in range(8)]
    assert max_in_flight == 3


def test_batch_raises_the_first_failure(openai_server):
    openai_server.script("POST", CHAT, openai_error(401, "Invalid key", code="invalid_api_key"))
    chat = make_chat(openai_server, max_retries=0, concurrency=1)

    with pytest.raises(ChatBackendError, match="Invalid key"):
        chat.complete_batch([MESSAGES, MESSAGES, MESSAGES])


def test_factory_builds_an_openai_backend(openai_server):
    chat = make_chat_backend("openai", "brand-voice-1", base_url=openai_server.base_url)

    assert chat.complete(MESSAGES).text == "echo: Where is my order?"
    assert chat.supports_json
    with pytest.raises(ValueError, match="unknown chat backend 'bedrock'"):
        make_chat_backend("bedrock", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a model id"):
        make_chat_backend("openai")
