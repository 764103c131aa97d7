"""The run lifecycle in the store: create, dispatch, claim, finish, retry, cancel, recover.

    pending -> submitted -> running -> completed | failed | cancelled | timed_out
    (and skipped, created terminal when a slot is refused)

Every transition is one conditional UPDATE, so two workers (or a broker redelivering a message)
can never both run the same run. Retries are new runs that point at the run they retry.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.engine.journal import append_event, insert_event
from upkeep.store.db import Store
from upkeep.store.models import (
    ACTIVE_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUBMITTED,
    TIMED_OUT,
    Run,
    RunLock,
    ScheduledTask,
)

HOSTNAME = socket.gethostname()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    pgid: int

    @classmethod
    def current(cls) -> WorkerIdentity:
        return cls(host=HOSTNAME, pid=os.getpid(), pgid=os.getpgid(0))

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid}"


def run_values(
    *,
    task: ScheduledTask | None,
    task_type: str,
    origin: str,
    config: dict[str, Any],
    due_at: datetime,
    now: datetime,
    scheduled_for: datetime | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    attempt: int = 1,
    retry_of: int | None = None,
    parent_run_id: int | None = None,
    triggered_by: str | None = None,
    requested_type: str | None = None,
    status: str = PENDING,
    summary: str | None = None,
) -> dict[str, Any]:
    """The column values of a new run (the task's policies are copied onto the run)."""
    return dict(
        task_id=task.id if task else None,
        task_name=task.name if task else None,
        task_type=task_type,
        requested_type=requested_type,
        origin=origin,
        scheduled_for=scheduled_for,
        due_at=due_at,
        status=status,
        attempt=attempt,
        retry_of=retry_of,
        parent_run_id=parent_run_id,
        config=config,
        dry_run=dry_run,
        confirm=confirm,
        queue=task.queue if task else "default",
        timeout_seconds=task.timeout_seconds if task else None,
        max_retries=task.max_retries if task else 0,
        locks=list(task.locks) if task else [],
        triggered_by=triggered_by,
        created_at=now,
        summary=summary,
        finished_at=now if status == SKIPPED else None,
        event_count=0,
    )


def insert_scheduled_runs(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[int, datetime], int]:
    """Insert scheduled runs in one statement; a slot that already has its run is left alone.

    Returns the ids of the runs this call created, by (task id, slot).
    """
    if not rows:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = (
        insert(Run)
        .on_conflict_do_nothing(
            index_elements=["task_id", "scheduled_for"], index_where=sa.text("origin = 'scheduled'")
        )
        .returning(Run.id, Run.task_id, Run.scheduled_for)
    )
    # one statement shape whatever the row count, so it is compiled once and cached
    return {(task_id, slot): run_id for run_id, task_id, slot in session.execute(stmt, rows)}


def create_run(
    session: Session,
    *,
    task: ScheduledTask | None,
    task_type: str,
    origin: str,
    config: dict[str, Any],
    due_at: datetime,
    now: datetime | None = None,
    **fields: Any,
) -> int | None:
    """Insert one run; returns its id, or None when a scheduled run for that slot already exists."""
    values = run_values(
        task=task, task_type=task_type, origin=origin, config=config, due_at=due_at, now=now or _now(), **fields
    )
    if origin == "scheduled":
        return insert_scheduled_runs(session, [values]).get((values["task_id"], values["scheduled_for"]))
    return session.execute(sa.insert(Run).values(**values).returning(Run.id)).scalar_one()


@dataclass(frozen=True)
class Dispatched:
    id: int
    queue: str
    timeout_seconds: float | None


def dispatch_due_runs(
    store: Store, *, limit: int, queues: list[str] | None, worker: str, now: datetime | None = None
) -> list[Dispatched]:
    """Move due pending runs to submitted for this dispatcher (oldest first).

    On PostgreSQL concurrent dispatchers skip each other's rows (``FOR UPDATE SKIP LOCKED``);
    on SQLite the write transaction is ``BEGIN IMMEDIATE``.
    """
    now = now or _now()
    table = Run.__table__
    with store.write() as s:
        query = sa.select(table.c.id, table.c.queue, table.c.timeout_seconds).where(
            table.c.status == PENDING, table.c.due_at <= now
        )
        if queues:
            query = query.where(table.c.queue.in_(queues))
        query = query.order_by(table.c.due_at, table.c.id).limit(limit)
        if store.is_postgres:
            query = query.with_for_update(skip_locked=True)
        rows = [Dispatched(*row) for row in s.execute(query)]
        if rows:
            s.execute(
                sa.update(table)
                .where(table.c.id.in_([r.id for r in rows]), table.c.status == PENDING)
                .values(status=SUBMITTED, submitted_at=now, worker=worker)
            )
        return rows


def dispatch_due(
    store: Store, *, limit: int, queues: list[str] | None, worker: str, now: datetime | None = None
) -> list[int]:
    """``dispatch_due_runs``, the ids only."""
    return [r.id for r in dispatch_due_runs(store, limit=limit, queues=queues, worker=worker, now=now)]


def next_pending_due(store: Store, queues: list[str] | None = None) -> datetime | None:
    with store.read() as s:
        query = sa.select(sa.func.min(Run.due_at)).where(Run.status == PENDING)
        if queues:
            query = query.where(Run.queue.in_(queues))
        return s.execute(query).scalar()


@dataclass
class ClaimedRun:
    id: int
    task_id: int | None
    task_name: str | None
    task_type: str
    requested_type: str | None
    config: dict[str, Any]
    dry_run: bool
    confirm: bool
    attempt: int
    timeout_seconds: float | None
    started_at: datetime
    deadline_at: datetime | None
    parent_run_id: int | None


class LockBusy(Exception):
    def __init__(self, lock: str, holder: int):
        super().__init__(f"lock {lock} is held by run {holder}")
        self.lock = lock
        self.holder = holder


RUNS = Run.__table__  # the hot path uses Core statements: ORM-enabled DML costs several times more
TASKS = ScheduledTask.__table__
# columns a finished run needs for retries, task summaries and lock release, returned by its UPDATE
_FINISH_RETURNING = (
    RUNS.c.event_count,
    RUNS.c.attempt,
    RUNS.c.max_retries,
    RUNS.c.task_id,
    RUNS.c.started_at,
    RUNS.c.origin,
    RUNS.c.cancel_requested_at,
    RUNS.c.locks,
    RUNS.c.status,
    RUNS.c.outcome,
    RUNS.c.id,
)


def claim(store: Store, run_id: int, worker: WorkerIdentity, *, lock_retry_seconds: float = 2.0) -> ClaimedRun | None:
    """Move a run to running with one conditional UPDATE, taking its mutex locks.

    Returns None when someone else has the run (or it was cancelled) or a lock is busy (the run
    goes back to pending and tries again shortly; the history says which run holds the lock).
    """
    with store.read() as s:  # read outside the write lock; the conditional UPDATE below decides
        row = s.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).first()
    if row is None or row.status not in (PENDING, SUBMITTED):
        return None
    now = _now()
    with store.write() as s:
        if row.cancel_requested_at is not None:
            _finish_in_session(s, row.id, CANCELLED, None, None, "cancelled before it started", None, now)
            return None
        if row.locks:
            try:
                _take_locks(s, row.id, row.locks, now)
            except LockBusy as busy:
                s.execute(
                    sa.update(RUNS)
                    .where(RUNS.c.id == run_id, RUNS.c.status.in_((PENDING, SUBMITTED)))
                    .values(status=PENDING, due_at=now + timedelta(seconds=lock_retry_seconds), worker=None)
                )
                message = f"waiting for lock {busy.lock} held by run {busy.holder}"
                if row.progress_message != message:
                    s.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(progress_message=message))
                    append_event(s, run_id, "info", "lock_wait", message, {"lock": busy.lock, "holder": busy.holder})
                return None
        deadline = now + timedelta(seconds=row.timeout_seconds) if row.timeout_seconds else None
        seq = s.execute(
            sa.update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status.in_((PENDING, SUBMITTED)))
            .values(
                status=RUNNING,
                started_at=now,
                heartbeat_at=now,
                deadline_at=deadline,
                worker=worker.label,
                worker_host=worker.host,
                worker_pid=worker.pid,
                worker_pgid=worker.pgid,
                progress_message=None,
                event_count=RUNS.c.event_count + 1,
            )
            .returning(RUNS.c.event_count)
        ).scalar()
        if seq is None:
            return None
        note = f" (requested as alias {row.requested_type})" if row.requested_type else ""
        insert_event(
            s,
            run_id,
            seq,
            "info",
            "started",
            f"attempt {row.attempt} of {row.task_type}{note} on {worker.label}",
            {"worker": worker.label, "attempt": row.attempt, "alias": row.requested_type},
            now,
        )
        return ClaimedRun(
            id=row.id,
            task_id=row.task_id,
            task_name=row.task_name,
            task_type=row.task_type,
            requested_type=row.requested_type,
            config=dict(row.config or {}),
            dry_run=row.dry_run,
            confirm=row.confirm,
            attempt=row.attempt,
            timeout_seconds=row.timeout_seconds,
            started_at=now,
            deadline_at=deadline,
            parent_run_id=row.parent_run_id,
        )


