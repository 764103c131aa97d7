"""People: accounts (users), checklist instances and their items.

Revision ID: 0003_issue22a
Revises: 0003_issue19a
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import upkeep.store.models

revision = "0003_issue22a"
down_revision = "0003_issue19a"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = upkeep.store.models.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_pending", sa.String(length=64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("last_login_at", TIME, nullable=True),
        sa.Column("disabled_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "checklists",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("task_id", ID, nullable=True),
        sa.Column("task_name", sa.String(length=200), nullable=True),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("due_at", TIME, nullable=True),
        sa.Column("completed_at", TIME, nullable=True),
        sa.Column("remind_every_seconds", sa.Float(), nullable=True),
        sa.Column("reminded_at", TIME, nullable=True),
        sa.Column("overdue_alerted_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["scheduled_tasks.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("checklists", schema=None) as batch_op:
        batch_op.create_index("ix_checklists_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_checklists_task_id"), ["task_id"], unique=False)
    op.create_table(
        "checklist_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("checklist_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source_task", sa.String(length=200), nullable=True),
        sa.Column("within_seconds", sa.Float(), nullable=True),
        sa.Column("accept", JSON, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("evidence", JSON, nullable=True),
        sa.Column("done_by", sa.String(length=200), nullable=True),
        sa.Column("done_at", TIME, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["checklist_id"], ["checklists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("checklist_id", "position", name="uq_checklist_items_position"),
    )


def downgrade() -> None:
    op.drop_table("checklist_items")
    with op.batch_alter_table("checklists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checklists_task_id"))
        batch_op.drop_index("ix_checklists_status_due")
    op.drop_table("checklists")
    op.drop_table("users")
