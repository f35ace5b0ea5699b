"""A loopback server that speaks Together AI's REST wire format, for driving the real ``together`` SDK.

It is a :class:`~tests.fakes.openai_server.FakeOpenAIServer` (same recording, scripting and
OpenAI-compatible ``/v1/chat/completions``) with Together's fine-tuning routes: the file upload
handshake (``POST /v1/files`` answers 302 to a ``PUT`` of the content, then ``preprocess``), model
limits, price estimate, LoRA jobs that move along a scripted :class:`TogetherPlan` (supervised, or
DPO continuing from a completed job's checkpoint, each checked against its documented file
format), events,
metrics (a step's training and evaluation metrics as separate rows, as Together documents them),
cancel, and the adapter download. The SDK's ``base_url`` is :attr:`root_url`.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes.openai_server import (
    FakeOpenAIServer,
    FakeResponse,
    RecordedRequest,
    openai_error,
    parse_multipart,
)

PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")
ADAPTER_CONFIG = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}


@dataclass(frozen=True)
class TogetherPlan:
    """The status each retrieve of a job reports, in turn (the last one sticks), the training
    loss per step, and the message of the ``job_error`` event of a failed job."""

    statuses: tuple[str, ...] = ("pending", "queued", "running", "running", "completed")
    losses: tuple[float, ...] = (1.8, 1.2, 0.7)
    error: str = "Job failed: the training file could not be tokenized"
    max_seq_length: int = 8192
    compression: str = "gzip"
    """How the adapter archive is packed: ``gzip`` or ``zstd`` (what Together sends)."""
    estimated_price: float | None = 1.25
    """Together's own price for a job; None: estimation unavailable for these files."""


