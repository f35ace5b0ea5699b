"""Together AI fine-tuning through the ``together`` SDK: a LoRA adapter on an open base model.

Together trains the adapter, serves it on its OpenAI-compatible endpoint, and lets us download it,
so the same registry entry can also be served by our local backend (base + adapter directory).
The per-example token limit is the provider's own (``max_seq_length_sft`` of the model limits).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import together
import zstandard

from brandvoice.trainer.hosted.base import (
    HostedJob,
    HostedTrainingError,
    JobEvent,
    JobRequest,
    JobStatus,
    JobUpdate,
    LossPoint,
    ProviderEstimate,
    billed_eval_passes,
    connection_error,
    status_error,
)

T = TypeVar("T")

DEFAULT_LEARNING_RATE = 1e-5
"""Together's default; ``learning_rate_multiplier`` scales it."""
STATUSES: dict[str, JobStatus] = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "cancel_requested": "running",
    "cancelled": "cancelled",
    "error": "failed",
    "user_error": "failed",
    "completed": "succeeded",
}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class TogetherFineTuning:
    """A :class:`~brandvoice.trainer.hosted.base.HostedProvider` for Together AI (LoRA jobs)."""

    name = "together"
    label = "Together AI"
    supports_preference = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        base_model: str,
        timeout: float = 120.0,
    ) -> None:
        """``base_url`` is the OpenAI-compatible one (``.../v1``); the SDK adds ``/v1`` itself."""
        self.base_model = base_model
        sdk_url = base_url.rstrip("/").removesuffix("/v1")
        self.client = together.Together(
            api_key=api_key, base_url=sdk_url, timeout=timeout, max_retries=0
        )
        self._limits: Any = None

    def _call(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except together.APIConnectionError as exc:
            raise connection_error(self.label, action, exc) from exc
        except together.APIStatusError as exc:
            raise status_error(
                self.label,
                action,
                exc.status_code,
                exc.body,
                exc.response.headers,
                exc.message,
                "TOGETHER_API_KEY",
            ) from exc
        except (together.TogetherError, ValueError) as exc:  # the SDK's own checks of our input
            raise HostedTrainingError(f"{self.label} could not {action}: {exc}") from exc

    def model_limits(self) -> Any:
        """The base model's fine-tuning limits, asked once per provider object."""
        if self._limits is None:
            self._limits = self._call(
                f"give the fine-tuning limits of {self.base_model}",
                lambda: self.client.fine_tuning.model_limits(model_name=self.base_model),
            )
        return self._limits

    def token_limit(self) -> int:
        return int(self.model_limits().max_seq_length_sft)

    def upload(self, path: Path) -> str:
        uploaded = self._call(
            f"accept the file {path.name}",
            lambda: self.client.files.upload(file=path, purpose="fine-tune", check=True),
        )
        return uploaded.id

    def request_body(self, request: JobRequest) -> dict[str, Any]:
        """A supervised LoRA job on the base model, or a DPO job continuing from the supervised
        job's final checkpoint (``from_checkpoint``; Together takes a model or a checkpoint,
        never both)."""
        body: dict[str, Any] = {
            "model": self.base_model,
            "training_file": request.training_file,
            "validation_file": request.validation_file or "",
            "n_epochs": request.epochs,
            "n_evals": billed_eval_passes(self.name, request.epochs, bool(request.validation_file)),
            "batch_size": request.batch_size or "max",
            "learning_rate": DEFAULT_LEARNING_RATE * (request.learning_rate_multiplier or 1.0),
            "lora": True,
            "train_on_inputs": "auto",
            "suffix": request.suffix[:40],
            "random_seed": request.seed,
        }
        if request.method == "dpo":
            if not request.parent_job_id:
                raise ValueError("a DPO job on Together AI needs the supervised job to continue")
            del body["model"], body["train_on_inputs"]  # the SDK refuses both for DPO
            body.update(
                training_method="dpo", dpo_beta=request.beta, from_checkpoint=request.parent_job_id
            )
        return body

    def price_estimate(self, request: JobRequest) -> ProviderEstimate | None:
        """Together's own price for the job on the uploaded files (evaluation passes included)."""
        if request.method != "supervised":
            return None  # asked only before the supervised job, whose price the run confirms
        body = self.request_body(request)
        answer = self._call(
            "estimate the job's price",
            lambda: self.client.fine_tuning.estimate_price(
                training_file=body["training_file"],
                validation_file=body["validation_file"] or together.omit,
                model=body["model"],
                n_epochs=body["n_epochs"],
                n_evals=body["n_evals"],
            ),
        )
        if not answer.estimation_available or answer.estimated_total_price is None:
            return None
        counts = (answer.estimated_train_token_count, answer.estimated_eval_token_count)
        tokens = int(sum(c or 0 for c in counts)) if any(counts) else None
        return ProviderEstimate(float(answer.estimated_total_price), tokens)

    def submit(self, request: JobRequest) -> HostedJob:
        body, limits = self.request_body(request), self.model_limits()
        job = self._call(
            "create the fine-tuning job",
            lambda: self.client.fine_tuning.create(**body, model_limits=limits),
        )
        return HostedJob(
            id=job.id,
            status=STATUSES.get(str(_value(job.status)), "queued"),
            provider_status=str(_value(job.status) or "pending"),
            model_id=job.output_name,
        )

    def retrieve(self, job_id: str) -> HostedJob:
        job = self._call(
            f"report on job {job_id}", lambda: self.client.fine_tuning.retrieve(job_id)
        )
        errors = [
            e.message for e in job.events or [] if e.level == "error" or e.type == "job_error"
        ]
        return HostedJob(
            id=job.id,
            status=STATUSES.get(job.status, "running"),
            provider_status=job.status,
            model_id=job.x_model_output_name,
            error=errors[-1] if errors else None,
            trained_tokens=job.token_count,
        )

    def updates(self, job_id: str, cursor: str | None) -> JobUpdate:
        """Events come oldest first and are only appended; losses come from the metrics route.

        Metrics are asked for again from the newest step seen, since an evaluation logged at
        that step may arrive after its training row; the runner merges rows of one step."""
        seen_events, last_step = (int(part) for part in (cursor or "0:0").split(":"))
        listed = self._call(
            f"list the events of job {job_id}",
            lambda: self.client.fine_tuning.list_events(job_id),
        )
        fresh = listed.data[seen_events:]
        events = [JobEvent(e.message, e.level or "info", e.step, e.total_steps) for e in fresh]
        losses = self._losses(job_id, last_step)
        newest = max((point.step for point in losses), default=last_step)
        return JobUpdate(events, losses, f"{seen_events + len(fresh)}:{newest}")

    def _losses(self, job_id: str, from_step: int) -> list[LossPoint]:
        """One point per metrics row: Together sends a step's training and evaluation metrics as
        separate rows (``train/*`` and ``eval/*`` keys, both with ``train/global_step``)."""
        try:
            answer = self._call(
                f"list the metrics of job {job_id}",
                lambda: self.client.fine_tuning.list_metrics(
                    job_id, global_step_from=max(from_step, 1)
                ),
            )
        except HostedTrainingError as exc:
            if exc.status_code == 404:  # older jobs and deployments have no metrics route
                return []
            raise
        points = []
        for row in answer.metrics or []:
            step = row.get("train/global_step", row.get("eval/global_step", row.get("global_step")))
            if step is None or step < from_step:
                continue
            points.append(LossPoint(int(step), row.get("train/loss"), row.get("eval/loss")))
        return points

    def cancel(self, job_id: str) -> HostedJob:
        job = self._call(f"cancel job {job_id}", lambda: self.client.fine_tuning.cancel(job_id))
        return HostedJob(
            id=job.id,
            status=STATUSES.get(job.status, "running"),
            provider_status=job.status,
            model_id=job.x_model_output_name,
        )

    def fetch_artifacts(self, job: HostedJob, directory: Path) -> Path | None:
        """Download the final LoRA adapter and unpack it; returns the folder with its config."""
        directory.mkdir(parents=True, exist_ok=True)
        archive = directory / "adapter.archive"

        def download() -> None:
            with self.client.fine_tuning.with_streaming_response.content(
                ft_id=job.id, checkpoint="adapter"
            ) as response:
                response.stream_to_file(archive)

        self._call(f"send the adapter of job {job.id}", download)
        try:
            return unpack_adapter(archive, directory / "adapter")
        finally:
            archive.unlink(missing_ok=True)


def unpack_adapter(archive: Path, destination: Path) -> Path:
    """Unpack a ``.tar``, ``.tar.gz`` or ``.tar.zst`` adapter archive (Together sends zstd) and
    return the folder holding ``adapter_config.json``."""
    with archive.open("rb") as handle:
        zstd = handle.read(4) == ZSTD_MAGIC
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        tar_path = _unzstd(archive, Path(scratch) / "adapter.tar") if zstd else archive
        try:
            with tarfile.open(tar_path) as tar:
                tar.extractall(destination, filter="data")
        except tarfile.TarError as exc:
            raise HostedTrainingError(
                f"the adapter archive {archive} is not readable: {exc}"
            ) from exc
    configs = sorted(destination.rglob("adapter_config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise HostedTrainingError(
            f"the adapter archive held no adapter_config.json (unpacked into {destination})"
        )
    return configs[0].parent


def _unzstd(source: Path, target: Path) -> Path:
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
    except zstandard.ZstdError as exc:
        raise HostedTrainingError(f"the adapter archive {source} is not valid zstd: {exc}") from exc
    return target


def _value(status: Any) -> Any:
    return getattr(status, "value", status)
