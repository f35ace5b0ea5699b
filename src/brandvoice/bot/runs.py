"""The one way a person queues work for the worker, whether from Slack, REST or the CLI.

A request is validated by the same pydantic models everywhere (unknown options are refused), and
the same rule applies everywhere: at most one run is queued or running at a time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from sqlmodel import Session

from brandvoice.store.models import RunKind, TrainingRun
from brandvoice.store.runs import enqueue_exclusive

Backend = Literal["local", "openai", "together"]


class TrainRequest(BaseModel):
    """A retrain: the options of ``brandvoice train``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    kind: Literal["train"] = "train"
    force: bool = False
    """Train even with few new approved examples."""
    backend: Backend | None = None
    """Where to train; empty: TRAINING_BACKEND."""
    snapshot: int | None = Field(None, ge=1, le=2**31 - 1)
    """Train on this dataset snapshot instead of a new one."""
    epochs: int | None = Field(None, ge=1, le=1000)
    """Epochs (empty: the measured default)."""
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    """Stop after this many optimizer steps."""
    generate: bool = True
    """Expand the dataset with synthetic variations before training."""

    def run_config(self) -> dict[str, Any]:
        overrides = {"epochs": self.epochs, "max_steps": self.max_steps}
        config: dict[str, Any] = {"train": {k: v for k, v in overrides.items() if v is not None}}
        if self.snapshot is not None:
            config["snapshot_id"] = self.snapshot
        if not self.generate:
            config["generate"] = False
        return config


class GenerateRequest(BaseModel):
    """Synthetic expansion only: up to N variations per approved example."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    kind: Literal["generate"]
    per_example: int = Field(ge=1, le=20)
    """Synthetic variations per approved example (1 to 20)."""


def _kind_of(value: Any) -> str:
    found = value.get("kind", "train") if isinstance(value, dict) else getattr(value, "kind", None)
    return found if found in ("train", "generate") else "train"


RunRequest = Annotated[
    Annotated[TrainRequest, Tag("train")] | Annotated[GenerateRequest, Tag("generate")],
    Discriminator(_kind_of),
]
"""What ``POST /api/runs`` takes: a retrain (the default) or ``{"kind": "generate", ...}``."""


def enqueue_request(
    session: Session,
    actor: str,
    request: TrainRequest | GenerateRequest,
    *,
    default_backend: str,
) -> TrainingRun:
    """Queue ``request`` for the worker; ``ActiveRunError`` while another run is queued or running."""
    if isinstance(request, GenerateRequest):
        return enqueue_exclusive(
            session,
            actor,
            kind=RunKind.GENERATE,
            config={"per_example": request.per_example},
        )
    return enqueue_exclusive(
        session,
        actor,
        kind=RunKind.TRAIN,
        backend=request.backend or default_backend,
        force=request.force,
        config=request.run_config(),
    )
