"""What every hosted fine-tuning provider offers, the job state we poll, and the pre-flight check.

A provider is a thin adapter over its official SDK (``openai``, ``together``); it turns every SDK
error into a :class:`HostedTrainingError` that carries the provider's own message, a hint, and
whether trying again later may help. The pre-flight runs on our side before anything is uploaded:
the provider's limits (at least 10 examples, a token limit per example for the base model) and a
cost estimate (billed tokens = epochs × Σ train + evaluation passes × Σ validation, each example
cut at the limit, priced per 1M tokens), replaced by the provider's own price once it gives one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from brandvoice.inference.retry import parse_retry_after
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.snapshots import estimate_training_cost

MIN_EXAMPLES = 10
"""Both OpenAI and Together refuse (or waste) jobs with fewer training examples."""

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class HostedConfig:
    """Everything the hosted backends need; the bot builds it from its settings."""

    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini-2024-07-18"
    """Base model OpenAI fine-tunes."""
    together_api_key: str | None = None
    together_base_url: str = "https://api.together.ai/v1"
    """Together's OpenAI-compatible URL; its SDK is given the same host without ``/v1``."""
    together_model: str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    """Open base model Together trains a LoRA adapter on."""
    epochs: int = 3
    batch_size: int | None = None
    """None: the provider chooses (OpenAI ``auto``, Together ``max``)."""
    learning_rate_multiplier: float | None = None
    """OpenAI's multiplier; for Together it scales Together's default learning rate (1e-5)."""
    seed: int = 42
    suffix: str = "brandvoice"
    """Start of the fine-tuned model's name; the run id is appended."""
    price_per_million_tokens: float = 0.0
    poll_interval_s: float = 30.0
    """First wait between polls; it grows while nothing changes, up to ``max_poll_interval_s``."""
    max_poll_interval_s: float = 300.0
    retry_initial_s: float = 2.0
    """First wait after a transient error (a longer ``Retry-After`` wins); doubles each time."""
    retry_max_s: float = 300.0
    give_up_after_s: float = 3600.0
    """A call still failing transiently this long after its first try fails the run (it can be
    resumed later); no retry is made whose wait would reach past it."""
    request_timeout_s: float = 120.0
    preference_min_pairs: int = 20
    """A preference (DPO) job follows the supervised one only with this many training pairs."""
    preference_beta: float | None = None
    """DPO's beta; None: the provider's default (OpenAI ``auto``)."""


@dataclass(frozen=True)
class JobRequest:
    """One fine-tuning job as we ask for it, whatever the provider."""

    training_file: str
    validation_file: str | None
    epochs: int
    batch_size: int | None
    learning_rate_multiplier: float | None
    seed: int
    suffix: str
    metadata: dict[str, str] = field(default_factory=dict)
    method: Literal["supervised", "dpo"] = "supervised"
    """``dpo``: a preference job on pairs, continuing from the supervised job ``parent_job_id``."""
    parent_job_id: str | None = None
    parent_model: str | None = None
    """The supervised job's fine-tuned model (OpenAI trains the DPO job on it)."""
    beta: float | None = None


@dataclass(frozen=True)
class ProviderEstimate:
    """A provider's own price for a job on uploaded files."""

    total_price: float
    billed_tokens: int | None = None


def billed_eval_passes(backend: str, epochs: int, has_validation: bool) -> int:
    """Passes over the validation file a provider runs and bills: Together evaluates once per
    epoch (``n_evals``); OpenAI's validation is not billed."""
    return epochs if backend == "together" and has_validation else 0


@dataclass(frozen=True)
class HostedJob:
    """A provider's job as last seen, with its status mapped onto ours."""

    id: str
    status: JobStatus
    provider_status: str
    model_id: str | None = None
    """The fine-tuned model's name for inference, once the job succeeded."""
    error: str | None = None
    trained_tokens: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class JobEvent:
    message: str
    level: str = "info"
    step: int | None = None
    total_steps: int | None = None


@dataclass(frozen=True)
class LossPoint:
    step: int
    train_loss: float | None = None
    eval_loss: float | None = None


@dataclass(frozen=True)
class JobUpdate:
    """What happened since ``cursor``: new events (oldest first) and new per-step losses."""

    events: list[JobEvent]
    losses: list[LossPoint]
    cursor: str | None


