"""The tables. Time is stored in UTC and always comes back time-zone aware.

Migrations in ``store/migrations`` create and upgrade these tables; a change here needs a new
Alembic revision (``alembic revision --autogenerate`` against a scratch database).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from upkeep.store.run_tables import audit_log, instances, records, run_events, run_locks, runs
from upkeep.store.states import (  # noqa: F401 (callers name the run states from here too)
    ACTIVE_STATUSES,
    ALL_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    FAILED_STATUSES,
    FINISHED_STATUSES,
    ORIGINS,
    OUTCOME_RANK,
    OUTCOMES,
    PENDING,
    RUNNING,
    SKIPPED,
    SUBMITTED,
    TERMINAL_STATUSES,
    TIMED_OUT,
    WAITING,
    Origin,
    Outcome,
    RunStatus,
)
from upkeep.store.tables import BigID, JSONType, UTCDateTime, _now, metadata, scheduled_tasks


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType, list[Any]: JSONType}


class ScheduledTask(Base):
    # a Core table (``upkeep.store.tables``): what only reads tasks does so without the ORM
    __table__ = scheduled_tasks


class Run(Base):
    __table__ = runs


class RunEvent(Base):
    __table__ = run_events


class RunLock(Base):
    """A mutex held by a running run; it lives exactly as long as the run, never by TTL."""

    __table__ = run_locks


class AuditEntry(Base):
    __table__ = audit_log


class Record(Base):
    """Per-domain keyed JSON records for handlers (backup catalog, failure counters, samples...)."""

    __table__ = records


class Instance(Base):
    """A live scheduler, worker or API process: its last tick/heartbeat shows liveness."""

    __table__ = instances


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))  # viewer | operator | admin
    prefix: Mapped[str] = mapped_column(sa.String(16), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Silence(Base):
    """Alerts held while ``match`` fits them: until a time (``until``), during recurring ``windows``
    (the tasks' window syntax), or both. ``match`` keys: task, target, tier, channel, heartbeat."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    match: Mapped[dict[str, Any]] = mapped_column(default=dict)
    windows: Mapped[list[Any]] = mapped_column(default=list)
    until: Mapped[datetime | None] = mapped_column(nullable=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    managed_by: Mapped[str] = mapped_column(sa.String(8), default="api")  # "file" | "api"
    created_by: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)


class AlertState(Base):
    """Per (task, channel) alert bookkeeping: what state was last announced and when."""

    __tablename__ = "alert_state"

    task_name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(20))  # ok | failing | warning | critical | overdue
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


class Heartbeat(Base):
    """A monitor of a job upkeep does not run: the job pings ``/ping/{token}``; a missing ping is
    overdue. The state columns (``expected_at`` onwards) are written by pings and by the alerter;
    ``overdue_at`` and ``start_deadline_at`` are kept precomputed so the alerter finds due monitors
    with one indexed comparison."""

    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    schedule: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    grace_seconds: Mapped[float] = mapped_column(sa.Float, default=3600.0)
    timeout_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    notify: Mapped[dict[str, Any]] = mapped_column(default=dict)
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    paused: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    managed_by: Mapped[str] = mapped_column(sa.String(8), default="api")  # "file" | "api"
    file_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    expected_at: Mapped[datetime | None] = mapped_column(nullable=True)  # the slot whose ping is awaited
    overdue_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)  # expected_at + grace
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)  # an open /start
    start_deadline_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    last_ping_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_ping_kind: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    last_exit_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ping_count: Mapped[int] = mapped_column(BigID, default=0)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


