"""A run waiting for a mutex lock names the run holding it in a column (``blocked_by_run_id``),
so the holder's end wakes exactly its waiters; it used to be matched by LIKE on the text
"held by run N" in ``progress_message``. Runs already waiting keep their holder.

Revision ID: 0005_issue15
Revises: 0004_issue20
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0005_issue15"
down_revision = "0004_issue20"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HELD_BY = re.compile(r"held by run (\d+)$")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("blocked_by_run_id", BIG_ID, nullable=True))
    runs = sa.table(
        "runs",
        sa.column("id", BIG_ID),
        sa.column("status", sa.String),
        sa.column("progress_message", sa.Text),
        sa.column("blocked_by_run_id", BIG_ID),
    )
    bind = op.get_bind()
    waiting = bind.execute(
        sa.select(runs.c.id, runs.c.progress_message).where(
            runs.c.status == "pending", runs.c.progress_message.like("waiting for lock % held by run %")
        )
    ).all()
    for run_id, message in waiting:
        match = HELD_BY.search(message or "")
        if match:
            bind.execute(
                sa.update(runs).where(runs.c.id == run_id).values(blocked_by_run_id=int(match.group(1)))
            )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("blocked_by_run_id")
