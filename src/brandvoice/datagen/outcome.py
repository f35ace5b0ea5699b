"""What happened to one planned candidate: raw outputs, parsed messages, a parse failure, a failed
call, or the filters' verdict. Generation fills it in; storing and counting read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brandvoice.datagen.filters import Verdict
from brandvoice.datagen.parse import ParseError
from brandvoice.datagen.strategies import Parent, Task, answered_by_responder, sampling_dict
from brandvoice.inference.chat import Sampling
from brandvoice.store.candidates import CandidateKey


@dataclass
class Outcome:
    task: Task
    raw_text: str = ""
    raw_reply: str | None = None
    messages: list[dict[str, Any]] | None = None
    parse_error: ParseError | None = None
    parse_stage: str | None = None
    """``generator`` or ``responder``: whose output could not be parsed."""
    error: Exception | None = None
    """A call that failed after its retries: nothing is stored, a rerun tries again."""
    verdict: Verdict | None = None
    references: tuple[Parent, ...] = ()
    example_id: int | None = None

    @property
    def key(self) -> CandidateKey:
        task = self.task
        return CandidateKey(task.parent.id, task.strategy, task.index, task.template_version)

    @property
    def kept(self) -> bool:
        return self.verdict is not None and self.verdict.keep


def sampling_record(
    task: Task, request_sampling: Sampling, reply_sampling: Sampling
) -> dict[str, Any]:
    """The sampling of each call that made the candidate, with its seed."""
    step = reply_sampling if task.strategy == "reply_variation" else request_sampling
    record: dict[str, Any] = {
        "generator": {**sampling_dict(step), "seed": task.seed, "json_output": task.json_mode}
    }
    if answered_by_responder(task.strategy):
        record["responder"] = {**sampling_dict(reply_sampling), "seed": task.seed + 1}
    return record