class HostedProvider(Protocol):
    name: str
    """The backend name in settings and on runs: ``openai`` or ``together``."""
    label: str
    """How the provider is named in messages."""
    base_model: str
    supports_preference: bool
    """Whether the provider takes a preference (DPO) job on top of a supervised one."""

    def token_limit(self) -> int:
        """Most tokens one training example may have for ``base_model``."""
        ...

    def upload(self, path: Path) -> str:
        """Upload a JSONL file for fine-tuning; returns its file id."""
        ...

    def submit(self, request: JobRequest) -> HostedJob: ...

    def request_body(self, request: JobRequest) -> dict[str, Any]:
        """The parameters ``submit`` sends (recorded on the run)."""
        ...

    def price_estimate(self, request: JobRequest) -> ProviderEstimate | None:
        """The provider's own price for ``request`` (files uploaded); None when it gives none."""
        ...

    def retrieve(self, job_id: str) -> HostedJob: ...

    def updates(self, job_id: str, cursor: str | None) -> JobUpdate: ...

    def cancel(self, job_id: str) -> HostedJob: ...

    def fetch_artifacts(self, job: HostedJob, directory: Path) -> Path | None:
        """Download what the job produced for local serving (an adapter); None when nothing."""
        ...


# --- errors ------------------------------------------------------------------------------------


