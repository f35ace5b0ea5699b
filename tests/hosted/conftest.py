"""Fixtures for hosted training: fake provider servers, a seeded store and the pipeline around them.

Nothing here loads a local model: production and the few-shot base are served by the fake
provider's chat endpoint (through ``load_backend``), and voice similarity is a plain function.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from brandvoice.bot.worker import RunReporter, Worker
from brandvoice.inference.openai_chat import OpenAIChat
from brandvoice.samples import SIGN_OFF, sample_examples_path
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.models import ExampleSource, ModelVersion, TrainingRun
from brandvoice.store.runs import claim_next_run, enqueue_run
from brandvoice.trainer.evaluate import EvalConfig
from brandvoice.trainer.hosted import HostedConfig
from brandvoice.trainer.pipeline import PipelineConfig, PipelineServices, run_retrain
from tests.fakes.openai_server import (
    FakeFineTuning,
    FakeOpenAIServer,
    FakeResponse,
    RecordedRequest,
    chat_completion,
)
from tests.fakes.together_server import together_server

__all__ = ["together_server"]

FAST = {
    "poll_interval_s": 0.01,
    "max_poll_interval_s": 0.02,
    "retry_initial_s": 0.05,
    "retry_max_s": 0.2,
    "give_up_after_s": 30.0,
    "price_per_million_tokens": 3.0,
}


def brand_rows(n: int = 16) -> list[dict[str, Any]]:
    lines = sample_examples_path().read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()][:n]


@pytest.fixture
def seeded(engine: Engine, count_tokens: Callable[..., list[int]]) -> Engine:
    """The store with 16 approved Pebble & Pine examples (at least 10 land in training)."""
    examples = [NewExample(row["messages"], ExampleSource.IMPORT) for row in brand_rows()]
    with session_scope(engine) as session:
        add_examples(session, examples, count_tokens)
    return engine


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        server.add_route("POST", "/v1/chat/completions", voice_reply)
        yield server


@pytest.fixture
def fine_tuning(openai_server: FakeOpenAIServer) -> FakeFineTuning:
    return FakeFineTuning(openai_server)


def voice_reply(request: RecordedRequest) -> FakeResponse:
    """Fine-tuned models (OpenAI ``ft:...``, Together ``fake-user/...``) answer in the brand's
    voice; every other model echoes the question."""
    body = request.body if isinstance(request.body, dict) else {}
    model = str(body.get("model", ""))
    tuned = model.startswith(("ft:", "fake-user/"))
    text = (
        f"On it: here's what we'll do.\n\n{SIGN_OFF}"
        if tuned
        else "echo: " + str(body["messages"][-1]["content"])
    )
    return FakeResponse(200, chat_completion(text, model=model))


def sign_off_similarity(replies: Sequence[str], references: Sequence[str]) -> list[float]:
    """1 when a reply ends the way its reference does (the team's sign-off), else 0."""
    return [
        float(ref.strip().splitlines()[-1] in reply)
        for reply, ref in zip(replies, references, strict=True)
    ]


@dataclass
class Harness:
    """One pipeline wired to a fake provider, and ways to run and inspect runs."""

    engine: Engine
    config: PipelineConfig
    services: PipelineServices

    def enqueue(self, backend: str) -> int:
        with session_scope(self.engine) as session:
            run = enqueue_run(session, "tester", backend=backend, force=True)
            assert run.id is not None
            return run.id

    def worker(self, reporter: type[RunReporter] = RunReporter) -> Worker:
        def execute(run_id: int, progress: RunReporter) -> dict[str, Any]:
            return run_retrain(self.engine, run_id, self.config, self.services, progress)

        return Worker(self.engine, execute, heartbeat_interval_s=60, reporter_factory=reporter)

    def execute(self, run_id: int, reporter: type[RunReporter] = RunReporter) -> TrainingRun:
        worker = self.worker(reporter)
        assert claim_next_run(self.engine, worker.name, run_id) is not None
        worker.execute_claimed(run_id)
        return self.run(run_id)

    def run(self, run_id: int) -> TrainingRun:
        with session_scope(self.engine) as session:
            run = session.get(TrainingRun, run_id)
            assert run is not None
            session.expunge(run)
            return run

    def versions(self) -> list[ModelVersion]:
        from brandvoice.trainer.registry import list_versions

        with session_scope(self.engine) as session:
            found = list_versions(session)
            for version in found:
                session.expunge(version)
            return found


def make_harness(
    engine: Engine, artifacts: Path, server: FakeOpenAIServer, **hosted: Any
) -> Harness:
    """Production and the base model are served by ``server`` too, so no local model loads."""

    def load_backend(version: ModelVersion | None) -> OpenAIChat:
        model = version.hosted_model_id if version and version.hosted_model_id else "base-model"
        return OpenAIChat(model, base_url=server.base_url, api_key="sk-test", max_retries=0)

    config = PipelineConfig(
        artifacts_dir=artifacts,
        min_new_examples=1,
        few_shot=2,
        eval=EvalConfig(max_examples=4, samples=2),
        hosted=replace(HostedConfig(), **{**FAST, **hosted}),
    )
    services = PipelineServices(load_backend=load_backend, similarity=sign_off_similarity)
    return Harness(engine, config, services)


@pytest.fixture
def openai_harness(seeded: Engine, tmp_path: Path, openai_server: FakeOpenAIServer) -> Harness:
    return make_harness(
        seeded,
        tmp_path / "artifacts",
        openai_server,
        openai_api_key="sk-test",
        openai_base_url=openai_server.base_url,
    )
