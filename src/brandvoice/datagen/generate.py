"""Expand approved examples into filtered synthetic variations, with provenance, resumably.

Work goes in chunks of a few parents: generate (bounded concurrency, retries), parse strictly,
judge with the filters, then store every candidate and the kept examples in one transaction. A
rerun skips every (parent, strategy, index, template version) already stored, so an interrupted
run repeats at most the calls of the chunk it was in. Kept examples go in through
``add_examples`` (redaction, hashing, and the parent's split, so a child of a validation example
stays out of training).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import col, select

from brandvoice.datagen import fewshot
from brandvoice.datagen.calls import Call, run_calls
from brandvoice.datagen.filters import CandidateFilter, Draft, Embedder, FilterConfig
from brandvoice.datagen.guidelines import claim_sources, guidelines_for_prompt
from brandvoice.datagen.outcome import Outcome
from brandvoice.datagen.parse import ParseError, parse_plain_reply
from brandvoice.datagen.record import RecordContext, store_outcomes
from brandvoice.datagen.strategies import (
    LOCAL_STRATEGIES,
    PLAIN_STRATEGIES,
    STRATEGIES,
    Parent,
    Task,
    answer_call,
    answered_by_responder,
    assemble,
    check_strategies,
    plan_jobs,
    read_job,
    task_seed,
    template_version,
)
from brandvoice.datagen.summary import GenerateProgress, GenerateSummary
from brandvoice.inference.chat import ChatBackend, ChatResult, CompletionBackend, Sampling
from brandvoice.inference.errors import ChatBackendError
from brandvoice.store.candidates import CandidateKey, generated_keys
from brandvoice.store.db import session_scope
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.models import Example, ExampleSource, ExampleStatus, Split
from brandvoice.store.redact import Redactor

__all__ = ["GenerateConfig", "GenerateProgress", "GenerateSummary", "generate_variations"]


@dataclass(frozen=True)
class GenerateConfig:
    per_example: int = 1
    """Candidates per parent and strategy (indexes 0..N-1)."""
    strategies: tuple[str, ...] | None = None
    """None: every strategy for a JSON-capable generator, ``LOCAL_STRATEGIES`` for one that
    continues raw text (the local model), ``PLAIN_STRATEGIES`` otherwise."""
    seed: int = 0
    concurrency: int = 4
    chunk_size: int = 16
    """Candidates stored per transaction (whole parents at a time)."""
    request_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.7, max_tokens=96)
    )
    reply_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.7, max_tokens=200)
    )
    answer_demos: int = 1
    fewshot_request_sampling: Sampling = fewshot.REQUEST_SAMPLING
    """A local generator's new requests, continued from a few-shot prompt (one line)."""
    fewshot_reply_sampling: Sampling = fewshot.FEWSHOT_REPLY_SAMPLING
    """Replies continued from the few-shot prompt, when no voice model answers."""
    filters: FilterConfig = field(default_factory=FilterConfig)
    parent_ids: tuple[int, ...] | None = None
    """Only these parents (validation ones included if named); None: approved real training
    examples."""
    max_parents: int | None = None
    dry_run: bool = False
    """Generate and judge, store nothing."""
    actor: str = "datagen"


def default_strategies(generator: ChatBackend) -> tuple[str, ...]:
    if generator.supports_json:
        return STRATEGIES
    return LOCAL_STRATEGIES if isinstance(generator, CompletionBackend) else PLAIN_STRATEGIES


