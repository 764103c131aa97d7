"""Heartbeat monitors of jobs upkeep does not run, and their pings.

Revision ID: 0003_issue19a
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import upkeep.store.models

revision = "0003_issue19a"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = upkeep.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("schedule", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("grace_seconds", sa.Float(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("notify", JSON, nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("managed_by", sa.String(length=8), nullable=False),
        sa.Column("file_spec", JSON, nullable=True),
        sa.Column("expected_at", TS, nullable=True),
        sa.Column("overdue_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("start_deadline_at", TS, nullable=True),
        sa.Column("last_ping_at", TS, nullable=True),
        sa.Column("last_ping_kind", sa.String(length=16), nullable=True),
        sa.Column("last_exit_status", sa.Integer(), nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.Column("ping_count", BIG_ID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_heartbeats_overdue_at", "heartbeats", ["overdue_at"], unique=False)
    op.create_index("ix_heartbeats_start_deadline_at", "heartbeats", ["start_deadline_at"], unique=False)
    op.create_table(
        "heartbeat_pings",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("heartbeat_id", BIG_ID, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["heartbeat_id"], ["heartbeats.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_heartbeat_pings_monitor", "heartbeat_pings", ["heartbeat_id", "id"], unique=False)
    op.create_index(
        "ix_heartbeat_pings_unevaluated",
        "heartbeat_pings",
        ["received_at"],
        unique=False,
        sqlite_where=sa.text("evaluated_at IS NULL"),
        postgresql_where=sa.text("evaluated_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("heartbeat_pings")
    op.drop_table("heartbeats")
