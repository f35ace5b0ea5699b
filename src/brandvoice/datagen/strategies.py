"""The three ways a variation is made, as prompts to render and outputs to read.

- ``paraphrase``: the generator rewords the parent's request; the responder answers the rewording.
- ``new_requests`` (Self-Instruct): approved requests as demonstrations, the generator writes new
  ones; the responder answers each.
- ``reply_variation``: the generator rewrites the parent's reply at another length or shape.

Backends that support JSON get JSON templates (``new_requests`` asks for all of a parent's requests
in one call); the others get one-item-per-call plain-text templates. Demonstrations come from
training examples only: a validation example must not shape what the model is trained on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from brandvoice.datagen.calls import Call
from brandvoice.datagen.parse import (
    ParseError,
    parse_json_object,
    parse_plain_item,
    parse_plain_reply,
)
from brandvoice.datagen.templates import PromptTemplate, load_template
from brandvoice.inference.chat import ChatResult, Sampling

STRATEGIES = ("paraphrase", "new_requests", "reply_variation")
PLAIN_STRATEGIES = ("paraphrase",)
"""What a chat model without JSON output is asked to do with the plain-text templates: reword a
request, answered by the responder."""
LOCAL_STRATEGIES = ("new_requests",)
"""What a small local generator is asked to do: continue a few of the brand's real exchanges with a
new request (:mod:`brandvoice.datagen.fewshot`), answered by the voice model. The instruction
templates failed with the 135M base model as both generator and responder, on the sample brand:
1 of 30 candidates (10 parents x 3 strategies) and 0 of 20 paraphrases survived the filters,
mostly outputs cut off at the token limit, then looping text and drift."""

REPLY_STYLES = (
    "shorter: two or three sentences with the same facts",
    "a little longer, adding one useful detail the guidelines allow",
    "so that it opens with the next step the person should take",
    "in warmer, plainer words, with the same facts",
)

_STEP_TEMPLATES = {
    "paraphrase": ("paraphrase", "paraphrase_json"),
    "new_requests": ("new_request", "new_requests_json"),
    "reply_variation": ("reply_variation", "reply_variation_json"),
}
_ANSWERED = {"paraphrase", "new_requests"}
_DEMO_REQUESTS = 3


@dataclass(frozen=True)
class Parent:
    """An approved, real example that variations are made from."""

    id: int
    messages: list[dict[str, Any]]

    @property
    def system(self) -> str | None:
        return next((m["content"] for m in self.messages if m.get("role") == "system"), None)

    @property
    def request(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m.get("role") == "user")

    @property
    def reply(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m.get("role") == "assistant")


@dataclass(frozen=True)
class Task:
    parent: Parent
    strategy: str
    index: int
    template_version: str
    seed: int
    """Seeds the generator's call; the responder's call uses ``seed + 1``."""
    json_mode: bool = False
    fewshot: bool = False
    """Made by continuing a few-shot prompt (:mod:`brandvoice.datagen.fewshot`), not a template."""


@dataclass(frozen=True)
class Job:
    """One generator call, serving one task (plain text) or all of a parent's tasks (JSON)."""

    tasks: tuple[Task, ...]
    call: Call
    json_mode: bool
    demos: tuple[Parent, ...] = ()
    """Other examples shown as demonstrations (``new_requests``): what its output should resemble."""