def generate_variations(
    engine: Engine,
    generator: ChatBackend,
    *,
    embed: Embedder,
    count_tokens: TokenCounter,
    responder: ChatBackend | None = None,
    config: GenerateConfig | None = None,
    redactor: Redactor | None = None,
    on_progress: Callable[[GenerateProgress], None] | None = None,
) -> GenerateSummary:
    """Generate, judge and store variations of approved examples; returns what happened.

    ``responder`` answers new and reworded requests in the voice (e.g. the latest trained
    adapter); it defaults to ``generator``. A generator without JSON output that continues raw
    text (the local model) writes new requests by few-shot continuation instead of templates.
    """
    config = config or GenerateConfig()
    voice = responder is not None and responder is not generator
    responder = responder or generator
    redactor = redactor or Redactor()
    json_mode = bool(generator.supports_json)
    strategies = check_strategies(config.strategies or default_strategies(generator))
    started = time.perf_counter()
    summary = GenerateSummary(
        generator.model_name, responder.model_name, strategies, dry_run=config.dry_run
    )
    with session_scope(engine) as session:
        guidelines = guidelines_for_prompt(session)
        sources = claim_sources(session)
        examples = list(session.exec(select(Example).order_by(col(Example.id))))
        done = generated_keys(session)
    parents, demo_pool = _parents(examples, config)
    fewshot_version = (
        fewshot.template_version(voice)
        if not json_mode and isinstance(generator, CompletionBackend)
        else None
    )
    tasks = _plan(parents, strategies, config, json_mode, done, summary, fewshot_version)
    judge = CandidateFilter(
        ((e.id, e.messages) for e in examples),
        count_tokens=count_tokens,
        embed=embed,
        config=config.filters,
        redactor=redactor,
        sources=sources,
    )
    context = RecordContext(
        generator.model_name,
        responder.model_name,
        config.request_sampling,
        config.reply_sampling,
        count_tokens,
        redactor,
        config.actor,
        fewshot_sampling=(
            config.fewshot_request_sampling,
            config.reply_sampling if voice else config.fewshot_reply_sampling,
        ),
    )
    done_tasks = 0
    for chunk in _chunks(tasks, config.chunk_size):
        plain = [t for t in chunk if not t.fewshot]
        outcomes = _generate(plain, generator, responder, guidelines, demo_pool, json_mode, config)
        outcomes += _generate_fewshot(
            [t for t in chunk if t.fewshot], generator, responder, voice, demo_pool, config
        )
        _judge(outcomes, judge)
        if not config.dry_run:
            with session_scope(engine) as session:
                store_outcomes(session, outcomes, context)
        summary.count(outcomes)
        done_tasks += len(chunk)
        if on_progress is not None:
            on_progress(summary.progress(done_tasks, len(tasks)))
    summary.seconds = time.perf_counter() - started
    return summary


def _parents(
    examples: Sequence[Example], config: GenerateConfig
) -> tuple[list[Parent], list[Parent]]:
    """(parents to expand, training examples that may serve as demonstrations)."""
    real = [
        e
        for e in examples
        if e.source != ExampleSource.SYNTHETIC and e.status == ExampleStatus.APPROVED
    ]
    demo_pool = [Parent(e.id, e.messages) for e in real if e.split == Split.TRAIN]  # type: ignore[arg-type]
    if config.parent_ids is not None:
        wanted = set(config.parent_ids)
        chosen = [e for e in real if e.id in wanted]
        missing = wanted - {e.id for e in chosen}
        if missing:
            raise ValueError(
                f"example(s) {sorted(missing)} are not approved, non-synthetic examples to expand"
            )
    else:
        chosen = [e for e in real if e.split == Split.TRAIN]
    chosen = chosen[: config.max_parents] if config.max_parents is not None else chosen
    return [Parent(e.id, e.messages) for e in chosen], demo_pool  # type: ignore[arg-type]


def _plan(
    parents: Sequence[Parent],
    strategies: Sequence[str],
    config: GenerateConfig,
    json_mode: bool,
    done: set[CandidateKey],
    summary: GenerateSummary,
    fewshot_version: str | None = None,
) -> list[Task]:
    """Every candidate not yet stored; ``fewshot_version``: ``new_requests`` by continuation."""
    summary.parents = len(parents)
    versions = {s: template_version(s, json_mode) for s in strategies}
    by_fewshot = fewshot_version is not None and fewshot.STRATEGY in versions
    if by_fewshot:
        versions[fewshot.STRATEGY] = fewshot_version  # type: ignore[assignment]
    tasks = []
    for parent in parents:
        for strategy in strategies:
            for index in range(config.per_example):
                if CandidateKey(parent.id, strategy, index, versions[strategy]) in done:
                    summary.skipped += 1
                    continue
                seed = task_seed(config.seed, parent.id, strategy, index)
                made_by_fewshot = by_fewshot and strategy == fewshot.STRATEGY
                tasks.append(
                    Task(
                        parent,
                        strategy,
                        index,
                        versions[strategy],
                        seed,
                        json_mode,
                        made_by_fewshot,
                    )
                )
    summary.planned = len(tasks)
    return tasks


def _chunks(tasks: Sequence[Task], size: int) -> Iterator[list[Task]]:
    """Runs of tasks of whole parents, about ``size`` long (a JSON call serves a whole parent)."""
    chunk: list[Task] = []
    for task in tasks:
        if len(chunk) >= size and chunk[-1].parent.id != task.parent.id:
            yield chunk
            chunk = []
        chunk.append(task)
    if chunk:
        yield chunk


