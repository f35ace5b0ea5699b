"""team knowledge: files the bot retrieves facts from, chunked and embedded

Revision ID: 0006_knowledge
Revises: 0005_preference_pairs
Create Date: 2026-11-30 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_knowledge"
down_revision: str | None = "0005_preference_pairs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "knowledgedoc",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("added_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("removed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("knowledgedoc", schema=None) as batch_op:
        for column in ("created_at", "name", "removed_at"):
            batch_op.create_index(batch_op.f(f"ix_knowledgedoc_{column}"), [column], unique=False)
        batch_op.create_index(
            "uq_knowledgedoc_live_name",
            ["name"],
            unique=True,
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        )
    op.create_table(
        "knowledgechunk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("redactions", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["doc_id"], ["knowledgedoc.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("knowledgechunk", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledgechunk_doc_id"), ["doc_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("knowledgechunk", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledgechunk_doc_id"))
    op.drop_table("knowledgechunk")
    with op.batch_alter_table("knowledgedoc", schema=None) as batch_op:
        batch_op.drop_index("uq_knowledgedoc_live_name")
        for column in ("removed_at", "name", "created_at"):
            batch_op.drop_index(batch_op.f(f"ix_knowledgedoc_{column}"))
    op.drop_table("knowledgedoc")