def check_strategies(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    return tuple(dict.fromkeys(names))


def answered_by_responder(strategy: str) -> bool:
    return strategy in _ANSWERED


def step_template(strategy: str, json_mode: bool) -> PromptTemplate:
    return load_template(_STEP_TEMPLATES[strategy][1 if json_mode else 0])


def template_version(strategy: str, json_mode: bool) -> str:
    """Every template a strategy's candidate passes through, e.g. ``paraphrase@1+answer@1``."""
    refs = [step_template(strategy, json_mode).ref]
    if answered_by_responder(strategy):
        refs.append(load_template("answer").ref)
    return "+".join(refs)


def task_seed(base_seed: int, parent_id: int, strategy: str, index: int) -> int:
    """A stable 31-bit seed per candidate, so a rerun of one candidate samples the same way."""
    digest = hashlib.sha256(f"{base_seed}:{parent_id}:{strategy}:{index}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def plan_jobs(
    tasks: Sequence[Task],
    *,
    guidelines: str,
    demo_pool: Sequence[Parent],
    json_mode: bool,
    request_sampling: Sampling,
    reply_sampling: Sampling,
) -> list[Job]:
    """Generator calls for ``tasks``: one each, except JSON ``new_requests``, one per parent."""
    jobs: list[Job] = []
    grouped: dict[int, list[Task]] = {}
    for task in tasks:
        if json_mode and task.strategy == "new_requests":
            grouped.setdefault(task.parent.id, []).append(task)
            continue
        sampling = reply_sampling if task.strategy == "reply_variation" else request_sampling
        messages, demos = _step_messages(task, guidelines, demo_pool, json_mode, count=1)
        call = Call(messages, replace(sampling, seed=task.seed, json_output=json_mode))
        jobs.append(Job((task,), call, json_mode, demos))
    for group in grouped.values():
        first = group[0]
        messages, demos = _step_messages(first, guidelines, demo_pool, json_mode, len(group))
        call = Call(messages, replace(request_sampling, seed=first.seed, json_output=True))
        jobs.append(Job(tuple(group), call, json_mode, demos))
    return jobs


def _step_messages(
    task: Task, guidelines: str, demo_pool: Sequence[Parent], json_mode: bool, count: int
) -> tuple[list[dict[str, str]], tuple[Parent, ...]]:
    parent = task.parent
    values: dict[str, object] = {"guidelines": guidelines, "request": parent.request}
    demos: tuple[Parent, ...] = ()
    if task.strategy == "new_requests":
        demos = tuple(_pick(demo_pool, parent.id, _DEMO_REQUESTS - 1, task.seed))
        shown = [parent, *demos]
        values["examples"] = "\n".join(f"{i}. {d.request}" for i, d in enumerate(shown, 1))
        values["count"] = count
    elif task.strategy == "reply_variation":
        values["reply"] = parent.reply
        values["style"] = REPLY_STYLES[task.index % len(REPLY_STYLES)]
    return step_template(task.strategy, json_mode).render(values), demos


def read_job(job: Job, result: ChatResult) -> list[str | ParseError]:
    """What each of the job's tasks got from the generator: a request or reply, or why not."""
    strategy = job.tasks[0].strategy
    try:
        if not job.json_mode:
            parse = parse_plain_reply if strategy == "reply_variation" else parse_plain_item
            return [parse(result.text, finish_reason=result.finish_reason)]
        if strategy == "new_requests":
            value = parse_json_object(
                result.text, {"requests": list}, finish_reason=result.finish_reason
            )
            items: list[str | ParseError] = [r.strip() for r in value["requests"]]
            missing = ParseError("too_few_items", f"asked for {len(job.tasks)}, got {len(items)}")
            return (items + [missing] * len(job.tasks))[: len(job.tasks)]
        field = "reply" if strategy == "reply_variation" else "request"
        value = parse_json_object(result.text, {field: str}, finish_reason=result.finish_reason)
        return [value[field].strip()]
    except ParseError as exc:
        return [exc] * len(job.tasks)


def answer_call(
    task: Task,
    request: str,
    *,
    guidelines: str,
    demo_pool: Sequence[Parent],
    reply_sampling: Sampling,
    demos: int = 1,
) -> Call:
    """The responder's call: the parent's system prompt, the guidelines, one approved exchange."""
    shown = _pick(demo_pool, task.parent.id, demos, task.seed + 1)
    values = {
        "system": task.parent.system or "Answer in the team's voice.",
        "guidelines": guidelines,
        "request": request,
    }
    messages = load_template("answer").render(values, [(d.request, d.reply) for d in shown])
    return Call(messages, replace(reply_sampling, seed=task.seed + 1, json_output=False))


def assemble(task: Task, request: str, reply: str) -> list[dict[str, Any]]:
    """The candidate example: the parent's system prompt, the (new) request and the reply."""
    system = [m for m in task.parent.messages if m.get("role") == "system"][:1]
    return [
        *(dict(m) for m in system),
        {"role": "user", "content": request},
        {"role": "assistant", "content": reply},
    ]


def _pick(pool: Sequence[Parent], exclude: int, n: int, seed: int) -> list[Parent]:
    others = [p for p in pool if p.id != exclude]
    return random.Random(seed).sample(others, min(n, len(others)))


def sampling_dict(sampling: Sampling) -> Mapping[str, Any]:
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed,
        "json_output": sampling.json_output,
        **({"stop": list(sampling.stop)} if sampling.stop else {}),
    }
