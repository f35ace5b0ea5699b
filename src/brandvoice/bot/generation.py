"""The retrain pipeline's generate step, as the worker runs it.

The generator is the OpenAI-compatible server when one is configured (instruction and JSON
templates), else the local base model (few-shot continuation, ``datagen/fewshot.py``). The
responder that answers the new requests is the latest trained version (its adapter or hosted
model), which already speaks in the voice, with the local generator; with a server, the promoted
version, else the server model itself. Both come from the process's :class:`Backends`, and the
responder is asked as replies are served, with the knowledge retrieved for the request in its
prompt (:class:`ServedResponder`). Local generation runs when ``LOCAL_SYNTHETIC`` is on (off by
default; ``Settings.local_synthetic`` has the measurement behind it) and a trained version exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from brandvoice.bot.backends import Backends
from brandvoice.bot.knowledge import KnowledgeService
from brandvoice.datagen.generate import GenerateConfig, GenerateProgress, generate_variations
from brandvoice.inference.chat import ChatBackend, ChatDelta, ChatResult, Messages, Sampling
from brandvoice.trainer.pipeline import GenerateStep

LOCAL_SYNTHETIC_OFF = (
    "local generation is off (LOCAL_SYNTHETIC=false); set it to true, or OPENAI_BASE_URL to "
    "generate with a server model"
)
NO_LOCAL_RESPONDER = (
    "no trained model to answer in the voice yet: the local base model's own answers are not in "
    "the voice, so local generation waits for the first trained version"
)


@dataclass
class ServedResponder:
    """A voice model asked as the bot serves it: the knowledge retrieved for the request goes
    into the prompt. A context-trained adapter asked without it is off the distribution it
    learned (in the demo, v1's bare answers lost the sign-off and told stories)."""

    backend: ChatBackend
    knowledge: KnowledgeService
    engine: Engine

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def supports_json(self) -> bool:
        return self.backend.supports_json

    def served(self, messages: Messages) -> Messages:
        return self.knowledge.augment_or_plain(self.engine, messages).messages

    def stream(
        self, messages: Messages, sampling: Sampling | None = None
    ) -> AsyncIterator[ChatDelta]:
        return self.backend.stream(self.served(messages), sampling)

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        return self.backend.complete(self.served(messages), sampling)

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        return self.backend.complete_batch([self.served(c) for c in conversations], sampling)


def responder_for(
    backends: Backends,
    generator: ChatBackend,
    engine: Engine,
    knowledge: KnowledgeService | None = None,
) -> ChatBackend | None:
    """Who answers the new requests: with the local generator the latest trained version (it
    already has the voice, and the most approved examples behind it); with a server generator
    the promoted version. None: the generator answers. With ``knowledge`` it is asked as served
    (with knowledge switched off, that is the bare request)."""
    voice = (
        backends.promoted(engine) if generator.supports_json else backends.latest_trained(engine)
    )
    if voice is None or knowledge is None:
        return voice
    return ServedResponder(voice, knowledge, engine)


def pipeline_generate_step(
    backends: Backends, knowledge: KnowledgeService | None = None, per_example: int = 1
) -> GenerateStep:
    """Expand approved examples not yet expanded, report progress between 5% and 25% of the run,
    and return the summary as a dict. With only the local model it skips when ``LOCAL_SYNTHETIC``
    is off or no trained version exists yet to write the replies (the first run trains on the
    real examples; the next one expands them); otherwise each parent gets ``LOCAL_CANDIDATES``
    sampled candidates and the filters keep the good ones."""
    settings = backends.settings

    def step(engine: Engine, progress: Any, per_example: int = per_example) -> Mapping[str, Any]:
        from brandvoice.inference.embeddings import embed_texts
        from brandvoice.inference.tokens import count_chat_tokens_batch

        generator = backends.generator()
        local = not generator.supports_json
        if local and not settings.local_synthetic:
            return {"skipped": LOCAL_SYNTHETIC_OFF}
        responder = responder_for(backends, generator, engine, knowledge)
        if local and responder is None:
            return {"skipped": NO_LOCAL_RESPONDER}
        if local:
            per_example = max(per_example, settings.local_candidates)

        def on_progress(p: GenerateProgress) -> None:
            fraction = 0.05 + 0.2 * (p.done / p.total if p.total else 1.0)
            progress.progress(fraction, "generate", {"generate": {"kept": p.kept, "done": p.done}})

        summary = generate_variations(
            engine,
            generator,
            embed=embed_texts,
            count_tokens=count_chat_tokens_batch,
            responder=responder,
            config=GenerateConfig(per_example=per_example, concurrency=settings.chat_concurrency),
            redactor=settings.redactor,
            on_progress=on_progress,
        )
        return summary.as_dict()

    return step