def _take_locks(s: Session, run_id: int, locks: list[str], now: datetime) -> None:
    for name in sorted(set(locks)):
        holder = s.execute(sa.select(RunLock.run_id).where(RunLock.name == name)).scalar()
        if holder is not None and holder != run_id:
            holder_status = s.execute(sa.select(RUNS.c.status).where(RUNS.c.id == holder)).scalar()
            if holder_status in ACTIVE_STATUSES:
                raise LockBusy(name, holder)
            s.execute(sa.delete(RunLock).where(RunLock.name == name))  # left by an ended run
        if holder != run_id:
            s.add(RunLock(name=name, run_id=run_id, acquired_at=now))
    s.flush()


def finish(
    store: Store,
    run_id: int,
    status: str,
    *,
    outcome: str | None = None,
    result: dict | None = None,
    summary: str | None = None,
    error: str | None = None,
    expect: tuple[str, ...] = (RUNNING,),
) -> bool:
    """End a run (if it is still in one of ``expect``), release its locks, schedule a retry."""
    now = _now()
    with store.write() as s:
        return _finish_in_session(s, run_id, status, outcome, result, summary, error, now, expect=expect)


def _finish_in_session(
    s: Session,
    run_id: int,
    status: str,
    outcome: str | None,
    result: dict | None,
    summary: str | None,
    error: str | None,
    now: datetime,
    expect: tuple[str, ...] = ACTIVE_STATUSES,
) -> bool:
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "outcome": outcome,
        "event_count": RUNS.c.event_count + 1,
    }
    if result is not None:
        values["result"] = result
    if summary is not None:
        values["summary"] = summary[:2000]
    if error is not None:
        values["error"] = error[:8000]
    if status == COMPLETED:
        values["progress"] = 1.0
    run = s.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_(expect))
        .values(**values)
        .returning(*_FINISH_RETURNING)
    ).first()
    if run is None:
        return False
    if run.locks and s.execute(sa.delete(RunLock).where(RunLock.run_id == run_id)).rowcount:
        # runs waiting for a lock this run held may start now, not at their next retry
        s.execute(
            sa.update(RUNS)
            .where(RUNS.c.status == PENDING, RUNS.c.progress_message.like(f"% held by run {run_id}"))
            .values(due_at=now)
        )
    level = "info" if status == COMPLETED else "error" if status in (FAILED, TIMED_OUT) else "warning"
    text = summary or error or status
    insert_event(
        s,
        run_id,
        run.event_count,
        level,
        "finished",
        f"{status}: {text}"[:2000],
        {"status": status, "outcome": outcome},
        now,
    )
    retry_id = None
    if status in (FAILED, TIMED_OUT) and run.attempt <= run.max_retries and run.cancel_requested_at is None:
        retry_id = _schedule_retry(s, s.get(Run, run_id), now)
    _update_task_summary(s, run, now, retrying=retry_id is not None)
    return True


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff after attempt ``attempt`` (1-based): base, 2·base, 4·base, ... capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def _schedule_retry(s: Session, run: Run, now: datetime) -> int:
    task = s.get(ScheduledTask, run.task_id) if run.task_id else None
    base = task.retry_backoff_seconds if task else 30.0
    cap = task.retry_backoff_max_seconds if task else 3600.0
    delay = backoff_seconds(run.attempt, base, cap)
    values = dict(
        task_id=run.task_id,
        task_name=run.task_name,
        task_type=run.task_type,
        requested_type=run.requested_type,
        origin="retry",
        due_at=now + timedelta(seconds=delay),
        status=PENDING,
        attempt=run.attempt + 1,
        retry_of=run.id,
        parent_run_id=run.parent_run_id,
        config=run.config,
        dry_run=run.dry_run,
        confirm=run.confirm,
        queue=run.queue,
        timeout_seconds=run.timeout_seconds,
        max_retries=run.max_retries,
        locks=run.locks,
        triggered_by=run.triggered_by,
        created_at=now,
        event_count=0,
    )
    retry_id = s.execute(sa.insert(Run).values(**values).returning(Run.id)).scalar_one()
    append_event(
        s,
        run.id,
        "info",
        "retry_scheduled",
        f"attempt {run.attempt + 1} as run {retry_id} in {delay:g}s",
        {"retry_run_id": retry_id, "delay_seconds": delay},
    )
    return retry_id


