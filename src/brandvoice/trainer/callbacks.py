"""What the fit loop calls out to: the callback hooks, and progress as plain lines for output
that is not a terminal (CI logs, ``nohup``, the worker's log), where a live bar draws nothing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import TextIO

LINES_PER_RUN = 20


class TrainCallback:
    """Progress hooks: subclass and override what you need (any object with some of these methods
    works too). Returning ``"stop"``, or ``should_stop()`` turning true (polled after every step),
    cancels the run after a checkpoint, so it can be resumed. Called on the main process only."""

    def on_step(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        return None

    def on_eval(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        return None

    def should_stop(self) -> bool:
        return False


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressLines(TrainCallback):
    """One line every ``every`` steps (by default about ``LINES_PER_RUN`` lines a run), on the
    first and last step and after every evaluation: step/total, loss, throughput, elapsed, ETA."""

    def __init__(self, stream: TextIO, every: int | None = None) -> None:
        self.stream, self.every = stream, every

    def on_step(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        every = self.every or max(1, math.ceil(total / LINES_PER_RUN))
        if step % every and step != total and step != 1:
            return None
        elapsed = metrics.get("elapsed_s", 0.0)
        rate = metrics.get("trained_tokens", 0.0) / elapsed if elapsed > 0 else 0.0
        eta = elapsed / step * (total - step)
        self._write(
            f"train step {step}/{total}  loss {metrics.get('loss', math.nan):.4f}  "
            f"{rate:,.0f} tok/s  elapsed {_clock(elapsed)}  ETA {_clock(eta)}"
        )
        return None

    def on_eval(self, step: int, total: int, metrics: Mapping[str, float]) -> str | None:
        line = f"eval  step {step}/{total}  val loss {metrics.get('eval_loss', math.nan):.4f}"
        if metrics.get("best_eval_loss") is not None:
            line += f"  best {metrics['best_eval_loss']:.4f}"
        self._write(line)
        return None

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
