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


def test_the_run_kind_migration_moves_generation_runs_out_of_their_config(database_url):
    """Runs queued before runs had a kind keep working: ``config["kind"]`` becomes the column."""
    import json

    from alembic import command
    from sqlalchemy import text

    from brandvoice.store.db import alembic_config, make_engine, session_scope
    from brandvoice.store.models import RunKind, TrainingRun

    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), "0002")
    with engine.begin() as connection:
        for config in ('{"kind": "generate", "per_example": 4}', '{"train": {"epochs": 2}}'):
            connection.execute(
                text(
                    "INSERT INTO trainingrun (status, backend, workspace, config, progress, "
                    "attempts, metrics, cancel_requested, force, created_at) VALUES ('queued', "
                    "'local', 'default', :config, 0, 0, '{}', false, false, CURRENT_TIMESTAMP)"
                ),
                {"config": config},
            )
    upgrade(engine)
    with session_scope(engine) as session:
        runs = [(r.kind, r.config) for r in session.query(TrainingRun).order_by(TrainingRun.id)]
    assert runs == [
        (RunKind.GENERATE, {"per_example": 4}),
        (RunKind.TRAIN, {"train": {"epochs": 2}}),
    ]
    command.downgrade(alembic_config(engine), "0002")
    with engine.connect() as connection:
        configs = connection.execute(text("SELECT config FROM trainingrun ORDER BY id")).scalars()
        assert [c if isinstance(c, dict) else json.loads(c) for c in configs] == [
            {"per_example": 4, "kind": "generate"},
            {"train": {"epochs": 2}},
        ]
    engine.dispose()


def test_the_preference_pair_migration_downgrades_and_upgrades_again(database_url):
    from alembic import command
    from sqlalchemy import inspect

    from brandvoice.store.db import alembic_config, make_engine

    engine = make_engine(database_url)
    upgrade(engine)
    assert "preferencepair" in inspect(engine).get_table_names()
    command.downgrade(alembic_config(engine), "slack_processed_events")
    assert "preferencepair" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert migrations_current(engine)
    engine.dispose()
