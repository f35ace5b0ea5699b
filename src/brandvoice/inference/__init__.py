"""Everything that makes a model produce text or vectors.

Names are imported lazily so that ``import brandvoice.inference`` does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ChatBackend": "chat",
    "ChatResult": "chat",
    "Messages": "chat",
    "Sampling": "chat",
    "Usage": "chat",
    "ChatBackendError": "errors",
    "ChatTimeoutError": "errors",
    "OpenAIChat": "openai_chat",
    "LocalChat": "local_chat",
    "make_chat_backend": "factory",
    "embed_texts": "embeddings",
    "cosine_similarity": "embeddings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
