"""Scoring given text: how likely a model finds chosen target tokens.

Evaluation measures validation loss (the assistant tokens, the training objective) and forgetting
(perplexity of general text) this way. Only a backend that holds the weights can do it; an
OpenAI-compatible server returns no log-likelihood of text it did not write, so ``target_scorer``
says so with ``ScoringNotSupported`` instead of the caller guessing from the backend's insides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from brandvoice.inference.chat import ChatBackend
from brandvoice.inference.errors import ChatBackendError

IGNORE_INDEX = -100
"""Label value that marks a token as context, not a target (cross-entropy's ignore index)."""


class TokenTargets(Protocol):
    """Token ids and one label per token: the token itself where it is scored, else ``IGNORE_INDEX``.

    A label at position ``i`` is predicted from the tokens before it, so the first is never scored.
    """

    @property
    def input_ids(self) -> Sequence[int]: ...

    @property
    def labels(self) -> Sequence[int]: ...


@dataclass(frozen=True)
class TargetScore:
    """One example's summed negative log-likelihood over its target tokens, and their count."""

    nll: float
    tokens: int


def mean_token_nll(scores: Sequence[TargetScore]) -> float:
    """Negative log-likelihood per target token over many examples (long ones weigh more)."""
    tokens = sum(score.tokens for score in scores)
    if tokens == 0:
        raise ValueError("nothing to score: the examples have no target tokens")
    return math.fsum(score.nll for score in scores) / tokens


@runtime_checkable
class TargetScorer(Protocol):
    """A backend that can score given tokens (``LocalChat``)."""

    @property
    def model_name(self) -> str: ...

    @property
    def tokenizer(self) -> Any:
        """The tokenizer whose ids ``score_targets`` takes."""
        ...

    def score_targets(
        self, examples: Sequence[TokenTargets], batch_size: int = 8
    ) -> list[TargetScore]:
        """One score per example, in input order."""
        ...


class ScoringNotSupported(ChatBackendError):
    """The backend can answer but cannot score given text (e.g. an OpenAI-compatible server)."""


def target_scorer(backend: ChatBackend) -> TargetScorer:
    """``backend`` as a scorer, or ``ScoringNotSupported`` saying which model cannot score."""
    if isinstance(backend, TargetScorer):
        return backend
    raise ScoringNotSupported(
        f"{backend.model_name} cannot score given text: only a local model (LocalChat) exposes token "
        "log-likelihoods; an OpenAI-compatible server returns none for text it did not write"
    )
