"""Dependencies between tasks: a task's ``after:`` ({tasks, on, within}), a flag on the tasks it
names (so a finishing run looks for dependents only when there are some), and on a dependent run
the upstream run that created it (unique per task) and the upstream runs it waited for.

Revision ID: 0006_issue19
Revises: 0005_issue15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_issue19"
down_revision = "0005_issue15"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(sa.Column("after", JSON, nullable=True))
        batch.add_column(sa.Column("has_downstream", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("trigger_run_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("upstream_runs", JSON, nullable=True))
    op.create_index(
        "uq_runs_dependency",
        "runs",
        ["task_id", "trigger_run_id"],
        unique=True,
        sqlite_where=sa.text("origin = 'dependency'"),
        postgresql_where=sa.text("origin = 'dependency'"),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_dependency", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("upstream_runs")
        batch.drop_column("trigger_run_id")
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_column("has_downstream")
        batch.drop_column("after")
