"""``/slack/events`` under load: signed ``reaction_added`` events, ack latency, votes stored.

    .venv/bin/python bench/slack_events_load.py [--rate 200] [--seconds 60] [--duplicate-share 0.1]
        [--interactions 1000] [--database-url postgresql://postgres@127.0.0.1:5432/test]

The app runs as in production: ``create_app`` + ``create_slack_app`` served by uvicorn in its own
process on a random loopback port, its Web API calls going to the loopback fake Slack API. A
second process offers an open-loop load (send times fixed in advance, so slow answers never lower
the offered rate): ``+1`` reactions from distinct users on seeded bot replies, each with a unique
event id, plus a share of Slack's retries (same body and event id, ``X-Slack-Retry-Num: 1``).
After the load, lazy listeners drain and the stored votes are compared with the events sent.

Baseline, run the same way with the same schedule: a bare FastAPI endpoint that only verifies the
signature and answers 200, the floor of ack latency on this machine. Floor: p99 < 100 ms, nothing
lost, nothing counted twice. Writes ``bench/results/slack_events_load_<db>_<rate>rps_<s>s.json``.
A PostgreSQL URL's ``public`` schema is dropped and re-created first, as tests/conftest.py does.

"server CPU ms/request" is the uvicorn process's CPU time (load and drain) over requests sent; it
leaves out PostgreSQL's own processes. ``--profile DIR`` writes cProfile stats of each server's
event-loop thread, to see where the ack path spends its time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-signing-secret-0123456789abcdef"
TEAM, BOT, CHANNEL = "T1", "U0BOT", "C0BENCH"
FLOOR_P99_MS = 100.0
BASELINE = (
    "the bare signed endpoint (FastAPI + slack_sdk SignatureVerifier, answers 200), in its best "
    "configuration: one uvicorn worker on uvloop + httptools (uvicorn[standard], as the bot runs), no "
    "Bolt, no database; no Bolt app can ack faster"
)
ACK_TIMEOUT_S = 3.0
"""Slack gives up on an ack after 3 s and retries; the generator does the same."""
PACKAGES = ("slack-bolt", "slack-sdk", "fastapi", "starlette", "uvicorn", "h11", "aiohttp")
PACKAGES += ("sqlalchemy", "sqlmodel", "psycopg")


# --- the offered load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    at: float
    """Seconds after the start at which this request is due."""
    event: int
    """Index of the unique event it carries."""
    retry: bool


def build_plan(rate: float, seconds: float, duplicate_share: float, seed: int = 7) -> list[Send]:
    """The fixed schedule; a retry re-sends an event from the last second, so it races the original."""
    rng = random.Random(seed)
    plan: list[Send] = []
    unique = 0
    for i in range(round(rate * seconds)):
        if unique and rng.random() < duplicate_share:
            original = rng.randrange(max(0, unique - round(rate)), unique)
            plan.append(Send(i / rate, original, True))
        else:
            plan.append(Send(i / rate, unique, False))
            unique += 1
    return plan


def message_ts(interaction: int) -> str:
    return f"1700000000.{interaction:06d}"


def voter(event: int, interactions: int) -> tuple[int, str]:
    """(interaction, user) of an event: users are distinct on each interaction."""
    return event % interactions, f"U{event // interactions + 1:07d}"


def event_body(event: int, interactions: int) -> bytes:
    """A ``reaction_added`` callback shaped like Slack's (see tests/slack/conftest.py)."""
    interaction, user = voter(event, interactions)
    now = int(time.time())
    payload = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": "A1",
        "event": {
            "type": "reaction_added",
            "user": user,
            "reaction": "+1",
            "item_user": BOT,
            "item": {"type": "message", "channel": CHANNEL, "ts": message_ts(interaction)},
            "event_ts": f"{now}.{event % 1_000_000:06d}",
        },
        "type": "event_callback",
        "event_id": event_id(event),
        "event_time": now,
        "authorizations": [
            {"team_id": TEAM, "user_id": BOT, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(payload).encode()


def event_id(event: int) -> str:
    return f"EvBENCH{event:08d}"


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """Slack's request signature: ``v0=`` HMAC-SHA256 over ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def _offer(
    url: str, plan: list[Send], bodies: list[bytes]
) -> list[tuple[float, float, int | str]]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=ACK_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=1000)
    results: list[tuple[float, float, int | str]] = [(0.0, 0.0, -1)] * len(plan)

    async def send(i: int, due: float, http: aiohttp.ClientSession) -> None:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(bodies[plan[i].event], stamp),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if plan[i].retry:
            headers |= {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        sent = time.perf_counter()
        try:
            async with http.post(url, data=bodies[plan[i].event], headers=headers) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = type(exc).__name__
        results[i] = (sent - due, time.perf_counter() - sent, status)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        start = time.perf_counter() + 0.2
        tasks = []
        for i, item in enumerate(plan):
            delay = start + item.at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i, start + item.at, http)))
        await asyncio.gather(*tasks)
    return results


def offer_load(
    url: str, plan: list[Send], interactions: int
) -> list[tuple[float, float, int | str]]:
    """Run in the load-generator process: (send lag, ack latency, status) of every request."""
    bodies = [event_body(e, interactions) for e in range(max(s.event for s in plan) + 1)]
    return asyncio.run(_offer(url, plan, bodies))


# --- the servers under test (run in their own process) -----------------------------------------


def never_called() -> Any:
    raise RuntimeError("the load benchmark asks no questions, so no model should be needed")


def bot_app() -> Any:
    from brandvoice.bot.settings import Settings
    from brandvoice.bot.slack.app import create_slack_app
    from brandvoice.bot.web import create_app
    from brandvoice.store.db import make_engine

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    slack_app = create_slack_app(settings, engine, chat_provider=never_called)
    return create_app(settings, engine, slack_app=slack_app)


def bare_app() -> Any:
    """The floor: verify Slack's signature the way Bolt does, then answer 200."""
    from fastapi import FastAPI
    from slack_sdk.signature import SignatureVerifier

    verifier = SignatureVerifier(os.environ["SLACK_SIGNING_SECRET"])
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/slack/events")
    async def events(request: Request) -> Response:
        body = await request.body()
        valid = verifier.is_valid(
            body,
            request.headers.get("x-slack-request-timestamp", ""),
            request.headers.get("x-slack-signature", ""),
        )
        return Response(status_code=200 if valid else 401)

    return app


def serve(kind: str, port_file: Path, profile: Path | None = None) -> None:
    """Bind a random loopback port, tell the parent which, and serve as ``brandvoice web`` does.

    With ``profile``, the event loop's thread runs under cProfile, dumped there at shutdown.
    """
    import cProfile

    import uvicorn

    app = bot_app() if kind == "bot" else bare_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port_file.write_text(str(sock.getsockname()[1]))
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    if kind == "bot":
        from brandvoice.bot.web import freeze_startup_heap

        freeze_startup_heap()
    if profile is None:
        server.run(sockets=[sock])
        return
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after a clean shutdown
    profiler = cProfile.Profile()
    profiler.runcall(server.run, sockets=[sock])
    profiler.dump_stats(profile)


# --- orchestration -------------------------------------------------------------------------------


class Server:
    """A uvicorn process of ours: started, waited for, and always stopped."""

    def __init__(self, kind: str, workdir: Path, env: dict[str, str], profile: Path | None = None):
        self.port_file = workdir / f"{kind}.port"
        self.log_path = workdir / f"{kind}.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, __file__, "--serve", kind, "--port-file", str(self.port_file)]
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            command += ["--profile", str(profile / f"{kind}.prof")]
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        self.url = self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> str:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            if self.port_file.exists() and self.port_file.read_text():
                url = f"http://127.0.0.1:{self.port_file.read_text()}"
                try:
                    if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def error_lines(self) -> list[str]:
        text = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in text if "ERROR" in line or "Traceback" in line or "Failed" in line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if values else 0.0
    )


def by_second(plan: list[Send], rows: list[tuple[float, float, int | str]]) -> list[float]:
    """p99 ack latency of the requests due in each second of the load: shows when it degrades."""
    seconds: dict[int, list[float]] = {}
    for item, (_, latency, _) in zip(plan, rows, strict=True):
        seconds.setdefault(int(item.at), []).append(latency * 1000)
    return [round(percentile(seconds[s], 99), 1) for s in sorted(seconds)]


def tcp_counters() -> dict[str, int]:
    """Linux's count of connections refused for a full accept queue, and of SYNs re-sent."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    names, values = (line.split()[1:] for line in lines[:2])
    counters = dict(zip(names, map(int, values), strict=True))
    return {k: counters[k] for k in ("ListenOverflows", "TCPSynRetrans") if k in counters}


def run_load(server: Server, plan: list[Send], interactions: int) -> dict[str, Any]:
    """Offer the plan from a separate process; summarize what came back, in milliseconds."""
    cpu_before, wall, tcp_before = server.cpu_seconds(), time.perf_counter(), tcp_counters()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        rows = pool.submit(offer_load, server.url + "/slack/events", plan, interactions).result()
    wall = time.perf_counter() - wall
    cpu = server.cpu_seconds() - cpu_before
    tcp_after = tcp_counters()
    # A request that failed (3 s timeout) counts with the time it took, so failures raise p99.
    elapsed = [latency * 1000 for _, latency, _ in rows]
    lags = [lag * 1000 for lag, _, _ in rows]
    return {
        "requests": len(rows),
        "retries_sent": sum(s.retry for s in plan),
        "non_200": sum(status != 200 for _, _, status in rows),
        "statuses": dict(Counter(str(status) for _, _, status in rows)),
        "tcp": {k: tcp_after[k] - tcp_before.get(k, 0) for k in tcp_after},
        "p50_ms": percentile(elapsed, 50),
        "p99_ms": percentile(elapsed, 99),
        "max_ms": max(elapsed, default=0.0),
        "send_lag_p99_ms": percentile(lags, 99),
        "server_cpu_ms_per_request": cpu * 1000 / len(rows),
        "offered_rps": len(plan) / max(plan[-1].at, 1e-9),
        "load_wall_s": wall,
        "p99_ms_by_second": by_second(plan, rows),
        "unique_events_acked": len({plan[i].event for i, r in enumerate(rows) if r[2] == 200}),
    }


def fresh_database(url: str | None, workdir: Path) -> str:
    from sqlalchemy import text

    from brandvoice.store.db import make_engine

    if url is None:
        return f"sqlite:///{workdir / 'brandvoice.db'}"
    if url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    return url


def seed_interactions(url: str, n: int) -> None:
    """N bot replies to react to, as the bot records them when it answers."""
    from brandvoice.store.db import make_engine, session_scope, upgrade
    from brandvoice.store.models import Interaction

    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        session.add_all(
            Interaction(
                channel=CHANNEL,
                message_ts=message_ts(k),
                thread_ts=message_ts(k),
                asker="U0ASKER",
                prompt_messages=[
                    {"role": "system", "content": "You are the Pebble & Pine assistant."},
                    {"role": "user", "content": f"Question {k}: how do I size a tent?"},
                ],
                reply=f"Reply {k}: pick one size up for gear, and happy trails!",
            )
            for k in range(n)
        )
    engine.dispose()


def stored(url: str) -> tuple[list[str | None], int]:
    """Event ids of the counted votes, and how many examples were collected."""
    from sqlmodel import col, func, select

    from brandvoice.store.db import make_engine, session_scope
    from brandvoice.store.models import Example, FeedbackVote

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            votes = session.exec(
                select(FeedbackVote.event_id).where(col(FeedbackVote.retracted_at).is_(None))
            ).all()
            examples = session.exec(select(func.count()).select_from(Example)).one()
    finally:
        engine.dispose()
    return list(votes), int(examples)


def drain(
    url: str,
    expected_votes: int,
    expected_examples: int,
    marks: Callable[[], int],
    timeout: float,
    quiet_s: float,
) -> tuple[list[str | None], int, float]:
    """Wait until every vote, example and collected mark is in, or nothing changed for ``quiet_s``.

    Returns the stored votes' event ids, the examples collected and the seconds waited.
    """
    start = last_change = time.monotonic()
    last: tuple[int, ...] = ()
    while True:
        votes, examples = stored(url)
        progress = (len(votes), examples, marks())
        now = time.monotonic()
        if progress != last:
            last, last_change = progress, now
        if progress[0] >= expected_votes and min(progress[1:]) >= expected_examples:
            return votes, examples, now - start
        if now - last_change > quiet_s or now - start > timeout:
            return votes, examples, now - start
        time.sleep(0.5)


def examples_expected(sent_unique: int, quorum: int, n: int) -> int:
    """Replies that got at least ``quorum`` distinct thumbs-ups, so each became one example."""
    return sum(sent_unique // n + (k < sent_unique % n) >= quorum for k in range(n))


def vote_outcome(
    votes: list[str | None], examples: int, sent_unique: int, expected: int
) -> dict[str, Any]:
    """Rows stored against unique events sent: lost, counted twice, examples collected."""
    sent = {event_id(e) for e in range(sent_unique)}
    stored_ids = [v for v in votes if v is not None]
    return {
        "unique_events_sent": sent_unique,
        "votes_stored": len(votes),
        "lost": len(sent - set(stored_ids)),
        "counted_twice": len(votes) - len(set(stored_ids) & sent),
        "examples_collected": examples,
        "examples_expected": expected,
    }


def shown_url(url: str | None) -> str | None:
    from sqlalchemy.engine import make_url

    return None if url is None else make_url(url).render_as_string(hide_password=True)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def git_sha() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def measure(args: argparse.Namespace, workdir: Path, plan: list[Send]) -> dict[str, Any]:
    """The bare endpoint, then the bot against a fresh database, with the same schedule."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.slack_api import FakeSlackAPI

    sent_unique = max(s.event for s in plan) + 1
    quorum = 2
    env = {"SLACK_SIGNING_SECRET": SECRET}
    results: dict[str, Any] = {}
    if not args.no_baseline:
        bare = Server("bare", workdir, env, args.profile)
        try:
            results["bare"] = run_load(bare, plan, args.interactions)
        finally:
            bare.stop()
    url = fresh_database(args.database_url, workdir)
    seed_interactions(url, args.interactions)
    with FakeSlackAPI(bot_user_id=BOT) as slack_api:
        bot_env = env | {
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_API_URL": slack_api.api_url,
            "DATABASE_URL": url,
            "APPROVAL_QUORUM": str(quorum),
            "COLLECTED_REACTION": "inbox_tray",
            "CURATORS": "U0CURATOR",
        }
        bot = Server("bot", workdir, bot_env, args.profile)
        try:
            cpu_before = bot.cpu_seconds()
            load = run_load(bot, plan, args.interactions)
            expected = examples_expected(sent_unique, quorum, args.interactions)
            votes, examples, load["drain_s"] = drain(
                url,
                sent_unique,
                expected,
                lambda: len(slack_api.calls_to("reactions.add")),
                args.drain_timeout,
                args.quiet_seconds,
            )
            load |= vote_outcome(votes, examples, sent_unique, expected)
            cpu = bot.cpu_seconds() - cpu_before
            load["server_cpu_ms_per_request"] = cpu * 1000 / load["requests"]
            load["slack_api_calls"] = dict(Counter(call.method for call in slack_api.calls))
            load["server_errors"] = bot.error_lines()[:20]
        finally:
            bot.stop()
    results["bot"] = load
    return results


def print_table(results: dict[str, Any]) -> None:
    bot, bare = results["bot"], results.get("bare")
    rows = [
        ("requests sent (retries)", "requests", "{:,}"),
        ("non-200", "non_200", "{:,}"),
        ("ack p50 ms", "p50_ms", "{:.1f}"),
        ("ack p99 ms", "p99_ms", "{:.1f}"),
        ("ack max ms", "max_ms", "{:.1f}"),
        ("generator send lag p99 ms", "send_lag_p99_ms", "{:.1f}"),
        ("server CPU ms/request, all", "server_cpu_ms_per_request", "{:.2f}"),
    ]
    print(f"{'':<28}{'bot /slack/events':>20}{'bare signed endpoint':>22}")
    for label, key, fmt in rows:
        other = fmt.format(bare[key]) if bare else "-"
        value = fmt.format(bot[key])
        if key == "requests":
            value += f" ({bot['retries_sent']})"
        print(f"{label:<28}{value:>20}{other:>22}")
    for label, key in (
        ("unique events sent", "unique_events_sent"),
        ("votes stored", "votes_stored"),
        ("lost", "lost"),
        ("counted twice", "counted_twice"),
        ("examples collected", "examples_collected"),
        ("examples expected", "examples_expected"),
    ):
        print(f"{label:<28}{bot[key]:>20,}")
    print(f"{'collected marks added':<28}{bot['slack_api_calls'].get('reactions.add', 0):>20,}")
    print(f"{'lazy work drained in s':<28}{bot['drain_s']:>20.1f}")
    print(f"{'p99 / 100 ms floor':<28}{bot['p99_ms'] / FLOOR_P99_MS:>20.2f}")
    if bare:
        print(f"baseline: {BASELINE}")
        for key in ("p50_ms", "p99_ms", "server_cpu_ms_per_request"):
            ratio = bot[key] / max(bare[key], 1e-9)
            print(f"{key.removesuffix('_ms') + ' ratio vs baseline':<34}{ratio:>14.2f}x")
    for line in bot["server_errors"]:
        print("server:", line)
    verdict = bot["p99_ms"] < FLOOR_P99_MS and bot["lost"] == 0 and bot["counted_twice"] == 0
    print("floor (p99 < 100 ms, none lost, none counted twice):", "met" if verdict else "NOT met")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument("--interactions", type=int, default=1000, help="bot replies to react to")
    parser.add_argument("--database-url", help="PostgreSQL URL (its public schema is reset)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--quiet-seconds", type=float, default=15.0)
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of each server's event loop here"
    )
    parser.add_argument("--serve", choices=["bot", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port_file, args.profile)
        return
    plan = build_plan(args.rate, args.seconds, args.duplicate_share)
    started = machine()
    with tempfile.TemporaryDirectory(prefix="slack-load-") as tmp:
        results = measure(args, Path(tmp), plan)
    print_table(results)
    url = args.database_url or "sqlite"
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    name = f"slack_events_load_{database}_{args.rate:g}rps_{args.seconds:g}s.json"
    out = ROOT / "bench/results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": {
            k: v for k, v in vars(args).items() if k not in ("serve", "port_file", "profile")
        }
        | {"database_url": shown_url(args.database_url)},
        "database": database,
        "results": results,
        "machine": started | {"load_average_after": os.getloadavg()},
        "versions": versions(),
        "git_sha": git_sha(),
    }
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
