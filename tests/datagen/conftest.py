"""Fixtures for the datagen tests: a seeded store, real embeddings, and the fake OpenAI server."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from brandvoice.datagen.guidelines import set_guidelines
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.models import Example, ExampleSource, Split
from tests.datagen.brand import GUIDELINES, PARENTS, VALIDATION_PARENT
from tests.fakes import openai_server

__all__ = ["openai_server"]


@pytest.fixture(scope="session")
def embed() -> Callable[[Sequence[str]], np.ndarray]:
    from brandvoice.inference.embeddings import embed_texts

    embed_texts(["warm up"])
    return embed_texts


def seed_store(
    engine: Engine, count_tokens: Any, *, with_validation: bool = True
) -> dict[str, int]:
    """The crafted parents as approved imports (split forced: train, and one validation parent)."""
    items = list(PARENTS.items()) + ([("validation", VALIDATION_PARENT)] if with_validation else [])
    with session_scope(engine) as session:
        result = add_examples(
            session,
            [NewExample(messages, ExampleSource.IMPORT) for _, messages in items],
            count_tokens,
        )
        assert len(result.inserted_ids) == len(items)
        ids = dict(zip([name for name, _ in items], result.inserted_ids, strict=True))
        for example in session.exec(select(Example).where(col(Example.id).in_(ids.values()))):
            example.split = Split.VAL if example.id == ids.get("validation") else Split.TRAIN
            session.add(example)
        set_guidelines(session, GUIDELINES, "test")
    return ids


@pytest.fixture
def seeded(engine: Engine, count_tokens: Any) -> dict[str, int]:
    return seed_store(engine, count_tokens)