class HostedTrainingError(RuntimeError):
    """A provider refused or failed. The message is the provider's own plus what to do next;
    ``transient`` says whether the same request may succeed later (rate limits, outages)."""

    def __init__(
        self,
        message: str,
        *,
        provider_message: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider_message = provider_message
        self.status_code = status_code
        self.code = code
        self.transient = transient
        self.retry_after = retry_after


TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_QUOTA_WORDS = ("quota", "credit", "billing", "balance", "insufficient funds", "payment")
_RETIRED_WORDS = (
    "deprecat",
    "no longer",
    "wind down",
    "winding down",
    "sunset",
    "not available for fine-tuning",
    "does not support fine-tuning",
    "not supported for fine-tuning",
)


def provider_message(body: object, fallback: str) -> tuple[str, str | None]:
    """(message, code) from an error body: OpenAI's ``{"error": {...}}``, its unwrapped inner
    object (what the ``openai`` SDK keeps), Together's, or plain text."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message, code = inner.get("message"), inner.get("code")
            if isinstance(message, str) and message:
                return message, str(code) if code is not None else None
        elif isinstance(inner, str) and inner:
            return inner, None
        if isinstance(body.get("message"), str):
            return body["message"], None
    if isinstance(body, str) and body.strip():
        return body.strip()[:500], None
    return fallback, None


def refusal_hint(status: int | None, code: str | None, message: str, key_setting: str) -> str:
    """What to do about a refusal, from its status, code and words."""
    text = f"{code or ''} {message}".lower()
    if any(word in text for word in _QUOTA_WORDS):
        return (
            "the account is out of quota or credit: add credit or raise the limit in the "
            "provider's billing settings, then start a new run"
        )
    if status == 401:
        return f"the API key was rejected: check {key_setting}"
    if any(word in text for word in _RETIRED_WORDS) or status == 403:
        return (
            "this account or base model can no longer be fine-tuned here: choose another base "
            "model, or set TRAINING_BACKEND to together or local"
        )
    if status == 404:
        return "check the base model name and the base URL"
    if status is not None and status >= 500:
        return "the provider is failing"
    if status == 429:
        return "rate limited"
    return "fix what the provider says, then start a new run"


def status_error(
    label: str,
    action: str,
    status: int,
    body: object,
    headers: Mapping[str, str],
    fallback: str,
    key_setting: str,
) -> HostedTrainingError:
    """The error for an HTTP error answer to ``action`` (e.g. 'create the fine-tuning job')."""
    message, code = provider_message(body, fallback)
    quota = any(word in f"{code or ''} {message}".lower() for word in _QUOTA_WORDS)
    transient = status in TRANSIENT_STATUSES and not quota
    hint = refusal_hint(status, code, message, key_setting)
    shown_code = f", {code}" if code else ""
    return HostedTrainingError(
        f"{label} refused to {action} (HTTP {status}{shown_code}): {message} — {hint}",
        provider_message=message,
        status_code=status,
        code=code,
        transient=transient,
        retry_after=parse_retry_after(headers),
    )


def connection_error(label: str, action: str, exc: BaseException) -> HostedTrainingError:
    cause = exc.__cause__ or exc
    return HostedTrainingError(
        f"could not reach {label} to {action}: {cause} — check the network and the base URL",
        transient=True,
    )


# --- pre-flight ---------------------------------------------------------------------------------


class PreflightError(ValueError):
    """The dataset breaks a provider limit; nothing was uploaded."""


@dataclass(frozen=True)
class Preflight:
    """What a hosted job would train on and cost, checked before anything leaves the machine.

    The cost is our estimate (:func:`~brandvoice.store.snapshots.estimate_training_cost`) until
    the provider gives its own for the uploaded files; then it is the provider's."""

    provider: str
    base_model: str
    train_examples: int
    val_examples: int
    token_limit: int
    epochs: int
    eval_passes: int
    train_tokens: int
    billed_tokens: int
    price_per_million_tokens: float
    estimated_cost: float
    priced_by: str | None = None
    """The provider whose own estimate ``estimated_cost`` is; None: ours."""

    def summary(self) -> str:
        cost = f"${self.estimated_cost:,.{2 if self.estimated_cost >= 1 else 4}f}"
        if self.priced_by:
            price = f"estimated cost {cost} ({self.priced_by}'s own estimate)"
        elif self.price_per_million_tokens:
            price = f"estimated cost {cost} at ${self.price_per_million_tokens:g} per 1M tokens"
        else:
            price = "no price configured (PRICE_PER_MILLION_TOKENS), so no cost estimate"
        evals = f" and {self.eval_passes} evaluation passes" if self.eval_passes else ""
        return (
            f"{self.provider} fine-tuning of {self.base_model}: {self.train_examples} training and "
            f"{self.val_examples} validation examples, {self.epochs} epochs{evals}, about "
            f"{self.billed_tokens:,} billed tokens; {price}"
        )

    def priced(self, estimate: ProviderEstimate) -> Preflight:
        """This pre-flight with the provider's own price (and token count, when it gives one)."""
        return replace(
            self,
            estimated_cost=round(estimate.total_price, 4),
            billed_tokens=estimate.billed_tokens or self.billed_tokens,
            priced_by=self.provider,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preflight(
    train: Sequence[Sequence[Mapping[str, Any]]],
    val: Sequence[Sequence[Mapping[str, Any]]],
    *,
    provider: str,
    base_model: str,
    token_limit: int,
    epochs: int,
    eval_passes: int,
    price_per_million_tokens: float,
    count_tokens: TokenCounter,
) -> Preflight:
    """Check ``train``/``val`` against the provider's limits and estimate the cost.

    Raises :class:`PreflightError` naming every example (by file and line) over the limit.
    """
    if len(train) < MIN_EXAMPLES:
        raise PreflightError(
            f"{provider} needs at least {MIN_EXAMPLES} training examples; the snapshot has "
            f"{len(train)}. Approve or import more examples first."
        )
    train_tokens, val_tokens = count_tokens(train), count_tokens(val) if val else []
    too_long = [
        f"{name}.jsonl line {line}: {tokens:,} tokens"
        for name, counts in (("train", train_tokens), ("val", val_tokens))
        for line, tokens in enumerate(counts, start=1)
        if tokens > token_limit
    ]
    if too_long:
        shown = "; ".join(too_long[:5]) + (
            f"; and {len(too_long) - 5} more" if len(too_long) > 5 else ""
        )
        raise PreflightError(
            f"{len(too_long)} example(s) exceed the {token_limit:,}-token limit of {base_model} on "
            f"{provider} ({shown}); shorten or retire them, or choose a base model with a "
            "longer context"
        )
    billed, cost = estimate_training_cost(
        train_tokens,
        val_tokens,
        epochs=epochs,
        eval_passes=eval_passes,
        token_limit=token_limit,
        price_per_million_tokens=price_per_million_tokens,
    )
    return Preflight(
        provider=provider,
        base_model=base_model,
        train_examples=len(train),
        val_examples=len(val),
        token_limit=token_limit,
        epochs=epochs,
        eval_passes=eval_passes,
        train_tokens=sum(train_tokens),
        billed_tokens=billed,
        price_per_million_tokens=price_per_million_tokens,
        estimated_cost=cost,
    )
