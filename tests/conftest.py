"""Fixtures shared by the whole suite.

The suite runs twice in CI: on SQLite (default) and on PostgreSQL when ``DATABASE_URL`` points at a
server. Every test that takes ``engine`` gets an empty, fully migrated database of that kind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from brandvoice.store.db import make_engine, upgrade

TEST_DATA = Path(__file__).parent / "data"


def _server_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """An empty database: a fresh schema on the PostgreSQL server, else a new SQLite file."""
    url = _server_url()
    if url is None:
        return f"sqlite:///{tmp_path / 'brandvoice.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def count_tokens():  # type: ignore[no-untyped-def]
    from brandvoice.inference.tokens import count_chat_tokens_batch

    return count_chat_tokens_batch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, run only tests that touch the database; the rest ran on SQLite."""
    if _server_url() is None:
        return
    skip = pytest.mark.skip(reason="does not touch the database; covered by the SQLite pass")
    for item in items:
        if "database_url" not in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    """The packaged MiniLM's ``embed_texts``, loaded once for the whole session."""
    from brandvoice.inference.embeddings import embed_texts

    embed_texts(["warm up"])
    return embed_texts
