"""``/v1/chat/completions``: any app speaks in the team's voice through the ``openai`` SDK.

``model`` names a version ("v3"), or anything else ("brandvoice") for the promoted one. Every
answer is recorded as an interaction, like the bot's, so API traffic can be curated too.

With ``stream: true`` the reply goes out as server-sent ``chat.completion.chunk`` events while the
model writes it, then ``[DONE]``; ``stream_options.include_usage`` adds a last chunk with the
counts. A client that hangs up stops generation, and a reply nobody received is not recorded.

The team knowledge most relevant to the last user message goes into the prompt first (unless
``KNOWLEDGE_ENABLED`` is off); what was retrieved comes back in an extra top-level ``brandvoice``
field, ``{"sources": [...]}``, of the completion or of the stream's first chunk. OpenAI's clients
keep fields they do not know, so nothing breaks for them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from brandvoice.bot.api.deps import get_engine, get_settings, require_token
from brandvoice.bot.knowledge import KnowledgeService, Retrieved, source_label
from brandvoice.bot.settings import Settings
from brandvoice.inference.backend_cache import BackendLoader
from brandvoice.inference.chat import ChatBackend, ChatDelta, ChatResult, Sampling, collect_deltas
from brandvoice.inference.retrieval import Hit
from brandvoice.store.db import session_scope
from brandvoice.store.feedback import record_interaction
from brandvoice.store.models import ModelVersion, VersionStatus
from brandvoice.trainer.registry import RegistryError, get_version, promoted_version

router = APIRouter(tags=["chat"])


class ChatMessage(BaseModel):
    role: str
    content: str
    name: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model: str = Field(
        "brandvoice", description="A version such as 'v3', or any name for the promoted one."
    )
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


def _resolve_version(engine: Any, model: str) -> ModelVersion | None:
    with session_scope(engine) as session:
        if model.startswith("v") and model[1:].isdigit():
            try:
                version = get_version(session, model)
            except RegistryError as exc:
                raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
            if version.status == VersionStatus.DISCARDED:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"{model} was discarded")
            return version
        return promoted_version(session)


def _backend_for(request: Request, version: ModelVersion | None) -> ChatBackend:
    """The version's backend; the loader keeps loaded models in its bounded cache."""
    loader: BackendLoader = request.app.state.backend_loader
    return loader(version)


def brandvoice_body(hits: list[Hit]) -> dict[str, Any]:
    """The extra ``brandvoice`` field: each source as the reply's metadata records it, with the
    label the Slack reply shows and a snippet of its text."""
    return {
        "sources": [
            {**hit.as_metadata(), "label": source_label(hit), "snippet": hit.snippet}
            for hit in hits
        ]
    }


def _completion_body(
    completion_id: str, model: str, result: ChatResult, created: int, hits: list[Hit]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason or "stop",
            }
        ],
        "usage": _usage_body(result),
        "brandvoice": brandvoice_body(hits),
    }


def _usage_body(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
    }


class CompletionStream:
    """The reply as OpenAI's ``chat.completion.chunk`` events, each sent as the model writes it."""

    def __init__(
        self,
        completion_id: str,
        model: str,
        created: int,
        include_usage: bool,
        hits: list[Hit] | None = None,
    ):
        self.completion_id, self.model, self.created = completion_id, model, created
        self.include_usage = include_usage
        self.hits = hits or []
        self.result: ChatResult | None = None
        """The whole reply, once the model has finished it."""

    def event(
        self,
        choices: list[dict[str, Any]],
        usage: dict[str, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        chunk.update(extra or {})
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def delta(self, delta: dict[str, str], finish: str | None = None) -> str:
        return self.event([{"index": 0, "delta": delta, "finish_reason": finish}])

    async def events(self, deltas: AsyncIterator[ChatDelta]) -> AsyncIterator[str]:
        first = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        yield self.event(first, extra={"brandvoice": brandvoice_body(self.hits)})
        received: list[ChatDelta] = []
        async with aclosing(deltas) as stream:
            async for piece in stream:
                received.append(piece)
                if piece.text:
                    yield self.delta({"content": piece.text})
        self.result = collect_deltas(received, self.model)
        yield self.delta({}, self.result.finish_reason or "stop")
        if self.include_usage:
            yield self.event([], _usage_body(self.result))


async def _stream_and_record(
    stream: CompletionStream,
    deltas: AsyncIterator[ChatDelta],
    record: Callable[[ChatResult, int], None],
) -> AsyncIterator[str]:
    started = time.perf_counter()
    async with aclosing(stream.events(deltas)) as events:
        async for event in events:
            yield event
    assert stream.result is not None
    latency_ms = int((time.perf_counter() - started) * 1000)
    await asyncio.to_thread(record, stream.result, latency_ms)
    yield "data: [DONE]\n\n"


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    actor: Annotated[str, Depends(require_token)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> dict[str, Any] | StreamingResponse:
    engine = get_engine(request)
    version = await asyncio.to_thread(_resolve_version, engine, body.model)
    backend = await asyncio.to_thread(_backend_for, request, version)
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    knowledge: KnowledgeService = request.app.state.knowledge
    retrieved: Retrieved = await asyncio.to_thread(knowledge.augment_or_plain, engine, messages)
    sampling = Sampling(
        temperature=body.temperature,
        max_tokens=body.max_completion_tokens or body.max_tokens or 256,
        top_p=body.top_p,
        seed=body.seed,
    )
    redactor = settings.redactor

    def record(result: ChatResult, latency_ms: int) -> None:
        prompt, _ = redactor.redact_messages(messages)
        reply, _ = redactor.redact_text(result.text)
        with session_scope(engine) as session:
            record_interaction(
                session,
                channel="api",
                message_ts=None,
                prompt_messages=prompt,
                reply=reply,
                asker=body.user or actor,
                model_version_id=version.id if version else None,
                latency_ms=latency_ms,
                retrieved=retrieved.sources,
            )

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    model_name = version.name if version else "base"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = CompletionStream(completion_id, model_name, created, include_usage, retrieved.hits)
        return StreamingResponse(
            _stream_and_record(stream, backend.stream(retrieved.messages, sampling), record),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    started = time.perf_counter()
    result = await asyncio.to_thread(backend.complete, retrieved.messages, sampling)
    await asyncio.to_thread(record, result, int((time.perf_counter() - started) * 1000))
    return _completion_body(completion_id, model_name, result, created, retrieved.hits)
