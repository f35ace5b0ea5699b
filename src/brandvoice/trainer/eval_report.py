"""The evaluation report: one typed object from evaluation to every screen that shows it.

``evaluate`` builds it, the pipeline adds what the run did (training, snapshot, generation, the
HTML path), the registry stores it as JSON on the model version, and the CLI, Slack, HTML and REST
render this same object. Stored rows carry ``schema_version``; rows written before it existed
(version 1, the untyped dict of earlier releases, same keys) load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from brandvoice.store.models import ModelVersion
from brandvoice.store.signal import VersionSignal

SCHEMA_VERSION = 4
"""4: adds ``unsupported_claims``. 3: adds ``production_signal``. 2: the typed report (adds ``schema_version`` and
``not_measured``). 1: the dict before it."""


class StoredReportError(ValueError):
    """A stored report that cannot be read (damaged, or written by a newer brandvoice)."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _OpenPart(BaseModel):
    """A summary owned by another step (training, snapshot); keys it adds later are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")


class ContenderLabels(_Part):
    candidate: str
    production: str
    baseline: str


class ContenderScores(_Part):
    """One score per contender (voice similarity, exact match); higher is better."""

    candidate: float
    production: float
    baseline: float


class WinRates(_Part):
    """Share of examples the candidate wins (a tie counts half)."""

    vs_production: float
    vs_baseline: float


class ValidationLoss(_Part):
    """Mean cross-entropy per assistant token of the validation set; lower is better."""

    candidate: float
    production: float


class Sample(_Part):
    prompt: str
    reference: str
    production: str
    candidate: str


class Verdict(_Part):
    recommend_promote: bool
    reasons: list[str] = Field(default_factory=list)
    """Why not to promote; empty when promotion is recommended."""

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


class ClaimExample(_Part):
    """One flagged claim: where it is in the reply, and why no source supports it."""

    reply: str
    """An excerpt of the reply."""
    claim: str
    reason: str


class ClaimRate(_Part):
    """How many of one contender's replies make at least one unsupported claim."""

    flagged: int
    replies: int
    examples: list[ClaimExample] = Field(default_factory=list)
    """Up to three, from different replies."""

    @property
    def rate(self) -> float:
        return self.flagged / self.replies if self.replies else 0.0

    def describe(self) -> str:
        return f"{self.rate:.0%} ({self.flagged} of {self.replies} replies)"


class UnsupportedClaims(_Part):
    """Replies that state numbers, promises or attributes their sources do not support."""

    method: str
    """How claims were checked, and against what."""
    production: ClaimRate
    candidate: ClaimRate
    served_requests: int = 0
    """How many of the checked replies answered served requests (no reference) rather than
    validation prompts."""

    def served_note(self) -> str:
        return f" ({self.served_requests} of them served requests)" if self.served_requests else ""

    def examples(self) -> list[tuple[str, ClaimExample]]:
        """(role, example) of production's, then the candidate's."""
        return [
            *(("production", e) for e in self.production.examples),
            *(("candidate", e) for e in self.candidate.examples),
        ]


class LossPoint(_OpenPart):
    step: int
    train_loss: float | None = None
    eval_loss: float | None = None


class PreferenceUse(_OpenPart):
    """Whether the preference stage used the snapshot's pairs, and what it changed."""

    pairs: int = 0
    used: bool = False
    reason: str | None = None
    steps: int | None = None
    before: dict[str, float] = Field(default_factory=dict)
    after: dict[str, float] = Field(default_factory=dict)

    def describe(self) -> str:
        """One line for every renderer: what was used, or why not."""
        if not self.used:
            return f"preference pairs not used: {self.reason or 'none in the snapshot'}"
        text = f"preference stage: {self.pairs} pairs, {self.steps} steps"
        key = "preference_accuracy"
        if key in self.before and key in self.after:
            text += f"; validation pairs preferred {self.before[key]:.0%} -> {self.after[key]:.0%}"
        return text


class ContextTraining(_OpenPart):
    """How many training examples carried retrieved context (``trainer/context_data.py``)."""

    examples: int = 0
    with_context: int = 0
    irrelevant: int = 0
    ungrounded: int = 0
    """Examples kept plain because their reply states facts their context does not hold."""

    def describe(self) -> str:
        plain = (
            f"; {self.ungrounded} kept plain: facts beyond their context" if self.ungrounded else ""
        )
        return (
            f"trained with retrieved context: {self.with_context} of {self.examples} examples "
            f"({self.irrelevant} given another request's context{plain})"
        )


class TrainingSummary(_OpenPart):
    """What training did: a local LoRA run, or a hosted job (``backend``, ``job_id``, ...)."""

    status: str | None = None
    steps: int | None = None
    best_step: int | None = None
    best_eval_loss: float | None = None
    first_train_loss: float | None = None
    final_train_loss: float | None = None
    trained_tokens: int | None = None
    seconds: float | None = None
    evals: list[LossPoint] = Field(default_factory=list)
    backend: str | None = None
    base_model: str | None = None
    job_id: str | None = None
    model_id: str | None = None
    total_steps: int | None = None
    preference: PreferenceUse | None = None
    context: ContextTraining | None = None


