"""The retrain pipeline's generate step, as the worker runs it.

The generator is the OpenAI-compatible server when one is configured, else the local base model;
the responder that answers new and reworded requests is the promoted version (its adapter or
hosted model), else the generator itself. Both come from the process's :class:`Backends`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from brandvoice.bot.backends import Backends
from brandvoice.datagen.generate import GenerateConfig, GenerateProgress, generate_variations
from brandvoice.trainer.pipeline import GenerateStep

NO_LOCAL_RESPONDER = (
    "no promoted model to answer in the voice: the local base model's own answers do not survive "
    "the filters (0 of 20 measured), so generation waits for a promoted version or OPENAI_BASE_URL"
)


def pipeline_generate_step(backends: Backends, per_example: int = 1) -> GenerateStep:
    """Expand approved examples not yet expanded, report progress between 5% and 25% of the run,
    and return the summary as a dict. With only the local base model (no server, nothing
    promoted) it skips: that model writes nothing the filters keep."""
    settings = backends.settings

    def step(engine: Engine, progress: Any, per_example: int = per_example) -> Mapping[str, Any]:
        from brandvoice.inference.embeddings import embed_texts
        from brandvoice.inference.tokens import count_chat_tokens_batch

        generator = backends.generator()
        responder = backends.promoted(engine)
        if responder is None and not generator.supports_json:
            return {"skipped": NO_LOCAL_RESPONDER}

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
