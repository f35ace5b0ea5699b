from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.models import AuditLog, ModelVersion, RunStatus, TrainingRun, VersionStatus
from brandvoice.trainer.registry import (
    RegistryError,
    discard_version,
    promote_version,
    promoted_version,
    register_candidate,
    rollback,
)


def _register(engine, n: int) -> list[str]:
    with session_scope(engine) as session:
        return [register_candidate(session, base_model="base").name for _ in range(n)]


def test_versions_are_named_in_order_and_one_is_promoted_at_a_time(engine):
    assert _register(engine, 3) == ["v1", "v2", "v3"]
    with session_scope(engine) as session:
        promote_version(session, "v1", "U1")
    with session_scope(engine) as session:
        version, changed = promote_version(session, "v2", "U2")
        assert changed and version.promoted_by == "U2"
    with session_scope(engine) as session:
        statuses = {v.name: v.status for v in session.exec(select(ModelVersion))}
        assert statuses == {"v1": "retired", "v2": "promoted", "v3": "candidate"}
        actions = [a.action for a in session.exec(select(AuditLog).order_by(AuditLog.id))]
        assert actions.count("model.promote") == 2


def test_promoting_twice_changes_nothing(engine):
    _register(engine, 1)
    with session_scope(engine) as session:
        promote_version(session, "v1", "U1")
    with session_scope(engine) as session:
        _, changed = promote_version(session, "v1", "U9")
        assert not changed
        assert promoted_version(session).promoted_by == "U1"


def test_rollback_restores_the_previous_good_version_and_never_returns_to_the_bad_one(engine):
    _register(engine, 3)
    for name in ("v1", "v2", "v3"):
        with session_scope(engine) as session:
            promote_version(session, name, "U1")
    with session_scope(engine) as session:
        restored, demoted = rollback(session, "U1")
        assert (restored.name, demoted.name) == ("v2", "v3")
    with session_scope(engine) as session:
        restored, demoted = rollback(session, "U1")
        assert (restored.name, demoted.name) == ("v1", "v2")
    with session_scope(engine) as session:
        restored, demoted = rollback(session, "U1")
        assert restored is None and demoted.name == "v1"
        assert promoted_version(session) is None
    with session_scope(engine) as session, pytest.raises(RegistryError, match="nothing"):
        rollback(session, "U1")


def test_refusals_name_the_problem(engine):
    _register(engine, 2)
    with session_scope(engine) as session, pytest.raises(RegistryError, match="no model version"):
        promote_version(session, "v9", "U1")
    with session_scope(engine) as session:
        discard_version(session, "v1", "U1")
    with session_scope(engine) as session, pytest.raises(RegistryError, match="discarded"):
        promote_version(session, "v1", "U1")
    with session_scope(engine) as session:
        promote_version(session, "v2", "U1")
    with session_scope(engine) as session, pytest.raises(RegistryError, match="in production"):
        discard_version(session, "v2", "U1")


def test_version_from_a_failed_run_is_refused(engine):
    with session_scope(engine) as session:
        run = TrainingRun(status=RunStatus.FAILED)
        session.add(run)
        session.flush()
        register_candidate(session, base_model="base", run_id=run.id)
    with session_scope(engine) as session, pytest.raises(RegistryError, match="failed"):
        promote_version(session, "v1", "U1")


def test_the_database_itself_refuses_two_promoted_versions(engine):
    _register(engine, 2)
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        for version in session.exec(select(ModelVersion)):
            version.status = VersionStatus.PROMOTED
            session.add(version)
        session.flush()