class SnapshotSummary(_OpenPart):
    """The dataset snapshot trained and evaluated on (its id, hash and statistics)."""

    id: int | None = None
    hash: str | None = None
    train: int | None = None
    val: int | None = None
    by_source: dict[str, int] = Field(default_factory=dict)
    real_train: int | None = None
    synthetic_train: int | None = None

    @property
    def synthetic_examples(self) -> int:
        return self.by_source.get("synthetic", 0)

    @property
    def real_examples(self) -> int:
        return sum(self.by_source.values()) - self.synthetic_examples


class ProductionSignal(_Part):
    """How production, and the candidate once it has served, fare with people: votes, approvals
    and corrections per reply, beside the offline metrics (never trained on)."""

    measured_at: datetime
    window_hours: float | None = None
    """Replies served in the last this many hours; None: all time."""
    production: VersionSignal
    """The promoted version (or the base model) when the signal was measured."""
    candidate: VersionSignal | None = None

    def versions(self) -> list[tuple[str, VersionSignal]]:
        """(role, signal) of production, then the candidate when it has served."""
        shown = [("production", self.production)]
        if self.candidate is not None:
            shown.append(("candidate", self.candidate))
        return shown

    @property
    def window(self) -> str:
        return "all time" if self.window_hours is None else f"last {self.window_hours:g} h"


class EvalReport(_Part):
    """A candidate's evaluation against production and the few-shot base, and its verdict."""

    schema_version: int = SCHEMA_VERSION
    examples: int
    """Validation examples the contenders answered."""
    judge: str | None
    """The judge model's name, or ``closer to reference`` when similarity decided."""
    labels: ContenderLabels
    voice_similarity: ContenderScores
    win_rate: WinRates
    exact_match: ContenderScores | None = None
    """Only when some references are labels (a few words)."""
    samples: list[Sample] = Field(default_factory=list)
    val_loss: ValidationLoss | None = None
    """Only when candidate and production can both score tokens (local models)."""
    forgetting: float | None = None
    """General-text perplexity of the candidate ÷ the base's; only for local models."""
    not_measured: list[str] = Field(default_factory=list)
    """Measurements skipped, each with why (e.g. a hosted model cannot score tokens)."""
    unsupported_claims: UnsupportedClaims | None = None
    """Absent from reports written before the check existed."""
    verdict: Verdict
    training: TrainingSummary | None = None
    snapshot: SnapshotSummary | None = None
    generated: dict[str, Any] = Field(default_factory=dict)
    """The synthetic-generation summary of the run, as the generation step reported it."""
    report_path: str | None = None
    """The standalone HTML report."""
    production_signal: ProductionSignal | None = None
    """Measured when the report was built; ``with_signal`` shows it as it stands now."""

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Version 1 rows (no ``schema_version``) have the same keys; newer ones are refused."""
        if not isinstance(data, Mapping):
            return data
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r} is newer than this brandvoice reads "
                f"({SCHEMA_VERSION}); upgrade brandvoice to read it"
            )
        return {**data, "schema_version": SCHEMA_VERSION}

    @classmethod
    def from_stored(
        cls, data: Mapping[str, Any] | None, where: str = "report"
    ) -> EvalReport | None:
        """The report kept in the store; None for a version registered without one."""
        if not data:
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'report'}: {e['msg']}" for e in exc.errors()
            )
            raise StoredReportError(
                f"the evaluation report of {where} cannot be read: {problems}"
            ) from exc

    def to_stored(self) -> dict[str, Any]:
        """JSON for the store; measurements not taken are left out, as version 1 rows did."""
        return self.model_dump(mode="json", exclude_none=True)

    def with_run(
        self,
        *,
        training: Mapping[str, Any] | None = None,
        snapshot: Mapping[str, Any] | None = None,
        generated: Mapping[str, Any] | None = None,
        report_path: str | None = None,
        production_signal: ProductionSignal | None = None,
    ) -> EvalReport:
        """The report with what the pipeline adds around the evaluation (checked like the rest)."""
        added = {
            "training": training,
            "snapshot": snapshot,
            "generated": dict(generated) if generated is not None else None,
            "report_path": report_path,
            "production_signal": production_signal,
        }
        return EvalReport.model_validate(
            {**self.model_dump(), **{k: v for k, v in added.items() if v is not None}}
        )

    def with_signal(self, signal: ProductionSignal) -> EvalReport:
        """The same offline evaluation with the production signal measured now."""
        return self.model_copy(update={"production_signal": signal})

    def highlights(self) -> dict[str, float]:
        """The candidate's headline numbers, for one-line summaries."""
        found = {
            "voice similarity": self.voice_similarity.candidate,
            "win rate vs production": self.win_rate.vs_production,
        }
        if self.val_loss is not None:
            found["validation loss"] = self.val_loss.candidate
        if self.forgetting is not None:
            found["forgetting"] = self.forgetting
        return found


def report_of(version: ModelVersion) -> EvalReport | None:
    """The evaluation report stored on ``version``; None when it was registered without one."""
    return EvalReport.from_stored(version.eval, where=version.name)
