"""Storing a chunk: every candidate (kept or dropped, raw outputs redacted) and the kept examples,
through ``add_examples`` like every other way into the store, linked both ways."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlmodel import Session, col, select

from brandvoice.datagen.outcome import Outcome, sampling_record
from brandvoice.datagen.provenance import build_provenance
from brandvoice.datagen.strategies import answered_by_responder
from brandvoice.inference.chat import Sampling
from brandvoice.store.candidates import (
    CandidateVerdict,
    insert_candidates,
    link_example,
    mark_dropped,
)
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.models import Example, ExampleSource, ExampleStatus
from brandvoice.store.redact import Redactor

RACE_DETAIL = "an identical example was stored meanwhile"


@dataclass(frozen=True)
class RecordContext:
    generator_model: str
    responder_model: str
    request_sampling: Sampling
    reply_sampling: Sampling
    count_tokens: TokenCounter
    redactor: Redactor
    actor: str
    fewshot_sampling: tuple[Sampling, Sampling] | None = None
    """(request, reply) sampling of few-shot candidates, which the templates' do not describe."""

    def responder_for(self, strategy: str) -> str | None:
        return self.responder_model if answered_by_responder(strategy) else None

    def sampling_for(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.task.fewshot and self.fewshot_sampling is not None:
            return sampling_record(outcome.task, *self.fewshot_sampling)
        return sampling_record(outcome.task, self.request_sampling, self.reply_sampling)


def candidate_row(outcome: Outcome, context: RecordContext) -> dict[str, Any]:
    """The stored candidate; raw outputs are redacted like everything else that is stored."""
    task, verdict = outcome.task, outcome.verdict
    redact = context.redactor.redact_text
    row: dict[str, Any] = {
        "parent_id": task.parent.id,
        "strategy": task.strategy,
        "item_index": task.index,
        "template_version": task.template_version,
        "generator_model": context.generator_model,
        "responder_model": context.responder_for(task.strategy),
        "sampling": context.sampling_for(outcome),
        "seed": task.seed,
        "raw_text": redact(outcome.raw_text)[0],
        "raw_reply": None if outcome.raw_reply is None else redact(outcome.raw_reply)[0],
    }
    if verdict is None:
        error = outcome.parse_error
        assert error is not None, "a stored candidate is either judged or unparsable"
        return row | {
            "messages": None,
            "verdict": CandidateVerdict.DROP.value,
            "reason": "parse_error",
            "detail": f"{outcome.parse_stage} output: {error}",
            "scores": {
                "parse": {"passed": False, "stage": outcome.parse_stage, "reason": error.reason}
            },
            "score": None,
        }
    return row | {
        "messages": verdict.messages,
        "verdict": (CandidateVerdict.KEEP if verdict.keep else CandidateVerdict.DROP).value,
        "reason": verdict.reason,
        "detail": verdict.detail,
        "scores": verdict.scores_dict(),
        "score": verdict.score,
    }


def store_outcomes(session: Session, outcomes: Sequence[Outcome], context: RecordContext) -> None:
    """Store the candidates (a key another run stored first is skipped) and the kept examples;
    sets ``example_id`` on the kept outcomes. A kept example whose content another process
    stored meanwhile becomes an exact-duplicate drop."""
    stored = [o for o in outcomes if o.error is None]
    created = insert_candidates(session, [candidate_row(o, context) for o in stored])
    kept = [(o, created[o.key]) for o in stored if o.kept and o.key in created]
    if not kept:
        return
    new = [_new_example(outcome, candidate_id, context) for outcome, candidate_id in kept]
    inserted = set(add_examples(session, new, context.count_tokens, context.redactor).inserted_ids)
    hashes = [o.verdict.content_hash for o, _ in kept if o.verdict]
    by_hash = dict(
        session.exec(
            select(Example.content_hash, Example.id).where(col(Example.content_hash).in_(hashes))
        ).all()
    )
    for outcome, candidate_id in kept:
        assert outcome.verdict is not None
        example_id = by_hash.get(outcome.verdict.content_hash)
        if example_id is not None and example_id in inserted:
            link_example(session, candidate_id, example_id)
            outcome.example_id = example_id
        else:
            mark_dropped(session, candidate_id, "exact_duplicate", RACE_DETAIL)
            outcome.verdict = replace(
                outcome.verdict, keep=False, reason="exact_duplicate", detail=RACE_DETAIL
            )


def _new_example(outcome: Outcome, candidate_id: int, context: RecordContext) -> NewExample:
    assert outcome.verdict is not None
    provenance = build_provenance(
        outcome.task,
        outcome.verdict,
        candidate_id=candidate_id,
        generator_model=context.generator_model,
        responder_model=context.responder_for(outcome.task.strategy),
        sampling=context.sampling_for(outcome),
    )
    return NewExample(
        messages=outcome.verdict.messages,
        source=ExampleSource.SYNTHETIC,
        status=ExampleStatus.APPROVED,
        parent_id=outcome.task.parent.id,
        provenance=provenance,
        created_by=context.actor,
    )
