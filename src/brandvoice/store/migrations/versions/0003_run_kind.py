"""run kind: generation runs get their own kind instead of hiding in ``config["kind"]``

Revision ID: 0003_run_kind
Revises: 0002
Create Date: 2026-11-30 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_run_kind"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

runs = sa.table(
    "trainingrun",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("config", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("trainingrun", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sa.Enum("train", "generate", name="runkind", native_enum=False, length=24),
                nullable=False,
                server_default="train",
            )
        )
    connection = op.get_bind()
    for run_id, config in connection.execute(sa.select(runs.c.id, runs.c.config)).all():
        if isinstance(config, dict) and config.get("kind") == "generate":
            rest = {key: value for key, value in config.items() if key != "kind"}
            connection.execute(
                runs.update().where(runs.c.id == run_id).values(kind="generate", config=rest)
            )


def downgrade() -> None:
    connection = op.get_bind()
    query = sa.select(runs.c.id, runs.c.config).where(runs.c.kind == "generate")
    for run_id, config in connection.execute(query).all():
        connection.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(config={**(config or {}), "kind": "generate"})
        )
    with op.batch_alter_table("trainingrun", schema=None) as batch_op:
        batch_op.drop_column("kind")
