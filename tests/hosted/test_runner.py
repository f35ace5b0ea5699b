"""The runner's timing, with the waits recorded instead of slept: polls back off while a job is
quiet, the run keeps reporting in between, and an outage that never ends fails the run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from brandvoice.store.models import DatasetSnapshot
from brandvoice.trainer.hosted import HostedConfig, HostedTrainingError, make_provider
from brandvoice.trainer.hosted.runner import run_hosted_training
from brandvoice.trainer.pipeline import PipelineConfig, take_snapshot
from tests.fakes.openai_server import FakeFineTuning, FakeOpenAIServer, JobPlan, openai_error
from tests.hosted.conftest import Harness


class Clock:
    """Time that passes only when the runner waits."""

    def __init__(self) -> None:
        self.now, self.waits = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.stages: list[str | None] = []

    def progress(self, fraction: float, stage: str | None = None, metrics: Any = None) -> None:
        self.stages.append(stage)


def start(harness: Harness, server: FakeOpenAIServer, **hosted: Any):  # type: ignore[no-untyped-def]
    config = replace(harness.config.hosted, **hosted)
    snapshot: DatasetSnapshot = take_snapshot(
        harness.engine, PipelineConfig(harness.config.artifacts_dir), "t"
    )
    clock, progress = Clock(), Recorder()

    def go() -> Any:
        return run_hosted_training(
            harness.engine,
            harness.enqueue("openai"),
            snapshot,
            make_provider("openai", config),
            config,
            progress,
            harness.config.artifacts_dir / "out",
            sleep=clock.sleep,
            clock=clock,
        )

    return go, clock, progress


def test_polls_back_off_while_the_job_is_quiet_and_the_run_still_reports(
    openai_harness: Harness, openai_server: FakeOpenAIServer
):
    quiet = ("validating_files", "queued", *(["running"] * 5), "succeeded")
    FakeFineTuning(openai_server, JobPlan(statuses=quiet, losses=(1.0,)))
    go, clock, progress = start(
        openai_harness, openai_server, poll_interval_s=1.0, max_poll_interval_s=4.0
    )

    outcome = go()

    assert outcome.job.status == "succeeded"
    # queued, then running with a loss: 1 s each; then quiet: 1.5, 2.25, 3.375, then capped at 4,
    # each cut into 1 s slices with a report in between.
    assert clock.waits == [
        1.0,
        1.0,
        1.0,
        0.5,
        1.0,
        1.0,
        0.25,
        1.0,
        1.0,
        1.0,
        0.375,
        1.0,
        1.0,
        1.0,
        1.0,
    ]
    polls = openai_server.requests_to("GET", f"/v1/fine_tuning/jobs/{outcome.job.id}")
    assert len(polls) == 7
    assert progress.stages.count("train: running") == 5 + (1 + 2 + 3 + 3)


def test_an_outage_that_does_not_end_fails_the_run_after_the_give_up_time(
    openai_harness: Harness, openai_server: FakeOpenAIServer
):
    FakeFineTuning(openai_server)
    down = openai_error(502, "Bad gateway", type="server_error")
    openai_server.script("GET", "/v1/fine_tuning/jobs/{job_id}", *([down] * 50))
    go, clock, _ = start(
        openai_harness,
        openai_server,
        retry_initial_s=1.0,
        retry_max_s=8.0,
        give_up_after_s=20.0,
    )

    with pytest.raises(
        HostedTrainingError, match=r"Bad gateway.*still failing after 20 s \(6 attempts\)"
    ):
        go()

    # The last wait is cut to the deadline: the sixth attempt is made at 20 s, and none after it.
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 5.0]
    assert HostedConfig().give_up_after_s == 3600.0
