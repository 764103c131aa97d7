"""The column types every table uses, the metadata, and the tables defined in Core.

``scheduled_tasks`` is a Core table (``upkeep.store.models.ScheduledTask`` maps it): a command
that only reads tasks (``upkeep tasks list``) selects from it without importing the ORM, whose
import and mappers cost such a command more than everything else it does.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} written to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _JSONB(TypeDecorator):
    """PostgreSQL's JSONB, as the PostgreSQL variant of the JSON columns. Naming
    ``sqlalchemy.dialects.postgresql.JSONB`` here would import that dialect and all its drivers
    (asyncpg's with asyncio) in every process, a SQLite store's included; this loads it only
    when a PostgreSQL store compiles or binds a JSON column. For the same reason the partial
    indexes below name only SQLite's ``where``: the migrations make them partial on both."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        from sqlalchemy.dialects.postgresql import JSONB

        return dialect.type_descriptor(JSONB(none_as_null=self.impl_instance.none_as_null))


JSONType = sa.JSON().with_variant(_JSONB(), "postgresql")
NullableJSON = sa.JSON(none_as_null=True).with_variant(_JSONB(none_as_null=True), "postgresql")  # None is SQL NULL
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _now() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()

scheduled_tasks = sa.Table(
    "scheduled_tasks",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), unique=True, nullable=False),
    sa.Column("description", sa.Text, default="", nullable=False),
    sa.Column("task_type", sa.String(200), index=True, nullable=False),
    sa.Column("schedule", sa.String(200), nullable=True),
    sa.Column("timezone", sa.String(64), default="UTC", nullable=False),
    sa.Column("schedule_anchor", UTCDateTime(), nullable=True),
    sa.Column("enabled", sa.Boolean, default=True, nullable=False),
    sa.Column("config", JSONType, default=dict, nullable=False),
    sa.Column("tiers", JSONType, default=list, nullable=False),
    sa.Column("concurrency", sa.String(16), default="forbid", nullable=False),
    sa.Column("misfire", sa.String(16), default="skip", nullable=False),
    sa.Column("misfire_grace_seconds", sa.Integer, default=60, nullable=False),
    sa.Column("locks", JSONType, default=list, nullable=False),
    sa.Column("windows", JSONType, default=list, nullable=False),
    sa.Column("max_retries", sa.Integer, default=0, nullable=False),
    sa.Column("retry_backoff_seconds", sa.Float, default=30.0, nullable=False),
    sa.Column("retry_backoff_max_seconds", sa.Float, default=3600.0, nullable=False),
    sa.Column("timeout_seconds", sa.Float, nullable=True),
    sa.Column("jitter_seconds", sa.Float, default=0.0, nullable=False),
    sa.Column("queue", sa.String(100), default="default", nullable=False),
    sa.Column("notify", JSONType, default=dict, nullable=False),
    sa.Column("expect_success_within_seconds", sa.Float, nullable=True),
    sa.Column("ping_url", sa.String(500), nullable=True),
    sa.Column("affects", NullableJSON, nullable=True),  # targets its runs disturb
    sa.Column("after", NullableJSON, nullable=True),  # {tasks, on, within}
    # whether some task's ``after:`` names this one: a finishing run looks for dependents only then
    sa.Column("has_downstream", sa.Boolean, default=False, server_default=sa.false(), nullable=False),
    sa.Column("managed_by", sa.String(8), default="api", nullable=False),  # "file" | "api"
    sa.Column("file_spec", JSONType, nullable=True),
    sa.Column("next_run_at", UTCDateTime(), nullable=True),
    # Denormalised from runs when a run ends, so task lists never scan the run history.
    sa.Column("last_run_id", BigID, nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True, index=True),
    sa.Column("last_outcome", sa.String(16), nullable=True),
    sa.Column("last_run_at", UTCDateTime(), nullable=True),
    sa.Column("last_success_at", UTCDateTime(), nullable=True),
    sa.Column("last_duration_seconds", sa.Float, nullable=True),
    sa.Column("consecutive_failures", sa.Integer, default=0, nullable=False),
    sa.Column("created_at", UTCDateTime(), default=_now, nullable=False),
    sa.Column("updated_at", UTCDateTime(), default=_now, onupdate=_now, nullable=False),
    # the scheduler's two questions, "which tasks are due" and "when is the next one", use this
    sa.Index("ix_scheduled_tasks_due", "enabled", "next_run_at"),
    sa.Index("ix_scheduled_tasks_last_outcome", "last_outcome"),  # failing = last_status or last_outcome
    sa.Index("ix_scheduled_tasks_expect_success", "expect_success_within_seconds"),  # the few that expect one
)
