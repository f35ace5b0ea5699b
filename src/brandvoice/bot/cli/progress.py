"""A run reporter that also draws a rich progress bar, for runs executed from the terminal."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from brandvoice.bot.cli.context import console
from brandvoice.bot.worker import RunReporter
from brandvoice.store.runs import RunClaim


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


class ConsoleRunReporter(RunReporter):
    """Writes progress to the run row (as the worker does) and to a progress bar; where the
    output is not a terminal (a log, CI) the bar is not drawn, so each new stage gets a line."""

    bar: Progress | None = None

    def __init__(self, engine: Engine, claim: RunClaim) -> None:
        super().__init__(engine, claim)
        assert self.bar is not None, "set ConsoleRunReporter.bar before running"
        self.task = self.bar.add_task(f"run {claim.run_id}", total=1.0, detail="")
        self.stage: str | None = None
        self.started = time.monotonic()

    def progress(
        self, fraction: float, stage: str | None = None, metrics: dict[str, Any] | None = None
    ) -> None:
        detail = stage or ""
        train = (metrics or {}).get("train") or {}
        if "loss" in train:
            detail += f" loss {train['loss']:.3f}"
        if "eval_loss" in train:
            detail += f" val {train['eval_loss']:.3f}"
        assert self.bar is not None
        self.bar.update(self.task, completed=fraction, detail=detail)
        if stage and stage != self.stage and not console.is_terminal:
            elapsed = time.monotonic() - self.started
            console.print(
                f"run {self.claim.run_id} {fraction:>4.0%} {stage}  elapsed {elapsed:.0f} s"
            )
        self.stage = stage or self.stage
        super().progress(fraction, stage, metrics)