def _generate(
    tasks: Sequence[Task],
    generator: ChatBackend,
    responder: ChatBackend,
    guidelines: str,
    demo_pool: Sequence[Parent],
    json_mode: bool,
    config: GenerateConfig,
) -> list[Outcome]:
    """Generator calls, then the responder's answers for the strategies that need one."""
    outcomes = {id(t): Outcome(t) for t in tasks}
    jobs = plan_jobs(
        tasks,
        guidelines=guidelines,
        demo_pool=demo_pool,
        json_mode=json_mode,
        request_sampling=config.request_sampling,
        reply_sampling=config.reply_sampling,
    )
    results = run_calls(generator, [j.call for j in jobs], config.concurrency)
    to_answer: list[tuple[Outcome, str]] = []
    for job, result in zip(jobs, results, strict=True):
        items = read_job(job, result) if isinstance(result, ChatResult) else None
        for position, task in enumerate(job.tasks):
            outcome = outcomes[id(task)]
            if items is None:
                outcome.error = result  # type: ignore[assignment]
                continue
            outcome.raw_text = result.text  # type: ignore[union-attr]
            outcome.references = job.demos
            item = items[position]
            if isinstance(item, ParseError):
                outcome.parse_error, outcome.parse_stage = item, "generator"
            elif answered_by_responder(task.strategy):
                to_answer.append((outcome, item))
            else:
                outcome.messages = assemble(task, task.parent.request, item)
    calls: list[Call] = [
        answer_call(
            o.task,
            request,
            guidelines=guidelines,
            demo_pool=demo_pool,
            reply_sampling=config.reply_sampling,
            demos=config.answer_demos,
        )
        for o, request in to_answer
    ]
    answers = run_calls(responder, calls, config.concurrency)
    for (outcome, request), answer in zip(to_answer, answers, strict=True):
        if not isinstance(answer, ChatResult):
            outcome.error = answer
            continue
        outcome.raw_reply = answer.text
        try:
            reply = parse_plain_reply(answer.text, finish_reason=answer.finish_reason)
        except ParseError as exc:
            outcome.parse_error, outcome.parse_stage = exc, "responder"
            continue
        outcome.messages = assemble(outcome.task, request, reply)
    return list(outcomes.values())


def _generate_fewshot(
    tasks: Sequence[Task],
    generator: ChatBackend,
    responder: ChatBackend,
    voice: bool,
    demo_pool: Sequence[Parent],
    config: GenerateConfig,
) -> list[Outcome]:
    """New requests continued from few-shot prompts in one batch, then their replies in one batch:
    from the voice model as it is served, else continued from the same prompt."""
    if not tasks:
        return []
    outcomes = [Outcome(t) for t in tasks]
    demos = [fewshot.pick_demos(t.parent, demo_pool, t.seed) for t in tasks]
    prompts = [fewshot.request_prompt(d) for d in demos]
    sampling = fewshot.batch_sampling(config.fewshot_request_sampling, tasks)
    try:
        results = generator.complete_text_batch(prompts, sampling)  # type: ignore[attr-defined]
    except ChatBackendError as exc:
        for outcome in outcomes:
            outcome.error = exc
        return outcomes
    asked: list[tuple[Outcome, str, list[Parent]]] = []
    for outcome, result, shown in zip(outcomes, results, demos, strict=True):
        outcome.raw_text = result.text
        outcome.references = tuple(shown[:-1])
        try:
            asked.append((outcome, fewshot.parse_request(result), shown))
        except ParseError as exc:
            outcome.parse_error, outcome.parse_stage = exc, "generator"
    if not asked:
        return outcomes
    reply_tasks = [o.task for o, _, _ in asked]
    try:
        if voice:
            reply_sampling = fewshot.batch_sampling(config.reply_sampling, reply_tasks)
            conversations = [fewshot.voice_messages(o.task.parent, r) for o, r, _ in asked]
            answers = responder.complete_batch(conversations, reply_sampling)
        else:
            reply_sampling = fewshot.batch_sampling(config.fewshot_reply_sampling, reply_tasks)
            answers = generator.complete_text_batch(  # type: ignore[attr-defined]
                [fewshot.reply_prompt(shown, r) for _, r, shown in asked], reply_sampling
            )
    except ChatBackendError as exc:
        for outcome, _, _ in asked:
            outcome.error = exc
        return outcomes
    for (outcome, request, _), answer in zip(asked, answers, strict=True):
        outcome.raw_reply = answer.text
        try:
            reply = fewshot.parse_reply(answer)
        except ParseError as exc:
            outcome.parse_error, outcome.parse_stage = exc, "responder"
            continue
        outcome.messages = assemble(outcome.task, request, reply)
    return outcomes


def _judge(outcomes: Sequence[Outcome], judge: CandidateFilter) -> None:
    ready = [o for o in outcomes if o.messages is not None]
    drafts = [
        Draft(
            o.messages,  # type: ignore[arg-type]
            o.task.parent.messages,
            o.task.strategy,
            f"parent {o.task.parent.id} {o.task.strategy} #{o.task.index}",
            tuple(p.messages for p in o.references),
        )
        for o in ready
    ]
    for outcome, verdict in zip(ready, judge.judge(drafts), strict=True):
        outcome.verdict = verdict
