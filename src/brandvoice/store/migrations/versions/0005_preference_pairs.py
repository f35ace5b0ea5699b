"""preference pairs: a prompt with a chosen and a rejected reply, for preference training

Revision ID: 0005_preference_pairs
Revises: slack_processed_events
Create Date: 2026-11-30 12:30:00.000000

Existing corrections become pairs when ``brandvoice pairs derive`` (or the next snapshot) runs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_preference_pairs"
down_revision: str | None = "slack_processed_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "preferencepair",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_messages", sa.JSON(), nullable=False),
        sa.Column("chosen", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("rejected", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "correction", "downvote", name="preferencesource", native_enum=False, length=24
            ),
            nullable=False,
        ),
        sa.Column("example_id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("prompt_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "split",
            sa.Enum("train", "val", name="split", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("redactions", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["example_id"], ["example.id"]),
        sa.ForeignKeyConstraint(["interaction_id"], ["interaction.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("content_hash"),
    )
    with op.batch_alter_table("preferencepair", schema=None) as batch_op:
        for column in ("created_at", "example_id", "interaction_id", "prompt_hash", "source"):
            batch_op.create_index(batch_op.f(f"ix_preferencepair_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("preferencepair", schema=None) as batch_op:
        for column in ("source", "prompt_hash", "interaction_id", "example_id", "created_at"):
            batch_op.drop_index(batch_op.f(f"ix_preferencepair_{column}"))
    op.drop_table("preferencepair")
