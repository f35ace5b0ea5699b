"""What a kept synthetic example records about its making, so it can be traced and ranked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brandvoice.datagen.filters import Verdict
from brandvoice.datagen.strategies import Task


def build_provenance(
    task: Task,
    verdict: Verdict,
    *,
    candidate_id: int | None,
    generator_model: str,
    responder_model: str | None,
    sampling: Mapping[str, Any],
) -> dict[str, Any]:
    """Parent, strategy, templates, models, sampling, seed, every filter's score, and ``score``
    (overall quality, higher is better: snapshots keep the best-scored children first)."""
    return {
        "generator": "brandvoice.datagen",
        "candidate_id": candidate_id,
        "parent_id": task.parent.id,
        "strategy": task.strategy,
        "index": task.index,
        "template_version": task.template_version,
        "generator_model": generator_model,
        "responder_model": responder_model,
        "sampling": dict(sampling),
        "seed": task.seed,
        "filters": verdict.scores_dict(),
        "score": verdict.score,
    }
