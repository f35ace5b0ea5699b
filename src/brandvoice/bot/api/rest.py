"""REST routes for examples, snapshots, runs, models and reports (all behind the bearer token)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import FileResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from brandvoice.bot.api.deps import (
    PRINTABLE,
    Actor,
    Offset,
    RowId,
    SessionDep,
    VersionName,
    get_settings,
    require_token,
)
from brandvoice.bot.runs import RunRequest, enqueue_request
from brandvoice.bot.settings import Settings
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.audit import query_audit, record_refusal
from brandvoice.store.examples import edit_example, list_examples, set_example_status
from brandvoice.store.jsonl import InvalidExample
from brandvoice.store.models import (
    AuditLog,
    DatasetSnapshot,
    Example,
    ExampleSource,
    ExampleStatus,
    ModelVersion,
    PreferencePair,
    PreferenceSource,
    Split,
    TrainingRun,
    VersionStatus,
    utcnow,
)
from brandvoice.store.preferences import list_pairs
from brandvoice.store.runs import ActiveRunError, latest_runs, request_cancel
from brandvoice.store.signal import VersionSignal, version_signal, version_signals
from brandvoice.store.snapshots import preference_paths
from brandvoice.trainer.eval_report import EvalReport, report_of
from brandvoice.trainer.registry import (
    RegistryError,
    discard_version,
    get_version,
    list_versions,
    promote_version,
    rollback,
)

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])


class ExampleEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(description="The new messages, OpenAI chat format.")


def _not_found(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\""))


def _conflict(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


def _audit_refusal(
    session: Session, actor: str, action: str, target: str | None, exc: Exception
) -> None:
    """Roll the refused change back, then commit the audit row of the refusal on its own."""
    session.rollback()
    record_refusal(session, actor, action, target, str(exc))
    session.commit()


@router.get("/examples", response_model=list[Example], tags=["examples"])
def get_examples(
    session: SessionDep,
    status_: Annotated[ExampleStatus | None, Query(alias="status")] = None,
    source: ExampleSource | None = None,
    split: Split | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[Example]:
    return list_examples(session, status_, source, split, limit, offset)


@router.post("/examples/{example_id}/{decision}", response_model=Example, tags=["examples"])
def decide_example(
    example_id: RowId, decision: Literal["approve", "reject"], session: SessionDep, actor: Actor
) -> Example:
    new_status = ExampleStatus.APPROVED if decision == "approve" else ExampleStatus.REJECTED
    try:
        return set_example_status(session, example_id, new_status, actor)
    except LookupError as exc:
        raise _not_found(exc) from exc


@router.patch("/examples/{example_id}", response_model=Example, tags=["examples"])
def patch_example(
    example_id: RowId,
    body: ExampleEdit,
    session: SessionDep,
    actor: Actor,
    settings: Settings = Depends(get_settings),
) -> Example:
    try:
        return edit_example(
            session,
            example_id,
            body.messages,
            actor,
            count_chat_tokens_batch,
            settings.redactor,
            settings.max_example_tokens,
        )
    except LookupError as exc:
        raise _not_found(exc) from exc
    except InvalidExample as exc:
        raise HTTPException(422, str(exc)) from exc
    except ValueError as exc:
        raise _conflict(exc) from exc


@router.get("/snapshots", response_model=list[DatasetSnapshot], tags=["snapshots"])
def get_snapshots(session: SessionDep) -> list[DatasetSnapshot]:
    return list(session.exec(select(DatasetSnapshot).order_by(col(DatasetSnapshot.id).desc())))


@router.get("/snapshots/{snapshot_id}/{split}.jsonl", tags=["snapshots"])
def download_snapshot(
    snapshot_id: RowId,
    split: Literal["train", "val", "preference_train", "preference_val"],
    session: SessionDep,
) -> FileResponse:
    snapshot = session.get(DatasetSnapshot, snapshot_id)
    if snapshot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"snapshot {snapshot_id} does not exist")
    pair_train, pair_val = preference_paths(snapshot)
    path = {
        "train": Path(snapshot.train_path),
        "val": Path(snapshot.val_path),
        "preference_train": pair_train,
        "preference_val": pair_val,
    }[split]
    if not path.is_file():
        raise HTTPException(status.HTTP_410_GONE, f"{path} is no longer on disk")
    return FileResponse(path, media_type="application/jsonl", filename=f"{split}.jsonl")


@router.get("/pairs", response_model=list[PreferencePair], tags=["pairs"])
def get_pairs(
    session: SessionDep,
    source: PreferenceSource | None = None,
    split: Split | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[PreferencePair]:
    """Stored preference pairs (chosen over rejected reply), oldest first, with provenance."""
    return list_pairs(session, source, split, limit, offset)


@router.get("/runs", response_model=list[TrainingRun], tags=["runs"])
def get_runs(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[TrainingRun]:
    return latest_runs(session, limit)


@router.post(
    "/runs", response_model=TrainingRun, status_code=status.HTTP_202_ACCEPTED, tags=["runs"]
)
def post_run(
    body: RunRequest,
    session: SessionDep,
    actor: Actor,
    settings: Settings = Depends(get_settings),
) -> TrainingRun:
    """Queue a retrain (the options of ``brandvoice train``) or ``{"kind": "generate", ...}``;
    409 while another run is queued or running."""
    try:
        return enqueue_request(session, actor, body, default_backend=settings.training_backend)
    except ActiveRunError as exc:
        _audit_refusal(session, actor, "run.enqueue", None, exc)
        raise _conflict(exc) from exc


@router.get("/runs/{run_id}", response_model=TrainingRun, tags=["runs"])
def get_run(run_id: RowId, session: SessionDep) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    return run


@router.post("/runs/{run_id}/cancel", response_model=TrainingRun, tags=["runs"])
def cancel_run(run_id: RowId, session: SessionDep, actor: Actor) -> TrainingRun:
    try:
        return request_cancel(session, run_id, actor)
    except LookupError as exc:
        raise _not_found(exc) from exc
    except ValueError as exc:
        raise _conflict(exc) from exc


@router.get("/models", response_model=list[ModelVersion], tags=["models"])
def get_models(session: SessionDep) -> list[ModelVersion]:
    return list_versions(session)


BASE_NAME = "base"
"""What ``/api/models/{name}/signal`` calls the base model (replies while nothing was promoted)."""
WindowHours = Annotated[
    float | None,
    Query(
        gt=0,
        le=24 * 3660,
        description="Count only replies served in the last this many hours; default all time.",
    ),
]


def _since(window_hours: float | None) -> datetime | None:
    return utcnow() - timedelta(hours=window_hours) if window_hours is not None else None


@router.get("/signal", response_model=list[VersionSignal], tags=["models"])
def get_signals(
    session: SessionDep,
    window_hours: WindowHours = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[VersionSignal]:
    """How people rated each version's replies, newest version first, the base model last:
    replies served, 👍/👎, approvals and corrections, each rate with its 95% Wilson interval."""
    signals = version_signals(session, since=_since(window_hours))
    ordered = sorted(signals.items(), key=lambda item: -(item[0] or 0))
    return [signal for _, signal in ordered][offset : offset + limit]


@router.get("/models/{name}/signal", response_model=VersionSignal, tags=["models"])
def get_model_signal(
    name: VersionName, session: SessionDep, window_hours: WindowHours = None
) -> VersionSignal:
    """How people rated the replies of ``name`` (``base``: the base model)."""
    version = None
    if name != BASE_NAME:
        try:
            version = get_version(session, name)
        except RegistryError as exc:
            raise _not_found(exc) from exc
    return version_signal(session, version, since=_since(window_hours))


@router.post("/models/rollback", tags=["models"])
def post_rollback(session: SessionDep, actor: Actor) -> dict[str, str | None]:
    try:
        restored, demoted = rollback(session, actor)
    except RegistryError as exc:
        _audit_refusal(session, actor, "model.rollback", None, exc)
        raise _conflict(exc) from exc
    return {"restored": restored.name if restored else None, "demoted": demoted.name}


@router.post("/models/{name}/{action}", response_model=ModelVersion, tags=["models"])
def post_model_action(
    name: VersionName,
    action: Literal["promote", "discard"],
    session: SessionDep,
    actor: Actor,
) -> ModelVersion:
    """Promote or discard ``name``; 409 when refused (discarded, in production, or another
    promotion being applied at the same moment), and the refusal is audited."""
    transition = promote_version if action == "promote" else discard_version
    try:
        version, _ = transition(session, name, actor)
    except RegistryError as exc:
        _audit_refusal(session, actor, f"model.{action}", name, exc)
        missing = str(exc).startswith("no model version")
        raise (_not_found(exc) if missing else _conflict(exc)) from exc
    return version


class VersionReport(BaseModel):
    """A version and its evaluation report (null when registered without one)."""

    version: str
    status: VersionStatus
    eval: EvalReport | None


def _version_report(version: ModelVersion) -> VersionReport:
    return VersionReport(version=version.name, status=version.status, eval=report_of(version))


@router.get("/reports", response_model=list[VersionReport], tags=["reports"])
def get_reports(session: SessionDep) -> list[VersionReport]:
    """Every version's evaluation report, newest first."""
    return [_version_report(v) for v in reversed(list_versions(session)) if v.eval]


@router.get("/reports/{name}", response_model=VersionReport, tags=["reports"])
def get_report(name: VersionName, session: SessionDep) -> VersionReport:
    try:
        version = get_version(session, name)
    except RegistryError as exc:
        raise _not_found(exc) from exc
    return _version_report(version)


@router.get("/audit", response_model=list[AuditLog], tags=["audit"])
def get_audit(
    session: SessionDep,
    actor: Annotated[
        str | None, Query(pattern=PRINTABLE, max_length=200, description="Exact actor.")
    ] = None,
    action: Annotated[
        str | None,
        Query(
            pattern=PRINTABLE,
            max_length=100,
            description="Exact action, e.g. model.promote.refused.",
        ),
    ] = None,
    version: Annotated[
        str | None, Query(pattern=PRINTABLE, max_length=100, description="Model version, e.g. v3.")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="ISO 8601 time with offset.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[AuditLog]:
    """The audit log, newest first: who did (or was refused) what to what, and when."""
    return query_audit(
        session,
        actor=actor,
        action=action,
        target=version,
        since=since,
        limit=limit,
        offset=offset,
    )
