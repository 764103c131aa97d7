"""The tables a run is written to and read as it goes, in Core: ``runs``, their events and mutex
locks, the audit log, handlers' records and live instances (``upkeep.store.models`` maps them).

The run lifecycle, the executors and ``upkeep run`` use Core statements on them without importing
the ORM. They are apart from ``tables``: building them costs a command that only lists tasks more
than its query.
"""

from __future__ import annotations

import sqlalchemy as sa

from upkeep.store.states import PENDING
from upkeep.store.tables import BigID, JSONType, NullableJSON, UTCDateTime, _now, metadata

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("task_id", BigID, sa.ForeignKey("scheduled_tasks.id", ondelete="SET NULL"), nullable=True),
    sa.Column("task_name", sa.String(200), nullable=True),
    sa.Column("task_type", sa.String(200), nullable=False),
    sa.Column("requested_type", sa.String(200), nullable=True),  # alias used
    sa.Column("origin", sa.String(16), default="manual", nullable=False),
    sa.Column("scheduled_for", UTCDateTime(), nullable=True),
    sa.Column("due_at", UTCDateTime(), default=_now, nullable=False),
    sa.Column("status", sa.String(16), default=PENDING, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("attempt", sa.Integer, default=1, nullable=False),
    sa.Column("retry_of", BigID, nullable=True),
    sa.Column("parent_run_id", BigID, nullable=True),
    sa.Column("config", JSONType, default=dict, nullable=False),
    sa.Column("dry_run", sa.Boolean, default=False, nullable=False),
    sa.Column("confirm", sa.Boolean, default=False, nullable=False),
    sa.Column("queue", sa.String(100), default="default", nullable=False),
    sa.Column("timeout_seconds", sa.Float, nullable=True),
    sa.Column("max_retries", sa.Integer, default=0, nullable=False),
    sa.Column("locks", JSONType, default=list, nullable=False),
    sa.Column("triggered_by", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime(), default=_now, nullable=False),
    sa.Column("submitted_at", UTCDateTime(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("deadline_at", UTCDateTime(), nullable=True),
    sa.Column("cancel_requested_at", UTCDateTime(), nullable=True),
    sa.Column("worker", sa.String(200), nullable=True),  # host:pid
    sa.Column("worker_host", sa.String(200), nullable=True),
    sa.Column("worker_pid", sa.Integer, nullable=True),
    sa.Column("worker_pgid", sa.Integer, nullable=True),
    sa.Column("progress", sa.Float, nullable=True),
    sa.Column("progress_message", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("result", JSONType, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("event_count", sa.Integer, default=0, nullable=False),
    # a pending run waiting for a mutex lock: the run holding it, which wakes it when it ends
    sa.Column("blocked_by_run_id", BigID, nullable=True),
    # a dependent run: the upstream run whose end created it, and every upstream run it waited for
    # ([{task, run_id, status, finished_at}], the fan-in's inputs; also on a dependent run skipped)
    sa.Column("trigger_run_id", BigID, nullable=True),
    sa.Column("upstream_runs", NullableJSON, nullable=True),
    # Exactly one scheduled run per (task, slot): two schedulers racing cannot both create it.
    sa.Index(
        "uq_runs_scheduled_slot",
        "task_id",
        "scheduled_for",
        unique=True,
        sqlite_where=sa.text("origin = 'scheduled'"),
    ),
    # Exactly one dependent run per (task, upstream run whose end created it).
    sa.Index(
        "uq_runs_dependency",
        "task_id",
        "trigger_run_id",
        unique=True,
        sqlite_where=sa.text("origin = 'dependency'"),
    ),
    sa.Index("ix_runs_status_due", "status", "due_at"),
    sa.Index("ix_runs_task_recent", "task_id", "created_at", "status", "outcome"),  # the last 20 outcomes
    sa.Index("ix_runs_finished", "finished_at"),
    sa.Index("ix_runs_created_status", "created_at", "status"),
    # the latest failed runs (the dashboard's "Recent failures") without sorting every failure
    sa.Index("ix_runs_failed", "id", sqlite_where=sa.text("status IN ('failed', 'timed_out')")),
)

run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("ts", UTCDateTime(), default=_now, nullable=False),
    sa.Column("level", sa.String(10), default="info", nullable=False),
    sa.Column("event", sa.String(100), nullable=False),
    sa.Column("message", sa.Text, default="", nullable=False),
    sa.Column("data", JSONType, nullable=True),
    sa.UniqueConstraint("run_id", "seq", name="uq_run_events_seq"),
)

# a mutex held by a running run; it lives exactly as long as the run, never by TTL
run_locks = sa.Table(
    "run_locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("run_id", BigID, sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True, nullable=False),
    sa.Column("acquired_at", UTCDateTime(), default=_now, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime(), default=_now, index=True, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("object_type", sa.String(50), nullable=False),
    sa.Column("object_id", sa.String(200), nullable=True),
    sa.Column("before", JSONType, nullable=True),
    sa.Column("after", JSONType, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

# per-domain keyed JSON records for handlers (backup catalog, failure counters, samples...)
records = sa.Table(
    "records",
    metadata,
    sa.Column("domain", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("value", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), default=_now, nullable=False),
    sa.Column("updated_at", UTCDateTime(), default=_now, index=True, nullable=False),
)

# a live scheduler, worker or API process: its last tick/heartbeat shows liveness
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # role:host:pid:start
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("queues", JSONType, default=list, nullable=False),
    sa.Column("started_at", UTCDateTime(), default=_now, nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), default=_now, nullable=False),
    sa.Column("info", JSONType, default=dict, nullable=False),
)
