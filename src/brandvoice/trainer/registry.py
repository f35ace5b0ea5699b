"""The model registry: candidates, the one promoted version, promotion, rollback and discard.

Each transition happens inside the caller's transaction together with its audit row, so a crash
leaves either the old state or the new one. A partial unique index in the database guarantees
that at most one version is promoted, even with several processes; transitions take a registry
lock first, so of two at once one is applied and the other refused with ``RegistryBusy`` (409)
instead of failing on that index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from brandvoice.store.audit import record_audit
from brandvoice.store.models import ModelVersion, RunStatus, TrainingRun, VersionStatus, utcnow
from brandvoice.store.runs import RunClaim, hold_claim

_REGISTRY_LOCK = 0x62765F726567  # PostgreSQL advisory lock key of registry transitions


class RegistryError(ValueError):
    """A registry transition that is not allowed; the message says why and what to do."""


class RegistryBusy(RegistryError):
    """Another promotion, rollback or discard was being applied at the same moment."""

    def __init__(self) -> None:
        super().__init__(
            "another promotion, rollback or discard was being applied at the same moment; "
            "check which version is in production and try again"
        )


def _lock_registry(session: Session) -> None:
    """Serialize transitions: PostgreSQL refuses a second one at once (SQLite's write lock
    already makes transactions take turns)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    query = text("SELECT pg_try_advisory_xact_lock(:key)")
    if not session.execute(query, {"key": _REGISTRY_LOCK}).scalar_one():
        raise RegistryBusy


def _flush(session: Session) -> None:
    """Flush, turning a lost race on the one-promoted index into ``RegistryBusy``."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise RegistryBusy from exc


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.exec(select(ModelVersion).order_by(col(ModelVersion.id))).all())


def get_version(session: Session, name: str) -> ModelVersion:
    version = session.exec(select(ModelVersion).where(ModelVersion.name == name)).first()
    if version is None:
        known = ", ".join(v.name for v in list_versions(session)) or "none yet"
        raise RegistryError(f"no model version {name!r} (known: {known})")
    return version


def promoted_version(session: Session) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.status == VersionStatus.PROMOTED)
    return session.exec(query).first()


def register_candidate(
    session: Session,
    *,
    base_model: str,
    backend: str = "local",
    run_id: int | None = None,
    snapshot_id: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    adapter_path: str | None = None,
    hosted_model_id: str | None = None,
    eval: dict[str, Any] | None = None,
    actor: str = "trainer",
    claim: RunClaim | None = None,
) -> ModelVersion:
    """A new candidate named v1, v2, ... after the highest id so far.

    With ``claim`` (a worker registering its run), nothing is registered unless the claim still
    holds (``ClaimLost``): an attempt that lost its run never adds a version.
    """
    if claim is not None:
        hold_claim(session, claim)
        run_id = claim.run_id
    highest = session.exec(select(func.max(ModelVersion.id))).one() or 0
    version = ModelVersion(
        name=f"v{highest + 1}",
        base_model=base_model,
        backend=backend,
        run_id=run_id,
        snapshot_id=snapshot_id,
        hyperparameters=hyperparameters or {},
        adapter_path=adapter_path,
        hosted_model_id=hosted_model_id,
        eval=eval or {},
    )
    session.add(version)
    session.flush()
    record_audit(session, actor, "model.register", version.name, {"run_id": run_id})
    return version


def promote_version(session: Session, name: str, actor: str) -> tuple[ModelVersion, bool]:
    """Promote ``name``, retiring the current one; returns (version, changed).

    Promoting the version already in production changes nothing (a second click is harmless).
    """
    _lock_registry(session)
    version = get_version(session, name)
    if version.status == VersionStatus.PROMOTED:
        return version, False
    if version.status == VersionStatus.DISCARDED:
        raise RegistryError(f"{name} was discarded and cannot be promoted; retrain instead")
    if version.run_id is not None:
        run = session.get(TrainingRun, version.run_id)
        if run is not None and run.status not in (RunStatus.SUCCEEDED, RunStatus.RUNNING):
            raise RegistryError(f"{name} comes from run {run.id}, which {run.status.value}")
    current = promoted_version(session)
    if current is not None:
        current.status = VersionStatus.RETIRED
        session.add(current)
        _flush(session)  # the one-promoted index must see the old one leave first
    version.status = VersionStatus.PROMOTED
    version.promoted_by, version.promoted_at, version.rolled_back_at = actor, utcnow(), None
    session.add(version)
    _flush(session)
    record_audit(
        session, actor, "model.promote", name, {"previous": current.name if current else None}
    )
    return version, True


def previous_good_version(session: Session, current: ModelVersion) -> ModelVersion | None:
    """What a rollback of ``current`` would restore: the most recently promoted version that was
    retired without being rolled back; None for the base model."""
    query = (
        select(ModelVersion)
        .where(
            ModelVersion.status == VersionStatus.RETIRED,
            col(ModelVersion.promoted_at).is_not(None),
            col(ModelVersion.rolled_back_at).is_(None),
            ModelVersion.id != current.id,
        )
        .order_by(col(ModelVersion.promoted_at).desc(), col(ModelVersion.id).desc())
    )
    return session.exec(query).first()


def rollback(
    session: Session, actor: str, only: str | None = None
) -> tuple[ModelVersion | None, ModelVersion]:
    """Put the previously promoted good version back; returns (restored or None for base, demoted).

    The demoted version is marked as rolled back so a later rollback never returns to it. With
    ``only``, nothing changes unless ``only`` is the version in production (a button posted
    about one version must never roll back a later one).
    """
    _lock_registry(session)
    current = promoted_version(session)
    if current is None:
        raise RegistryError("nothing is promoted, so there is nothing to roll back")
    if only is not None and current.name != only:
        raise RegistryError(
            f"{only} is no longer in production ({current.name} is); nothing changed"
        )
    previous = previous_good_version(session, current)
    current.status, current.rolled_back_at = VersionStatus.RETIRED, utcnow()
    session.add(current)
    _flush(session)
    if previous is not None:
        previous.status = VersionStatus.PROMOTED
        previous.promoted_by, previous.promoted_at = actor, utcnow()
        session.add(previous)
        _flush(session)
    record_audit(
        session,
        actor,
        "model.rollback",
        current.name,
        {"restored": previous.name if previous else "base model"},
    )
    return previous, current


def discard_version(session: Session, name: str, actor: str) -> tuple[ModelVersion, bool]:
    """Discard a candidate or retired version; returns (version, changed)."""
    _lock_registry(session)
    version = get_version(session, name)
    if version.status == VersionStatus.DISCARDED:
        return version, False
    if version.status == VersionStatus.PROMOTED:
        raise RegistryError(f"{name} is in production; promote another version or roll back first")
    version.status = VersionStatus.DISCARDED
    session.add(version)
    record_audit(session, actor, "model.discard", name)
    return version, True