def adapter_archive(compression: str = "gzip") -> bytes:
    """A tarball with a PEFT adapter in a subfolder, as Together packs a finished LoRA job."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in (
            ("final/adapter_config.json", json.dumps(ADAPTER_CONFIG).encode()),
            ("final/adapter_model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    import gzip

    return gzip.compress(raw)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class FakeTogetherServer(FakeOpenAIServer):
    """``with FakeTogetherServer() as server: Together(base_url=server.root_url, ...)``."""

    def __init__(self, plan: TogetherPlan | None = None) -> None:
        super().__init__()
        self.plan = plan or TogetherPlan()
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._ticks: dict[str, int] = {}
        self._steps: dict[str, int] = {}
        self._job_lock = threading.Lock()
        routes = (
            ("POST", "/v1/files", self._start_upload),
            ("PUT", "/upload/{file_id}", self._receive_upload),
            ("POST", "/v1/files/{file_id}/preprocess", self._preprocess),
            ("GET", "/v1/fine-tunes/models/limits", self._limits),
            ("POST", "/v1/fine-tunes/estimate-price", self._estimate),
            ("POST", "/v1/fine-tunes", self._create_job),
            ("GET", "/v1/fine-tunes/{job_id}", self._retrieve_job),
            ("GET", "/v1/fine-tunes/{job_id}/events", self._list_events),
            ("GET", "/v1/fine-tunes/{job_id}/metrics", self._list_metrics),
            ("POST", "/v1/fine-tunes/{job_id}/cancel", self._cancel_job),
            ("GET", "/v1/finetune/download", self._download),
        )
        for method, template, handler in routes:
            self.add_route(method, template, handler)

    @property
    def root_url(self) -> str:
        """What the ``together`` SDK's ``base_url`` should be (it adds ``/v1`` itself)."""
        return self.base_url.removesuffix("/v1")

    def job_requests(self) -> list[RecordedRequest]:
        return self.requests_to("POST", "/v1/fine-tunes")

    # --- files ---------------------------------------------------------------------------------

    def _start_upload(self, request: RecordedRequest) -> FakeResponse:
        fields = {k: v[1].decode() for k, v in parse_multipart(request).items()}
        if fields.get("purpose") != "fine-tune":
            return openai_error(400, f"Invalid purpose: {fields.get('purpose')!r}")
        file_id = f"file-{len(self.files) + 1:04d}-fake"
        self.files[file_id] = {"fields": fields, "content": None}
        headers = {"Location": f"{self.root_url}/upload/{file_id}", "X-Together-File-Id": file_id}
        return FakeResponse(302, {}, headers)

    def _receive_upload(self, request: RecordedRequest) -> FakeResponse:
        file = self.files.get(request.params["file_id"])
        if file is None:
            return FakeResponse(404, {"message": "no such upload"})
        file["content"] = bytes(request.body or b"")
        return FakeResponse(200, {})

    def _preprocess(self, request: RecordedRequest) -> FakeResponse:
        file_id = request.params["file_id"]
        file = self.files.get(file_id)
        if file is None or file["content"] is None:
            return openai_error(404, f"File {file_id} was never uploaded")
        return FakeResponse(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(file["content"]),
                "created_at": int(time.time()),
                "filename": file["fields"].get("file_name"),
                "FileType": "jsonl",
                "purpose": "fine-tune",
                "processing_status": "COMPLETED",
            },
        )

    # --- jobs ----------------------------------------------------------------------------------

    def _limits(self, request: RecordedRequest) -> FakeResponse:
        model = parse_qs(request.query).get("model_name", [""])[-1]
        return FakeResponse(
            200,
            {
                "model_name": model,
                "default_gradient_accumulation_steps": 1,
                "lora_training": {
                    "default_rank": 8,
                    "max_batch_size": 32,
                    "max_batch_size_dpo": 16,
                    "max_rank": 64,
                    "min_batch_size": 8,
                    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                },
                "max_learning_rate": 1.0,
                "min_learning_rate": 0.0,
                "max_num_checkpoints": 10,
                "max_num_epochs": 20,
                "max_num_evals": 100,
                "max_seq_length_sft": self.plan.max_seq_length,
                "max_seq_length_dpo": self.plan.max_seq_length,
                "min_max_seq_length": 512,
                "merge_output_lora": True,
                "supports_full_training": True,
                "supports_reasoning": False,
                "supports_tools": True,
                "supports_vision": False,
                "full_training": {
                    "max_batch_size": 16,
                    "max_batch_size_dpo": 8,
                    "min_batch_size": 8,
                },
            },
        )

    def _estimate(self, request: RecordedRequest) -> FakeResponse:
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("training_file") not in self.files:
            return openai_error(400, f"Training file {body.get('training_file')} not found")
        if self.plan.estimated_price is None:
            return FakeResponse(
                200, {"estimation_available": False, "unavailable_reason": "train_file_invalid"}
            )
        evals = int(body.get("n_evals") or 0) if body.get("validation_file") else 0
        return FakeResponse(
            200,
            {
                "estimation_available": True,
                "allowed_to_proceed": True,
                "estimated_total_price": self.plan.estimated_price,
                "estimated_train_token_count": 12000,
                "estimated_eval_token_count": 100 * evals,
                "user_limit": 100.0,
            },
        )

    def _create_job(self, request: RecordedRequest) -> FakeResponse:
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("training_file") not in self.files:
            return openai_error(400, f"Training file {body.get('training_file')} not found")
        method = (body.get("training_method") or {}).get("method", "sft")
        if method not in ("sft", "dpo"):
            return openai_error(400, f"Unknown training method {method!r}")
        if bool(body.get("model")) == bool(body.get("from_checkpoint")):
            return openai_error(400, "Specify either a model or a checkpoint to start from")
        model = body.get("model")
        if body.get("from_checkpoint"):
            parent = self.jobs.get(str(body["from_checkpoint"]).split(":")[0])
            if parent is None or parent["status"] != "completed":
                return openai_error(
                    400, f"Checkpoint {body['from_checkpoint']} not found or not completed"
                )
            model = parent["model"]
        for key in ("training_file", "validation_file"):
            problem = self._file_problem(body.get(key), method)
            if problem:
                return openai_error(400, f"Invalid {key.replace('_', ' ')}: {problem}")
        job_id = f"ft-{len(self.jobs) + 1:08d}-fake"
        short = str(model or "").split("/")[-1]
        job = {
            **body,
            "model": model,
            "id": job_id,
            "status": "pending",
            "created_at": _now(),
            "updated_at": _now(),
            "user_id": "user-fake",
            "model_output_name": f"fake-user/{short}-{body.get('suffix')}-{job_id[3:11]}",
            "events": [],
            "token_count": 0,
        }
        with self._job_lock:
            self.jobs[job_id], self._ticks[job_id], self._steps[job_id] = job, 0, 0
            self.events[job_id] = []
            self._event(job_id, "job_pending", "Fine-tuning request created")
        return FakeResponse(200, job)

    def _file_problem(self, file_id: Any, method: str) -> str | None:
        """Together's documented formats: conversational lines (``messages``) for SFT, OpenAI's
        preference lines (``input``, ``preferred_output``, ``non_preferred_output``) for DPO."""
        if not file_id:
            return None
        file = self.files.get(file_id)
        if file is None or file["content"] is None:
            return f"file {file_id} not found"
        wanted = {"sft": {"messages"}, "dpo": set(PREFERENCE_KEYS)}[method]
        for number, line in enumerate(file["content"].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = sorted(wanted - set(row))
            if missing:
                return f"line {number} has no {missing[0]!r}, which {method} training needs"
            if method == "dpo":
                for key in ("preferred_output", "non_preferred_output"):
                    reply = row[key]
                    if not (isinstance(reply, list) and len(reply) == 1):
                        return f"line {number}: {key} must hold exactly one message"
                    if reply[0].get("role") != "assistant":
                        return f"line {number}: {key} must be an assistant message"
        return None

    def _retrieve_job(self, request: RecordedRequest) -> FakeResponse:
        job_id = request.params["job_id"]
        with self._job_lock:
            job = self.jobs.get(job_id)
            if job is None:
                return openai_error(404, f"Fine-tune job {job_id} not found")
            if job["status"] != "cancelled":
                self._advance(job)
            return FakeResponse(200, {**job, "events": list(self.events[job_id])})

    def _advance(self, job: dict[str, Any]) -> None:
        job_id, plan = job["id"], self.plan
        tick = self._ticks[job_id] = self._ticks[job_id] + 1
        status = plan.statuses[min(tick, len(plan.statuses) - 1)]
        entering = status != job["status"]
        job.update(status=status, updated_at=_now())
        total = len(plan.losses)
        if status == "running":
            if entering:
                self._event(job_id, "training_start", "Training started", step=0, total=total)
            self._steps[job_id] = min(self._steps[job_id] + 1, total)
        elif status == "completed" and entering:
            self._steps[job_id] = total
            job["token_count"] = 9876
            self._event(job_id, "training_complete", "Training completed", step=total, total=total)
            self._event(job_id, "job_complete", "Job finished")
        elif status == "error" and entering:
            self._event(job_id, "job_error", plan.error, level="error")

    def _event(
        self,
        job_id: str,
        type: str,
        message: str,
        *,
        level: str = "info",
        step: int | None = None,
        total: int | None = None,
    ) -> None:
        event = {
            "object": "fine-tune-event",
            "created_at": _now(),
            "message": message,
            "type": type,
            "level": level,
            "step": step,
            "total_steps": total,
        }
        self.events[job_id].append(event)

    def _list_events(self, request: RecordedRequest) -> FakeResponse:
        job_id = request.params["job_id"]
        if job_id not in self.jobs:
            return openai_error(404, f"Fine-tune job {job_id} not found")
        with self._job_lock:
            return FakeResponse(200, {"data": list(self.events[job_id])})

    def _list_metrics(self, request: RecordedRequest) -> FakeResponse:
        """Training rows for the steps done; an evaluation row (``eval/*`` keys, with
        ``train/global_step``) for each of the job's ``n_evals`` evaluation steps, logged only
        once training has moved past that step (or finished), so it can arrive a poll later."""
        job_id = request.params["job_id"]
        if job_id not in self.jobs:
            return openai_error(404, f"Fine-tune job {job_id} not found")
        start = int(parse_qs(request.query).get("global_step_from", ["0"])[-1])
        with self._job_lock:
            done, job = self._steps[job_id], self.jobs[job_id]
        total = len(self.plan.losses)
        evals = int(job.get("n_evals") or 0) if job.get("validation_file") else 0
        eval_steps = {round(total * k / evals) for k in range(1, evals + 1)} if evals else set()
        rows: list[dict[str, Any]] = []
        for step, loss in enumerate(self.plan.losses[:done], start=1):
            if step < start:
                continue
            rows.append({"train/global_step": step, "train/loss": loss, "train/epoch": step})
            if step in eval_steps and (step < done or job["status"] == "completed"):
                rows.append({"train/global_step": step, "eval/loss": round(loss + 0.2, 4)})
        return FakeResponse(200, {"metrics": rows})

    def _cancel_job(self, request: RecordedRequest) -> FakeResponse:
        job_id = request.params["job_id"]
        with self._job_lock:
            job = self.jobs.get(job_id)
            if job is None:
                return openai_error(404, f"Fine-tune job {job_id} not found")
            if job["status"] in ("completed", "error", "cancelled"):
                return openai_error(400, f"Job {job_id} is already {job['status']}")
            job.update(status="cancelled", updated_at=_now())
            self._event(job_id, "cancel_requested", "Job cancelled by user")
            return FakeResponse(200, dict(job))

    def _download(self, request: RecordedRequest) -> FakeResponse:
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        job = self.jobs.get(query.get("ft_id", ""))
        if job is None or job["status"] != "completed":
            return openai_error(400, "Fine-tune job is not completed; nothing to download")
        if query.get("checkpoint") != "adapter":
            return openai_error(400, f"unknown checkpoint type {query.get('checkpoint')!r}")
        archive = adapter_archive(self.plan.compression)
        return FakeResponse(200, archive, {"content-type": "application/octet-stream"})


@pytest.fixture
def together_server() -> Iterator[FakeTogetherServer]:
    """A fresh fake Together AI server per test, on a random loopback port."""
    with FakeTogetherServer() as server:
        yield server