class HeartbeatPing(Base):
    """One ping (or a ``timeout`` the alerter recorded for a /start that never ended). The alerter
    marks each end ping ``evaluated_at`` in the transaction that applies its alert rules."""

    __tablename__ = "heartbeat_pings"
    __table_args__ = (
        sa.Index("ix_heartbeat_pings_monitor", "heartbeat_id", "id"),
        sa.Index(
            "ix_heartbeat_pings_unevaluated",
            "received_at",
            sqlite_where=sa.text("evaluated_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    heartbeat_id: Mapped[int] = mapped_column(sa.ForeignKey("heartbeats.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(default=_now)
    kind: Mapped[str] = mapped_column(sa.String(16))  # success | fail | start | timeout
    exit_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    method: Mapped[str] = mapped_column(sa.String(8), default="GET")
    source: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)  # the client's address
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")
    body: Mapped[str] = mapped_column(sa.Text, default="")
    body_size: Mapped[int] = mapped_column(sa.Integer, default=0)  # bytes sent; body keeps the first ones
    evaluated_at: Mapped[datetime | None] = mapped_column(nullable=True)


class User(Base):
    """A person's account: signs in with a password (argon2 hash) and an optional TOTP code, or
    through a trusted reverse proxy. API keys are for machines; a user is who the audit log names."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))  # viewer | operator | admin
    password_hash: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)  # None: proxy sign-in only
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    totp_pending: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)  # enrolment not confirmed yet
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)  # codes up to it are spent
    timezone: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)  # None: UTC
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Checklist(Base):
    """One instance of a ``checklist.run`` task: open until every item is checked or skipped."""

    __tablename__ = "checklists"
    __table_args__ = (sa.Index("ix_checklists_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    task_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("scheduled_tasks.id", ondelete="SET NULL"), nullable=True, index=True
    )
    task_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str] = mapped_column(sa.String(500))
    status: Mapped[str] = mapped_column(sa.String(16), default="open")  # open | completed
    outcome: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)  # ok | warning
    opened_at: Mapped[datetime] = mapped_column(default=_now)
    due_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    remind_every_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    overdue_alerted_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ChecklistItem(Base):
    """An item of a checklist: manual (a person checks or skips it) or automatic (the latest run of
    ``source_task`` within ``within_seconds`` whose outcome is in ``accept`` checks it)."""

    __tablename__ = "checklist_items"
    __table_args__ = (sa.UniqueConstraint("checklist_id", "position", name="uq_checklist_items_position"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    checklist_id: Mapped[int] = mapped_column(sa.ForeignKey("checklists.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(sa.Integer)  # 1-based, as `upkeep checklists show` lists them
    text: Mapped[str] = mapped_column(sa.Text)
    source_task: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    within_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    accept: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(sa.String(16), default="open")  # open | checked | skipped
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)  # last automatic evaluation
    done_by: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(nullable=True)
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)  # a check's note or a skip's reason


class Alert(Base):
    """One problem of one subject (a task, ``heartbeat/NAME`` or ``target/KIND.NAME``) from its
    first message to its resolution: ``open``, ``acknowledged``, ``resolved``. At most one alert
    per subject is unresolved; its messages are ``AlertDelivery`` rows."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index(
            "uq_alerts_unresolved_subject",
            "subject",
            unique=True,
            sqlite_where=sa.text("state != 'resolved'"),
        ),
        sa.Index("ix_alerts_state_opened", "state", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(sa.String(300))
    task_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)  # whose notify section applies
    kind: Mapped[str] = mapped_column(sa.String(16))  # failure | outcome | overdue
    state: Mapped[str] = mapped_column(sa.String(16), default="open")  # open | acknowledged | resolved
    title: Mapped[str] = mapped_column(sa.Text, default="")
    body: Mapped[str] = mapped_column(sa.Text, default="")
    run_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    note: Mapped[str] = mapped_column(sa.Text, default="")  # the maintenance that preceded it, ...
    dependents: Mapped[list[Any]] = mapped_column(default=list)  # targets failing because this one is down
    escalate: Mapped[list[Any]] = mapped_column(default=list)  # the notify.escalate steps when it opened
    escalated: Mapped[int] = mapped_column(sa.Integer, default=0)  # steps sent so far
    nonce: Mapped[str] = mapped_column(sa.String(32))  # in the signed acknowledge link
    opened_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)
    acknowledged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AlertDelivery(Base):
    """One message of an alert to one channel and what became of it."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(16))  # alert | repeat | escalation | resolution
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")  # queued|sent|suppressed|failed|dropped
    title: Mapped[str] = mapped_column(sa.Text, default="")
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


class Approval(Base):
    """An approval step of a procedure run: the run waits (no worker) until a person with ``role``
    approves (the run resumes at the next step) or rejects, or ``expires_at`` passes (the run is
    cancelled with the reason). ``progress`` holds the procedure's steps done so far."""

    __tablename__ = "approvals"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "step", name="uq_approvals_run_step"),
        sa.Index("ix_approvals_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    task_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    step: Mapped[int] = mapped_column(sa.Integer)  # 0-based index in the procedure's steps
    step_name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))  # the least role that may decide
    message: Mapped[str] = mapped_column(sa.Text, default="")
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_at: Mapped[datetime] = mapped_column(default=_now)
    expires_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | approved | rejected | expired
    decided_by: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)  # user:NAME
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
