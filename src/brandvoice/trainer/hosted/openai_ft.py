"""OpenAI fine-tuning through the ``openai`` SDK: upload, supervised and DPO jobs, events, cancel.

OpenAI is winding down self-serve fine-tuning (no new jobs after 2027-01-06, earlier for
organizations that never used it); its refusal reaches the run as OpenAI's own message with a hint
to switch providers. The SDK's own retries are off: the runner retries transient errors itself,
honouring ``Retry-After`` however long it is, so an outage cannot fail a job hours into training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import openai

from brandvoice.trainer.hosted.base import (
    HostedJob,
    HostedTrainingError,
    JobEvent,
    JobRequest,
    JobStatus,
    JobUpdate,
    LossPoint,
    ProviderEstimate,
    connection_error,
    status_error,
)

T = TypeVar("T")

TOKEN_LIMITS = (("gpt-3.5", 16_385), ("gpt-4o", 65_536), ("gpt-4.1", 65_536))
"""Training-example context per base model family (OpenAI's fine-tuning guide)."""
DEFAULT_TOKEN_LIMIT = 16_385
"""For models not listed: the smallest limit OpenAI documents."""
STATUSES: dict[str, JobStatus] = {
    "validating_files": "queued",
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
EVENTS_PAGE = 100


def token_limit_for(model: str) -> int:
    return next(
        (limit for prefix, limit in TOKEN_LIMITS if model.startswith(prefix)), DEFAULT_TOKEN_LIMIT
    )


class OpenAIFineTuning:
    """A :class:`~brandvoice.trainer.hosted.base.HostedProvider` for OpenAI."""

    name = "openai"
    label = "OpenAI"
    supports_preference = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        base_model: str,
        timeout: float = 120.0,
    ) -> None:
        self.base_model = base_model
        self.base_url = base_url.rstrip("/")
        self.client = openai.OpenAI(
            api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=0
        )

    def _call(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except openai.APIConnectionError as exc:
            raise connection_error(self.label, action, exc) from exc
        except openai.APIStatusError as exc:
            raise status_error(
                self.label,
                action,
                exc.status_code,
                exc.body,
                exc.response.headers,
                exc.message,
                "OPENAI_API_KEY",
            ) from exc
        except openai.APIError as exc:
            raise HostedTrainingError(
                f"unexpected reply from {self.label} to {action}: {exc}"
            ) from exc

    def token_limit(self) -> int:
        return token_limit_for(self.base_model)

    def upload(self, path: Path) -> str:
        content = path.read_bytes()
        uploaded = self._call(
            f"accept the file {path.name}",
            lambda: self.client.files.create(
                file=(path.name, content, "application/jsonl"), purpose="fine-tune"
            ),
        )
        return uploaded.id

    def request_body(self, request: JobRequest) -> dict[str, Any]:
        """A supervised job on the base model, or a DPO job on the supervised job's model."""
        hyperparameters: dict[str, Any] = {
            "n_epochs": request.epochs,
            "batch_size": request.batch_size or "auto",
            "learning_rate_multiplier": request.learning_rate_multiplier or "auto",
        }
        model = self.base_model
        method: dict[str, Any] = {
            "type": "supervised",
            "supervised": {"hyperparameters": hyperparameters},
        }
        if request.method == "dpo":
            if not request.parent_model:
                raise ValueError("a DPO job on OpenAI needs the supervised job's model")
            model = request.parent_model
            beta = request.beta if request.beta is not None else "auto"
            method = {"type": "dpo", "dpo": {"hyperparameters": {**hyperparameters, "beta": beta}}}
        body: dict[str, Any] = {
            "model": model,
            "training_file": request.training_file,
            "method": method,
            "suffix": request.suffix,
            "seed": request.seed,
        }
        if request.validation_file:
            body["validation_file"] = request.validation_file
        if request.metadata:
            body["metadata"] = dict(request.metadata)
        return body

    def price_estimate(self, request: JobRequest) -> ProviderEstimate | None:
        return None  # OpenAI publishes no price endpoint; the pre-flight estimate stands

    def submit(self, request: JobRequest) -> HostedJob:
        body = self.request_body(request)
        job = self._call(
            "create the fine-tuning job", lambda: self.client.fine_tuning.jobs.create(**body)
        )
        return self._job(job)

    def retrieve(self, job_id: str) -> HostedJob:
        job = self._call(
            f"report on job {job_id}", lambda: self.client.fine_tuning.jobs.retrieve(job_id)
        )
        return self._job(job)

    def updates(self, job_id: str, cursor: str | None) -> JobUpdate:
        """Events arrive newest first; read pages until the newest one seen last time."""

        def newer() -> list[Any]:
            found = []
            for event in self.client.fine_tuning.jobs.list_events(job_id, limit=EVENTS_PAGE):
                if event.id == cursor:
                    break
                found.append(event)
            return found

        fresh = self._call(f"list the events of job {job_id}", newer)
        events, losses = [], []
        for event in reversed(fresh):
            data = event.data if isinstance(event.data, dict) else {}
            step = data.get("step")
            if event.type == "metrics" and isinstance(step, int):
                losses.append(
                    LossPoint(
                        step,
                        _number(data.get("train_loss")),
                        _number(data.get("full_valid_loss", data.get("valid_loss"))),
                    )
                )
            events.append(
                JobEvent(
                    event.message,
                    event.level,
                    step if isinstance(step, int) else None,
                    data.get("total_steps") if isinstance(data.get("total_steps"), int) else None,
                )
            )
        return JobUpdate(events, losses, fresh[0].id if fresh else cursor)

    def cancel(self, job_id: str) -> HostedJob:
        job = self._call(
            f"cancel job {job_id}", lambda: self.client.fine_tuning.jobs.cancel(job_id)
        )
        return self._job(job)

    def fetch_artifacts(self, job: HostedJob, directory: Path) -> Path | None:
        return None  # OpenAI serves the model; there is nothing to download

    def _job(self, job: Any) -> HostedJob:
        error = None
        if job.error is not None and (job.error.message or job.error.code):
            code = f" ({job.error.code})" if job.error.code else ""
            error = f"{job.error.message}{code}"
        return HostedJob(
            id=job.id,
            status=STATUSES.get(job.status, "running"),
            provider_status=job.status,
            model_id=job.fine_tuned_model,
            error=error,
            trained_tokens=job.trained_tokens,
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
