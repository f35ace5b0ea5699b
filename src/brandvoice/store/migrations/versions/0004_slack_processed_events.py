"""processed Slack events in their own table; vote event times

Revision ID: slack_processed_events
Revises: 0003_run_kind
Create Date: 2026-11-30 08:20:00.000000

Event claims used to live in ``setting`` under ``event-claim:`` keys and were never removed; the
ones still there move to ``processedevent``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "slack_processed_events"
down_revision: str | None = "0003_run_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM_PREFIX = "event-claim:"


def upgrade() -> None:
    op.create_table(
        "processedevent",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("processedevent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processedevent_created_at"), ["created_at"], unique=False
        )
    with op.batch_alter_table("feedbackvote", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("event_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    start = len(CLAIM_PREFIX) + 1
    op.execute(
        sa.text(
            "INSERT INTO processedevent (key, created_at) "
            f"SELECT substr(key, {start}), updated_at FROM setting WHERE key LIKE :prefix"
        ).bindparams(prefix=CLAIM_PREFIX + "%")
    )
    op.execute(
        sa.text("DELETE FROM setting WHERE key LIKE :prefix").bindparams(prefix=CLAIM_PREFIX + "%")
    )


def downgrade() -> None:
    with op.batch_alter_table("feedbackvote", schema=None) as batch_op:
        batch_op.drop_column("event_at")
    with op.batch_alter_table("processedevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processedevent_created_at"))
    op.drop_table("processedevent")
