"""How soon a reply shows: streamed replies in Slack and on ``/v1``, beside today's path.

    PYTHONPATH=src .venv/bin/python bench/reply_latency.py [--runs 7] [--tokens 48] [--threads 2]

The packaged SmolLM2-135M answers on the CPU (``--threads`` torch threads; pin the process with
``taskset -c 0,1`` to hold it to two cores). Slack is the loopback fake Web API; the app is the
real one (``create_app`` + ``create_slack_app``) receiving signed ``app_mention`` events over
ASGI, so "ack" is the moment ``/slack/events`` answered.

Measured per question, greedy, ``--tokens`` new tokens at most:

- Slack, streamed: ack → first ``chat.startStream`` carrying text, and ack → ``chat.stopStream``;
- Slack, placeholder + throttled ``chat.update`` (the fallback where streaming is refused);
- Slack, today's path replayed (placeholder, ``complete()``, one ``chat.update``): the reply's
  first text and its final text are that one update;
- ``/v1/chat/completions`` over HTTP (uvicorn): time to the first content chunk with
  ``stream: true``, beside the whole non-streamed reply (what a streamed request waited for
  before, when the finished reply was split into words).

Floors (p50): first streamed text ≤ 1.0 s, final text ≤ 2.0 s, ``/v1`` first token ≤ 0.5 s.
Writes ``bench/results/reply_latency.json`` with the machine, package versions and git sha.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-signing-secret-0123456789abcdef"
TEAM, BOT, CHANNEL, ASKER = "T1", "U0BOT", "C0BENCH", "U0ASKER"
FLOORS = {"slack_first_text_s": 1.0, "slack_final_text_s": 2.0, "v1_first_token_s": 0.5}
QUESTIONS = [
    "Write a short paragraph announcing our new hiking boots.",
    "Explain to a customer why their order is late and what we will do about it.",
    "Describe our company culture to a new hire in a few sentences.",
    "Write a friendly reminder about the team offsite next Friday.",
    "Tell a customer how to return a product they do not like.",
    "Summarize the benefits of our premium plan for a small business.",
    "Write a welcome message for new members of our community forum.",
]
PACKAGES = ("torch", "transformers", "slack-bolt", "slack-sdk", "openai", "fastapi", "uvicorn")


def sign(body: bytes, timestamp: str) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


def mention(question: str, ts: str, channel: str) -> bytes:
    event = {
        "type": "app_mention",
        "user": ASKER,
        "text": f"<@{BOT}> {question}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    envelope = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A1",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{ts.replace('.', '')}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
    }
    return json.dumps(envelope).encode()


async def wait_for(check: Callable[[], Any], timeout: float = 1800.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.005)
    raise TimeoutError("the reply did not finish in time")


async def slack_path(engine: Any, chat: Any, args: argparse.Namespace, streaming: bool) -> list:
    """Ack → first reply text and ack → final text, through the real Bolt app."""
    import httpx

    from brandvoice.bot.settings import Settings
    from brandvoice.bot.slack.app import create_slack_app
    from brandvoice.bot.slack.provider import promoted_model_provider
    from brandvoice.bot.slack.reply_stream import PLACEHOLDER
    from brandvoice.bot.web import create_app
    from tests.fakes.slack_api import FakeSlackAPI

    rows = []
    channel = f"{CHANNEL}{'S' if streaming else 'U'}"  # each path its own replies in one store
    with FakeSlackAPI(bot_user_id=BOT, team_id=TEAM) as api:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token="xoxb-bench",
            slack_signing_secret=SECRET,
            slack_api_url=api.api_url,
            reply_max_tokens=args.tokens,
            reply_temperature=0.0,
            slack_streaming=streaming,
        )
        provider = promoted_model_provider(engine, lambda version: chat)
        app = create_app(settings, engine, slack_app=create_slack_app(settings, engine, provider))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for index, question in enumerate(QUESTIONS[: args.runs]):
                ts = f"1699{int(streaming)}{index:05d}.000100"
                body = mention(question, ts, channel)
                stamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": sign(body, stamp),
                }
                before = len(api.calls)
                response = await http.post("/slack/events", content=body, headers=headers)
                acked = time.monotonic()
                assert response.status_code == 200, response.text
                first, final, text = await reply_calls(api, before, streaming, PLACEHOLDER)
                rows.append(row(acked, first.received_at, final.received_at, text, chat))
    return rows


async def reply_calls(api: Any, before: int, streaming: bool, placeholder: str) -> tuple:
    """The calls that first showed the reply's text and that finished it, and that text."""

    def since() -> list[Any]:
        return api.calls[before:]

    if streaming:
        [stop] = await wait_for(lambda: [c for c in since() if c.method == "chat.stopStream"])
        first = next(c for c in since() if c.method == "chat.startStream" and c.answer["ok"])
        return first, stop, api.streams[stop.body["ts"]]["text"]
    await wait_for(lambda: [c for c in since() if c.body.get("metadata")])
    shown = [c for c in since() if c.method == "chat.update" and c.body["text"] != placeholder]
    return shown[0], shown[-1], shown[-1].body["text"]


