"""The schema: every table brandvoice keeps, as SQLModel classes.

JSON columns hold structured values (messages, metrics, provenance); enums are stored as their
string values so the database stays readable without the code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint, text
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(when: datetime) -> datetime:
    """``when`` with a time zone: SQLite hands stored times back naive, and they are UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def json_column(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


def enum_column(enum: type[StrEnum], default: Any = None, index: bool = False) -> Any:
    """An enum stored as its lower-case string value in a VARCHAR (no native DB enum types)."""
    column_type = SAEnum(
        enum, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e]
    )
    return Field(default=default, sa_column=Column(column_type, nullable=False, index=index))


class ExampleSource(StrEnum):
    APPROVED_REPLY = "approved_reply"
    CORRECTION = "correction"
    IMPORT = "import"
    SYNTHETIC = "synthetic"


class ExampleStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETIRED = "retired"


class PreferenceSource(StrEnum):
    """Where a preference pair came from: a person's correction, or a 👎 reply that the same
    request later got an approved answer to."""

    CORRECTION = "correction"
    DOWNVOTE = "downvote"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"


class VoteKind(StrEnum):
    UP = "up"
    DOWN = "down"
    APPROVE = "approve"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class RunKind(StrEnum):
    """What a queued run does: retrain a candidate, or only expand the dataset synthetically."""

    TRAIN = "train"
    GENERATE = "generate"


class VersionStatus(StrEnum):
    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    RETIRED = "retired"
    DISCARDED = "discarded"


