"""Alerts as entities (open, acknowledged, resolved) with their deliveries; recurring silences that
match a task, target, tier, channel or heartbeat monitor; what a task's runs disturb (``affects``).

Existing silences keep their meaning: ``task_name`` becomes ``match.task`` (``heartbeat/NAME``
becomes ``match.heartbeat``), ``channel`` becomes ``match.channel``.

Revision ID: 0004_issue20
Revises: 0003_issue22a
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import upkeep.store.models

revision = "0004_issue20"
down_revision = "0003_issue22a"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = upkeep.store.models.UTCDateTime(timezone=True)
HEARTBEAT_PREFIX = "heartbeat/"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("dependents", JSON, nullable=False),
        sa.Column("escalate", JSON, nullable=False),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_state_opened", "alerts", ["state", "opened_at"], unique=False)
    op.create_index(
        "uq_alerts_unresolved_subject",
        "alerts",
        ["subject"],
        unique=True,
        sqlite_where=sa.text("state != 'resolved'"),
        postgresql_where=sa.text("state != 'resolved'"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_alert_deliveries_alert_id"), "alert_deliveries", ["alert_id"], unique=False)

    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("affects", JSON, nullable=True))

    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("match", JSON, nullable=True))
        batch_op.add_column(sa.Column("windows", JSON, nullable=True))
        batch_op.add_column(sa.Column("managed_by", sa.String(length=8), nullable=True))
    silences = sa.table(
        "silences",
        sa.column("id", BIG_ID),
        sa.column("task_name", sa.String()),
        sa.column("channel", sa.String()),
        sa.column("match", JSON),
        sa.column("windows", JSON),
        sa.column("managed_by", sa.String()),
    )
    connection = op.get_bind()
    for row in connection.execute(sa.select(silences.c.id, silences.c.task_name, silences.c.channel)).all():
        match = {}
        if row.task_name and row.task_name.startswith(HEARTBEAT_PREFIX):
            match["heartbeat"] = row.task_name[len(HEARTBEAT_PREFIX) :]
        elif row.task_name:
            match["task"] = row.task_name
        if row.channel:
            match["channel"] = row.channel
        connection.execute(
            silences.update().where(silences.c.id == row.id).values(match=match, windows=[], managed_by="api")
        )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.alter_column("match", existing_type=JSON, nullable=False)
        batch_op.alter_column("windows", existing_type=JSON, nullable=False)
        batch_op.alter_column("managed_by", existing_type=sa.String(length=8), nullable=False)
        batch_op.alter_column("until", existing_type=TS, nullable=True)
        batch_op.drop_column("task_name")
        batch_op.drop_column("channel")


def downgrade() -> None:
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("channel", sa.String(length=200), nullable=True))
    silences = sa.table(
        "silences",
        sa.column("id", BIG_ID),
        sa.column("task_name", sa.String()),
        sa.column("channel", sa.String()),
        sa.column("match", JSON),
        sa.column("windows", JSON),
        sa.column("until", TS),
    )
    connection = op.get_bind()
    for row in connection.execute(sa.select(silences.c.id, silences.c.match, silences.c.windows)).all():
        match = row.match or {}
        task = match.get("task") or (HEARTBEAT_PREFIX + match["heartbeat"] if match.get("heartbeat") else None)
        if row.windows or not (task or match.get("channel")) or set(match) - {"task", "heartbeat", "channel"}:
            connection.execute(silences.delete().where(silences.c.id == row.id))  # no older form says it
            continue
        connection.execute(
            silences.update().where(silences.c.id == row.id).values(task_name=task, channel=match.get("channel"))
        )
    connection.execute(silences.delete().where(silences.c.until.is_(None)))
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.alter_column("until", existing_type=TS, nullable=False)
        batch_op.drop_column("managed_by")
        batch_op.drop_column("windows")
        batch_op.drop_column("match")
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.drop_column("affects")
    op.drop_index(op.f("ix_alert_deliveries_alert_id"), table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("uq_alerts_unresolved_subject", table_name="alerts")
    op.drop_index("ix_alerts_state_opened", table_name="alerts")
    op.drop_table("alerts")