async def todays_path(chat: Any, args: argparse.Namespace) -> list:
    """Today's reply replayed with the same calls: placeholder, the whole reply, one update."""
    from slack_sdk.web.async_client import AsyncWebClient

    from brandvoice.inference.chat import Sampling
    from tests.fakes.slack_api import FakeSlackAPI

    sampling = Sampling(temperature=0.0, max_tokens=args.tokens)
    rows = []
    with FakeSlackAPI(bot_user_id=BOT, team_id=TEAM) as api:
        client = AsyncWebClient(token="xoxb-bench", base_url=api.api_url)
        for index, question in enumerate(QUESTIONS[: args.runs]):
            acked = time.monotonic()
            placeholder = await client.chat_postMessage(
                channel=CHANNEL, text="_Writing a reply…_", thread_ts=f"1698{index:05d}.000100"
            )
            messages = [{"role": "user", "content": question}]
            result = await asyncio.to_thread(chat.complete, messages, sampling)
            await client.chat_update(channel=CHANNEL, ts=placeholder["ts"], text=result.text)
            update = api.calls_to("chat.update")[-1]
            rows.append(row(acked, update.received_at, update.received_at, result.text, chat))
    return rows


def row(acked: float, first: float, final: float, text: str, chat: Any) -> dict[str, Any]:
    tokens = len(chat.base.tokenizer(text, add_special_tokens=False).input_ids)
    return {"first_text_s": first - acked, "final_text_s": final - acked, "tokens": tokens}


def v1_path(engine: Any, chat: Any, args: argparse.Namespace) -> dict[str, list[float]]:
    """Time to the first content chunk (stream) and to the whole reply (no stream), over HTTP."""
    import openai
    import uvicorn

    from brandvoice.bot.settings import Settings
    from brandvoice.bot.web import create_app

    settings = Settings(_env_file=None, api_token="bench-token")  # type: ignore[call-arg]
    app = create_app(settings, engine, backend_loader=lambda version: chat)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench-token")
    first_token, whole = [], []
    try:
        for question in QUESTIONS[: args.runs]:
            request = {
                "model": "brandvoice",
                "messages": [{"role": "user", "content": question}],
                "temperature": 0,
                "max_tokens": args.tokens,
            }
            started = time.monotonic()
            for chunk in client.chat.completions.create(**request, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    first_token.append(time.monotonic() - started)
                    break
            started = time.monotonic()
            client.chat.completions.create(**request)
            whole.append(time.monotonic() - started)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return {"stream_first_token_s": first_token, "whole_reply_s": whole}


def p50(values: list[float]) -> float:
    return statistics.median(values)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "first_text_p50_s": p50([r["first_text_s"] for r in rows]),
        "final_text_p50_s": p50([r["final_text_s"] for r in rows]),
        "tokens_p50": p50([r["tokens"] for r in rows]),
        "runs": rows,
    }


def git_sha() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def print_table(results: dict[str, Any]) -> None:
    slack, v1 = results["slack"], results["v1"]
    print(f"{'path':<46} {'first text p50':>15} {'final text p50':>15} {'tokens':>7}")
    for name, label in (
        ("streamed", "Slack, streamed (chat.*Stream)"),
        ("placeholder_updates", "Slack, placeholder + chat.update every 1 s"),
        ("todays_path", "Slack, today's placeholder then one update"),
    ):
        s = slack[name]
        first, final = s["first_text_p50_s"], s["final_text_p50_s"]
        print(f"{label:<46} {first:>14.2f}s {final:>14.2f}s {s['tokens_p50']:>7.0f}")
    first_token = p50(v1["stream_first_token_s"])
    whole = p50(v1["whole_reply_s"])
    print(f"{'/v1, stream=true: first content chunk':<46} {first_token:>14.2f}s")
    print(f"{'/v1, today (first chunk after the whole reply)':<46} {whole:>14.2f}s")
    print("floors (p50):", ", ".join(f"{k} ≤ {v:g} s" for k, v in FLOORS.items()))
    print("met:", results["floors_met"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="questions per path (at most 7)")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per reply, at most")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    args.runs = max(1, min(args.runs, len(QUESTIONS)))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import logging

    import torch

    from brandvoice.inference.chat import Sampling
    from brandvoice.inference.local_chat import LocalChat
    from brandvoice.store.db import make_engine, upgrade

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    chat = LocalChat(device="cpu")
    chat.complete([{"role": "user", "content": "Hi"}], Sampling(temperature=0, max_tokens=8))
    with tempfile.TemporaryDirectory() as workdir:
        engine = make_engine(f"sqlite:///{workdir}/bench.db")
        upgrade(engine)
        slack = {
            "streamed": summarize(asyncio.run(slack_path(engine, chat, args, streaming=True))),
            "placeholder_updates": summarize(
                asyncio.run(slack_path(engine, chat, args, streaming=False))
            ),
            "todays_path": summarize(asyncio.run(todays_path(chat, args))),
        }
        v1 = v1_path(engine, chat, args)
    streamed = slack["streamed"]
    floors_met = {
        "slack_first_text_s": streamed["first_text_p50_s"] <= FLOORS["slack_first_text_s"],
        "slack_final_text_s": streamed["final_text_p50_s"] <= FLOORS["slack_final_text_s"],
        "v1_first_token_s": p50(v1["stream_first_token_s"]) <= FLOORS["v1_first_token_s"],
    }
    results = {"slack": slack, "v1": v1, "floors": FLOORS, "floors_met": floors_met}
    print_table(results)
    record = {
        "benchmark": "reply_latency",
        "config": vars(args),
        "results": results,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "versions": versions(),
        "git_sha": git_sha(),
    }
    out = ROOT / "bench" / "results" / "reply_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
