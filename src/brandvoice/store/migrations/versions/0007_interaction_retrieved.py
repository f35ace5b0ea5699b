"""interaction.retrieved: the knowledge chunks and approved examples a reply's prompt carried

Revision ID: 0007_interaction_retrieved
Revises: 0006_knowledge
Create Date: 2026-11-30 13:00:00.000000

Older replies keep NULL: nothing was retrieved for them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_interaction_retrieved"
down_revision: str | None = "0006_knowledge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retrieved", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.drop_column("retrieved")
