from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from brandvoice.store import models  # noqa: F401
from brandvoice.store.db import migrations_current, upgrade


def test_migrations_create_exactly_the_schema_the_models_declare(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
    assert migrations_current(engine)


def test_upgrade_is_idempotent(engine):
    upgrade(engine)
    assert migrations_current(engine)