class Interaction(SQLModel, table=True):
    """One reply the bot (or the chat API) gave, with what it was asked and which model wrote it."""

    __table_args__ = (UniqueConstraint("channel", "message_ts", name="uq_interaction_message"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(index=True)
    thread_ts: str | None = None
    message_ts: str | None = None
    asker: str | None = None
    prompt_messages: list[dict[str, Any]] = json_column()
    reply: str
    model_version_id: int | None = Field(default=None, foreign_key="modelversion.id")
    latency_ms: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    retrieved: list[dict[str, Any]] | None = json_column(nullable=True)
    """What retrieval put in the prompt (kind, id, title, score; best first); None when nothing
    was. ``prompt_messages`` stays the prompt without it, so examples made from the reply do not
    carry context that was current only then."""


class FeedbackVote(SQLModel, table=True):
    """A reaction on a bot reply; retried or doubly delivered events count once."""

    __table_args__ = (
        UniqueConstraint("interaction_id", "user", "reaction", name="uq_vote_natural"),
        UniqueConstraint("event_id", name="uq_vote_event"),
    )

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = Field(foreign_key="interaction.id", index=True)
    kind: VoteKind = enum_column(VoteKind)
    user: str
    reaction: str
    event_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    retracted_at: datetime | None = None
    """Set on a withdrawn vote, and on a removal that arrived before its reaction (a tombstone)."""
    event_at: datetime | None = None
    """Slack's time of the latest reaction or removal applied; an older one arriving later is
    ignored, so the order Slack delivers them in does not matter."""


class Example(SQLModel, table=True):
    """A training conversation in OpenAI's chat format, with where it came from and who vouched for it."""

    id: int | None = Field(default=None, primary_key=True)
    messages: list[dict[str, Any]] = json_column()
    source: ExampleSource = enum_column(ExampleSource, index=True)
    status: ExampleStatus = enum_column(ExampleStatus, index=True)
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parent_id: int | None = Field(default=None, foreign_key="example.id", index=True)
    content_hash: str = Field(unique=True, max_length=64)
    token_count: int
    split: Split = enum_column(Split)
    redactions: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    provenance: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id")
    created_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class PreferencePair(SQLModel, table=True):
    """A prompt with the reply people preferred and one they did not, for preference training.

    Texts are redacted like examples'; the split follows the prompt's hash (and any validation
    example with the same prompt), so a validation prompt never trains.
    """

    id: int | None = Field(default=None, primary_key=True)
    prompt_messages: list[dict[str, Any]] = json_column()
    """The conversation up to the reply (system prompt and thread), in OpenAI's chat format."""
    chosen: str
    rejected: str
    source: PreferenceSource = enum_column(PreferenceSource, index=True)
    example_id: int = Field(foreign_key="example.id", index=True)
    """The example whose reply is ``chosen``: the pair is trained on only while it is approved."""
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id", index=True)
    """The bot reply that was ``rejected``."""
    prompt_hash: str = Field(index=True, max_length=64)
    content_hash: str = Field(unique=True, max_length=64)
    split: Split = enum_column(Split)
    redactions: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    provenance: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class KnowledgeDoc(SQLModel, table=True):
    """A file the team gave the bot as knowledge. Replacing or removing it keeps the row (with
    ``removed_at`` set), so a snapshot's chunk ids stay readable; one live row per name."""

    __table_args__ = (
        Index(
            "uq_knowledgedoc_live_name",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=255)
    """The source's name (its file name): what ``knowledge remove`` takes."""
    path: str
    """Where it was added from."""
    title: str
    content_hash: str = Field(max_length=64)
    """Hash of the redacted chunks: the same file added again changes nothing."""
    added_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    removed_at: datetime | None = Field(default=None, index=True)


class KnowledgeChunk(SQLModel, table=True):
    """A redacted piece of a knowledge file (its heading path as a prefix) and its embedding."""

    id: int | None = Field(default=None, primary_key=True)
    doc_id: int = Field(foreign_key="knowledgedoc.id", index=True)
    ordinal: int
    text: str
    token_count: int
    redactions: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """Little-endian float32, unit length (384 values for MiniLM)."""
    content_hash: str = Field(max_length=64)


class DatasetSnapshot(SQLModel, table=True):
    """An immutable, hashed set of examples with its train/val files on disk."""

    id: int | None = Field(default=None, primary_key=True)
    content_hash: str = Field(unique=True, max_length=64)
    example_ids: list[int] = json_column()
    train_path: str
    val_path: str
    stats: dict[str, Any] = json_column()
    created_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class TrainingRun(SQLModel, table=True):
    """One retrain attempt, from enqueue to a registered candidate (or a failure with its reason)."""

    __table_args__ = (
        # At most one running run per workspace, however many workers race for the queue.
        Index(
            "uq_one_running_per_workspace",
            "workspace",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        # A scheduled fire time enqueues one run, however many workers see it.
        UniqueConstraint("scheduled_for", name="uq_run_scheduled_for"),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: RunStatus = enum_column(RunStatus, default=RunStatus.QUEUED, index=True)
    kind: RunKind = enum_column(RunKind, default=RunKind.TRAIN)
    backend: str = "local"
    workspace: str = "default"
    snapshot_id: int | None = Field(default=None, foreign_key="datasetsnapshot.id")
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    progress: float = 0.0
    stage: str | None = None
    heartbeat_at: datetime | None = None
    worker: str | None = None
    attempts: int = 0
    """Claims so far; the current claim is (``worker``, ``attempts``) and fences every write."""
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    external_job_id: str | None = None
    cancel_requested: bool = False
    force: bool = False
    scheduled_for: datetime | None = None
    requested_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ModelVersion(SQLModel, table=True):
    """A trained model (v1, v2, ...) with everything needed to serve, judge and trace it."""

    __table_args__ = (
        # At most one promoted version, enforced by the database itself.
        Index(
            "uq_one_promoted",
            "status",
            unique=True,
            sqlite_where=text("status = 'promoted'"),
            postgresql_where=text("status = 'promoted'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    status: VersionStatus = enum_column(VersionStatus, default=VersionStatus.CANDIDATE)
    run_id: int | None = Field(default=None, foreign_key="trainingrun.id")
    snapshot_id: int | None = Field(default=None, foreign_key="datasetsnapshot.id")
    base_model: str
    backend: str = "local"
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    adapter_path: str | None = None
    hosted_model_id: str | None = None
    eval: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    rolled_back_at: datetime | None = None


class AuditLog(SQLModel, table=True):
    """Who did what to what, and when: promotions, approvals, schedule changes."""

    id: int | None = Field(default=None, primary_key=True)
    actor: str
    action: str = Field(index=True)
    target: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ProcessedEvent(SQLModel, table=True):
    """A Slack event (or the work it triggers) already handled, kept while Slack may retry it."""

    key: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Setting(SQLModel, table=True):
    """Settings changed at run time (retrain schedule, guidelines) rather than in the environment."""

    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_by: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


from brandvoice.store.candidates import GenerationCandidate  # noqa: E402,F401