def _update_task_summary(s: Session, run: Any, now: datetime, *, retrying: bool) -> None:
    if run.task_id is None or run.status == SKIPPED or run.origin == "procedure":
        return
    values: dict[str, Any] = {
        "last_run_id": run.id,
        "last_status": run.status,
        "last_outcome": run.outcome,
        "last_run_at": run.started_at or now,
        "last_duration_seconds": (now - run.started_at).total_seconds() if run.started_at else None,
    }
    if run.status == COMPLETED:
        values["consecutive_failures"] = 0
        if run.outcome in (None, "ok", "warning"):
            values["last_success_at"] = now
    elif run.status in (FAILED, TIMED_OUT) and not retrying:
        values["consecutive_failures"] = TASKS.c.consecutive_failures + 1
    s.execute(sa.update(TASKS).where(TASKS.c.id == run.task_id).values(**values))


def request_cancel(store: Store, run_id: int) -> str | None:
    """Ask a run to stop. Pending/submitted runs end at once; running ones on their next check.

    Returns the run's status afterwards, or None when there is no such run.
    """
    now = _now()
    with store.write() as s:
        run = s.execute(sa.select(Run).where(Run.id == run_id)).scalar_one_or_none()
        if run is None:
            return None
        if run.status in (PENDING, SUBMITTED):
            s.execute(sa.update(Run).where(Run.id == run_id).values(cancel_requested_at=now))
            _finish_in_session(
                s,
                run_id,
                CANCELLED,
                None,
                None,
                "cancelled before it started",
                None,
                now,
                expect=(PENDING, SUBMITTED),
            )
            return CANCELLED
        if run.status == RUNNING:
            if run.cancel_requested_at is None:
                s.execute(sa.update(Run).where(Run.id == run_id).values(cancel_requested_at=now))
                append_event(s, run_id, "warning", "cancel_requested", "cancel requested", None)
            return RUNNING
        return run.status


def heartbeat(store: Store, run_id: int) -> bool:
    """Record that the run is alive; returns whether a cancel was requested."""
    with store.write() as s:
        s.execute(sa.update(Run).where(Run.id == run_id, Run.status == RUNNING).values(heartbeat_at=_now()))
        return s.execute(sa.select(Run.cancel_requested_at).where(Run.id == run_id)).scalar() is not None


def release_submitted(store: Store, run_id: int) -> bool:
    """Put a submitted run whose dispatcher lost it back to pending."""
    with store.write() as s:
        return (
            s.execute(
                sa.update(Run).where(Run.id == run_id, Run.status == SUBMITTED).values(status=PENDING, worker=None)
            ).rowcount
            == 1
        )


def take_for_foreground(store: Store, run_id: int, label: str) -> bool:
    """Reserve a pending run for the process that will execute it in the foreground."""
    with store.write() as s:
        return (
            s.execute(
                sa.update(Run)
                .where(Run.id == run_id, Run.status == PENDING)
                .values(status=SUBMITTED, worker=label, submitted_at=_now())
            ).rowcount
            == 1
        )
