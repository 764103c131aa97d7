"""The run lifecycle in the store: create, dispatch, claim, finish, retry, cancel, recover.

    pending -> submitted -> running -> completed | failed | cancelled | timed_out
    (and skipped, created terminal when a slot is refused)

Every transition is one conditional UPDATE, so two workers (or a broker redelivering a message)
can never both run the same run. Retries are new runs that point at the run they retry.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from upkeep.engine.journal import EVENTS, EVENTS_INSERT, append_event, event_row, insert_event
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
    UTCDateTime,
)

HOSTNAME = socket.gethostname()
RUNS = Run.__table__  # the hot path uses Core statements: ORM-enabled DML costs several times more
TASKS = ScheduledTask.__table__


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


def insert_scheduled_runs(session: Session | Connection, rows: list[dict[str, Any]]) -> dict[tuple[int, datetime], int]:
    """Insert scheduled runs in one statement; a slot that already has its run is left alone.

    Returns the ids of the runs this call created, by (task id, slot).
    """
    if not rows:
        return {}
    bind = session if isinstance(session, Connection) else session.get_bind()
    stmt = _insert_scheduled_statement(bind.dialect.name)
    return {(task_id, slot): run_id for run_id, task_id, slot in session.execute(stmt, rows)}


@functools.cache
def _insert_scheduled_statement(dialect: str) -> sa.Insert:
    """One statement per dialect whatever the row count: built, hashed and compiled once."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return (
        insert(RUNS)
        .on_conflict_do_nothing(
            index_elements=["task_id", "scheduled_for"], index_where=sa.text("origin = 'scheduled'")
        )
        .returning(RUNS.c.id, RUNS.c.task_id, RUNS.c.scheduled_for)
    )


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


# how soon a dispatcher looks again at due work another one holds (SKIP LOCKED), instead of spinning
HELD_ELSEWHERE_SECONDS = 0.02


def seconds_until(next_due: datetime | None, as_of: datetime, *, cap: float, now: datetime) -> float:
    """How long to sleep before looking for due work again, after a look at ``as_of`` that found
    the next item due at ``next_due``. Due already at ``as_of`` yet left: another scheduler or
    dispatcher holds it and will take it, so look again shortly rather than spin. Due since: now."""
    if next_due is None:
        return cap
    if next_due <= as_of:
        return min(cap, HELD_ELSEWHERE_SECONDS)
    return min(cap, max(0.0, (next_due - now).total_seconds()))


@dataclass
class Handout:
    """What one transaction handed out at ``as_of``, and when the next pending run is due
    (``None``: none is pending)."""

    items: list
    next_due: datetime | None
    as_of: datetime

    def sleep_seconds(self, cap: float) -> float:
        return seconds_until(self.next_due, self.as_of, cap=cap, now=_now())


def dispatch_due_runs(
    store: Store, *, limit: int, queues: list[str] | None, worker: str, now: datetime | None = None
) -> Handout:
    """Move due pending runs to submitted for this dispatcher (oldest first).

    On PostgreSQL concurrent dispatchers skip each other's rows (``FOR UPDATE SKIP LOCKED``);
    on SQLite the write transaction is ``BEGIN IMMEDIATE``.
    """
    now = now or _now()
    with store.write_connection() as c:
        columns = (RUNS.c.id, RUNS.c.queue, RUNS.c.timeout_seconds)
        rows = [Dispatched(*row) for row in _due_pending(c, store, columns, limit, queues, now)]
        if rows:
            _mark_submitted(c, [r.id for r in rows], worker, now)
        return _handout(c, rows, limit, queues, now)


def _due_pending(
    c: Connection, store: Store, columns: tuple, limit: int, queues: list[str] | None, now: datetime
) -> list[Any]:
    """The oldest due pending runs (of ``queues``); locked against other dispatchers on PostgreSQL."""
    query = _due_pending_query(columns, store.is_postgres, bool(queues))
    params = {"now": now, "limit": limit} | ({"queues": list(queues)} if queues else {})
    return c.execute(query, params).all()


@functools.lru_cache(maxsize=16)
def _due_pending_query(columns: tuple, postgres: bool, by_queue: bool) -> sa.Select:
    """Built once per shape: building and hashing a statement costs more than running it."""
    query = sa.select(*columns).where(RUNS.c.status == PENDING, RUNS.c.due_at <= sa.bindparam("now", type_=_TS))
    if by_queue:
        query = query.where(RUNS.c.queue.in_(sa.bindparam("queues", expanding=True)))
    query = query.order_by(RUNS.c.due_at, RUNS.c.id).limit(sa.bindparam("limit"))
    return query.with_for_update(skip_locked=True) if postgres else query


def _mark_submitted(c: Connection, run_ids: list[int], dispatcher: str, now: datetime) -> None:
    c.execute(
        sa.update(RUNS)
        .where(RUNS.c.id.in_(run_ids), RUNS.c.status == PENDING)
        .values(status=SUBMITTED, submitted_at=now, worker=dispatcher)
    )


def dispatch_due(
    store: Store, *, limit: int, queues: list[str] | None, worker: str, now: datetime | None = None
) -> list[int]:
    """``dispatch_due_runs``, the ids only."""
    return [r.id for r in dispatch_due_runs(store, limit=limit, queues=queues, worker=worker, now=now).items]


_NEXT_PENDING_DUE = sa.select(sa.func.min(RUNS.c.due_at)).where(RUNS.c.status == PENDING)
_NEXT_PENDING_DUE_IN = _NEXT_PENDING_DUE.where(RUNS.c.queue.in_(sa.bindparam("queues", expanding=True)))


def _handout(c: Connection, items: list, wanted: int, queues: list[str] | None, now: datetime) -> Handout:
    """``items`` taken of ``wanted``: with all taken more may be due now, else ask when the next is."""
    return Handout(items, now if len(items) == wanted else _next_pending_due(c, queues), now)


def _next_pending_due(c: Connection, queues: list[str] | None) -> datetime | None:
    if queues:
        return c.execute(_NEXT_PENDING_DUE_IN, {"queues": list(queues)}).scalar()
    return c.execute(_NEXT_PENDING_DUE).scalar()


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


# The common claim: a run with no mutex locks and no cancel request. One conditional UPDATE takes
# it and returns what the worker needs; anything else goes the careful way (``_claim_slow``).
_CLAIM_COLUMNS = (
    RUNS.c.id,
    RUNS.c.task_id,
    RUNS.c.task_name,
    RUNS.c.task_type,
    RUNS.c.requested_type,
    RUNS.c.config,
    RUNS.c.dry_run,
    RUNS.c.confirm,
    RUNS.c.attempt,
    RUNS.c.timeout_seconds,
    RUNS.c.parent_run_id,
    RUNS.c.event_count,
)
_TS = UTCDateTime()


def _status_in(statuses: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """``status IN ('a', 'b')`` with the names written into the SQL: a bound IN list is expanded
    again on every execution, a measurable share of a hot statement's cost."""
    return RUNS.c.status.in_([sa.literal_column(f"'{status}'") for status in statuses if status.isidentifier()])


_CLAIMABLE = _status_in((PENDING, SUBMITTED))
_CLAIM_VALUES = dict(
    status=RUNNING,
    started_at=sa.bindparam("now", type_=_TS),
    heartbeat_at=sa.bindparam("now", type_=_TS),
    worker=sa.bindparam("worker"),
    worker_host=sa.bindparam("host"),
    worker_pid=sa.bindparam("pid"),
    worker_pgid=sa.bindparam("pgid"),
    progress_message=None,
    event_count=RUNS.c.event_count + 1,
)
_CLAIM_FAST = (
    sa.update(RUNS)
    .where(
        RUNS.c.id == sa.bindparam("run_id"),
        _CLAIMABLE,
        RUNS.c.cancel_requested_at.is_(None),
        sa.cast(RUNS.c.locks, sa.Text) == "[]",
    )
    .values(**_CLAIM_VALUES)
    .returning(*_CLAIM_COLUMNS)
)
_CLAIM_LOCKED = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"), _CLAIMABLE)
    .values(**_CLAIM_VALUES)
    .returning(*_CLAIM_COLUMNS)
)
_SET_DEADLINE = (
    sa.update(RUNS).where(RUNS.c.id == sa.bindparam("run_id")).values(deadline_at=sa.bindparam("deadline", type_=_TS))
)


def claim(store: Store, run_id: int, worker: WorkerIdentity, *, lock_retry_seconds: float = 2.0) -> ClaimedRun | None:
    """Move a run to running with one conditional UPDATE, taking its mutex locks.

    Returns None when someone else has the run (or it was cancelled) or a lock is busy (the run
    goes back to pending and tries again shortly; the history says which run holds the lock).
    """
    now = _now()
    params = {
        "run_id": run_id,
        "now": now,
        "worker": worker.label,
        "host": worker.host,
        "pid": worker.pid,
        "pgid": worker.pgid,
    }
    with store.write_connection() as c:
        if store.is_postgres:
            row = c.execute(_claim_and_start_pg(), params).first()
            if row is not None:
                return _claimed_run(row, now)
        else:
            row = c.execute(_CLAIM_FAST, params).first()
            if row is not None:
                return _started(c, row, worker, now)
    return _claim_slow(store, params, lock_retry_seconds)


@functools.cache
def _claim_and_start_pg() -> sa.Select:
    """PostgreSQL: the fast claim, the run's deadline and its ``started`` event in one statement
    (data-modifying CTEs), one round trip where ``_started`` adds one or two. The event's text and
    data are the ones ``_started_event`` writes."""
    now = sa.bindparam("now", type_=_TS)
    claimed = _CLAIM_FAST.values(deadline_at=now + sa.func.make_interval(0, 0, 0, 0, 0, 0, RUNS.c.timeout_seconds)).cte(
        "claimed"
    )
    alias = sa.func.coalesce(" (requested as alias " + claimed.c.requested_type + ")", "")
    message = (
        "attempt "
        + sa.cast(claimed.c.attempt, sa.Text)
        + " of "
        + claimed.c.task_type
        + alias
        + " on "
        + sa.bindparam("worker", type_=sa.Text)
    )
    data = sa.func.jsonb_build_object(
        "worker", sa.bindparam("worker", type_=sa.Text), "attempt", claimed.c.attempt, "alias", claimed.c.requested_type
    )
    started = sa.insert(EVENTS).from_select(
        ["run_id", "seq", "ts", "level", "event", "message", "data"],
        sa.select(claimed.c.id, claimed.c.event_count, now, sa.literal("info"), sa.literal("started"), message, data),
    )
    return sa.select(claimed).add_cte(started.cte("started_event"))


def _claim_slow(store: Store, params: dict[str, Any], lock_retry_seconds: float) -> ClaimedRun | None:
    """Claim a run that holds mutex locks or has a cancel request (or someone else's run)."""
    run_id, now = params["run_id"], params["now"]
    with store.write() as s:
        row = s.execute(
            sa.select(RUNS.c.status, RUNS.c.cancel_requested_at, RUNS.c.locks, RUNS.c.progress_message).where(
                RUNS.c.id == run_id
            )
        ).first()
        if row is None or row.status not in (PENDING, SUBMITTED):
            return None
        if row.cancel_requested_at is not None:
            _finish_in_session(s, run_id, CANCELLED, None, None, "cancelled before it started", None, now)
            return None
        if row.locks:
            try:
                _take_locks(s, run_id, row.locks, now)
            except LockBusy as busy:
                s.execute(
                    sa.update(RUNS)
                    .where(RUNS.c.id == run_id, _CLAIMABLE)
                    .values(status=PENDING, due_at=now + timedelta(seconds=lock_retry_seconds), worker=None)
                )
                message = f"waiting for lock {busy.lock} held by run {busy.holder}"
                if row.progress_message != message:
                    s.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(progress_message=message))
                    append_event(s, run_id, "info", "lock_wait", message, {"lock": busy.lock, "holder": busy.holder})
                return None
        claimed = s.execute(_CLAIM_LOCKED, params).first()
        if claimed is None:
            return None
        worker = WorkerIdentity(host=params["host"], pid=params["pid"], pgid=params["pgid"])
        return _started(s, claimed, worker, now)


def _claimed_run(row: Any, now: datetime) -> ClaimedRun:
    deadline = now + timedelta(seconds=row.timeout_seconds) if row.timeout_seconds else None
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


def _started_event(row: Any, seq: int, worker: WorkerIdentity, now: datetime) -> dict[str, Any]:
    note = f" (requested as alias {row.requested_type})" if row.requested_type else ""
    return event_row(
        row.id,
        seq,
        "info",
        "started",
        f"attempt {row.attempt} of {row.task_type}{note} on {worker.label}",
        {"worker": worker.label, "attempt": row.attempt, "alias": row.requested_type},
        now,
    )


def _started(c: Any, row: Any, worker: WorkerIdentity, now: datetime) -> ClaimedRun:
    """Record the deadline and the ``started`` event of a run just claimed."""
    claimed = _claimed_run(row, now)
    if claimed.deadline_at is not None:
        c.execute(_SET_DEADLINE, {"run_id": row.id, "deadline": claimed.deadline_at})
    c.execute(EVENTS_INSERT, _started_event(row, row.event_count, worker, now))
    return claimed


# the batch claim of ``start_due_runs``: the sequence number and deadline come from the row read
_START = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"), RUNS.c.status == PENDING)
    .values(
        **_CLAIM_VALUES
        | dict(
            submitted_at=sa.bindparam("now", type_=_TS),
            deadline_at=sa.bindparam("deadline", type_=_TS),
            event_count=sa.bindparam("seq"),
        )
    )
)


def start_due_runs(
    store: Store,
    workers: list[WorkerIdentity],
    *,
    queues: list[str] | None,
    dispatcher: str,
    now: datetime | None = None,
) -> Handout:
    """Hand the oldest due pending runs to idle workers, one run per worker, in one transaction.

    A plain run (no mutex locks, no cancel request) is claimed here for its worker: running, with
    the worker's pid and process group and its ``started`` event, so the worker only calls the
    handler. A run with locks or a cancel request is only submitted (``Dispatched``): its worker
    claims it with ``claim``, which owns the lock logic.
    """
    if not workers:
        return Handout([], None, _now())
    now = now or _now()
    columns = (*_CLAIM_COLUMNS, RUNS.c.queue, RUNS.c.locks, RUNS.c.cancel_requested_at)
    handed: list[ClaimedRun | Dispatched] = []
    starts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    submitted: list[int] = []
    with store.write_connection() as c:
        due = _due_pending(c, store, columns, len(workers), queues, now)
        for row, worker in zip(due, workers, strict=False):
            if row.locks or row.cancel_requested_at is not None:
                submitted.append(row.id)
                handed.append(Dispatched(row.id, row.queue, row.timeout_seconds))
                continue
            claimed = _claimed_run(row, now)
            seq = row.event_count + 1
            starts.append(
                {
                    "run_id": row.id,
                    "now": now,
                    "deadline": claimed.deadline_at,
                    "worker": worker.label,
                    "host": worker.host,
                    "pid": worker.pid,
                    "pgid": worker.pgid,
                    "seq": seq,
                }
            )
            events.append(_started_event(row, seq, worker, now))
            handed.append(claimed)
        if starts:
            c.execute(_START, starts)
            c.execute(EVENTS_INSERT, events)
        if submitted:
            _mark_submitted(c, submitted, dispatcher, now)
        return _handout(c, handed, len(workers), queues, now)


@dataclass(frozen=True)
class Finish:
    """One run's end, for ``finish_many``."""

    run_id: int
    status: str
    outcome: str | None = None
    result: dict | None = None
    summary: str | None = None
    error: str | None = None


def finish_many(store: Store, endings: list[Finish]) -> list[bool]:
    """``finish`` for several runs in one transaction (the embedded executor's batch of results)."""
    if not endings:
        return []
    now = _now()
    with store.write_connection() as c:
        return [
            _finish_in_session(c, e.run_id, e.status, e.outcome, e.result, e.summary, e.error, now, expect=(RUNNING,))
            for e in endings
        ]


def _take_locks(s: Session, run_id: int, locks: list[str], now: datetime) -> None:
    """Take every lock or none (a run waiting for one lock must not sit on the others)."""
    take = []
    for name in sorted(set(locks)):
        holder = s.execute(sa.select(RunLock.run_id).where(RunLock.name == name)).scalar()
        if holder is not None and holder != run_id:
            holder_status = s.execute(sa.select(RUNS.c.status).where(RUNS.c.id == holder)).scalar()
            if holder_status in ACTIVE_STATUSES:
                raise LockBusy(name, holder)
            s.execute(sa.delete(RunLock).where(RunLock.name == name))  # left by an ended run
        if holder != run_id:
            take.append(name)
    s.add_all(RunLock(name=name, run_id=run_id, acquired_at=now) for name in take)
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
    with store.write_connection() as c:
        return _finish_in_session(c, run_id, status, outcome, result, summary, error, now, expect=expect)


@functools.cache
def _finish_statement(fields: frozenset[str], expect: tuple[str, ...]) -> sa.Update:
    """The finishing UPDATE for one combination of set fields (built once, compiled once)."""
    values: dict[str, Any] = {name: sa.bindparam(name, type_=RUNS.c[name].type) for name in fields}
    values["event_count"] = RUNS.c.event_count + 1
    return (
        sa.update(RUNS)
        .where(RUNS.c.id == sa.bindparam("run_id"), _status_in(expect))
        .values(**values)
        .returning(*_FINISH_RETURNING)
    )


def _finish_in_session(
    s: Session | Connection,
    run_id: int,
    status: str,
    outcome: str | None,
    result: dict | None,
    summary: str | None,
    error: str | None,
    now: datetime,
    expect: tuple[str, ...] = ACTIVE_STATUSES,
) -> bool:
    values: dict[str, Any] = {"status": status, "finished_at": now, "outcome": outcome}
    if result is not None:
        values["result"] = result
    if summary is not None:
        values["summary"] = summary[:2000]
    if error is not None:
        values["error"] = error[:8000]
    if status == COMPLETED:
        values["progress"] = 1.0
    level = "info" if status == COMPLETED else "error" if status in (FAILED, TIMED_OUT) else "warning"
    message = f"{status}: {summary or error or status}"[:2000]
    data = {"status": status, "outcome": outcome}
    if status == COMPLETED and _dialect_name(s) == "postgresql":  # no retry to plan: one statement
        run = s.execute(
            _finish_completed_pg(frozenset(values), tuple(expect)),
            {**values, "run_id": run_id, "now": now, "ev_message": message, "ev_data": data},
        ).first()
        if run is not None and run.locks:
            _release_locks(s, run_id, now)
        return run is not None
    run = s.execute(_finish_statement(frozenset(values), tuple(expect)), {**values, "run_id": run_id}).first()
    if run is None:
        return False
    if run.locks:
        _release_locks(s, run_id, now)
    insert_event(s, run_id, run.event_count, level, "finished", message, data, now)
    retry_id = None
    if status in (FAILED, TIMED_OUT) and run.attempt <= run.max_retries and run.cancel_requested_at is None:
        retry_id = _schedule_retry(s, s.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).one(), now)
    _update_task_summary(s, run, now, retrying=retry_id is not None)
    return True


def _dialect_name(s: Session | Connection) -> str:
    return (s.dialect if isinstance(s, Connection) else s.get_bind().dialect).name


@functools.cache
def _finish_completed_pg(fields: frozenset[str], expect: tuple[str, ...]) -> sa.Select:
    """PostgreSQL: a completed run's finishing UPDATE, its ``finished`` event and its task's
    summary in one statement (data-modifying CTEs), where the general path takes three round
    trips. The summary is the one ``_update_task_summary`` writes for a completed run."""
    now = sa.bindparam("now", type_=_TS)
    finished = _finish_statement(fields, expect).cte("finished")
    event = sa.insert(EVENTS).from_select(
        ["run_id", "seq", "ts", "level", "event", "message", "data"],
        sa.select(
            finished.c.id,
            finished.c.event_count,
            now,
            sa.literal("info"),
            sa.literal("finished"),
            sa.bindparam("ev_message", type_=sa.Text),
            sa.bindparam("ev_data", type_=EVENTS.c.data.type),
        ),
    )
    succeeded = sa.or_(finished.c.outcome.is_(None), finished.c.outcome.in_(("ok", "warning")))
    summary = (
        sa.update(TASKS)
        .where(TASKS.c.id == finished.c.task_id, finished.c.origin != "procedure")
        .values(
            last_run_id=finished.c.id,
            last_status=finished.c.status,
            last_outcome=finished.c.outcome,
            last_run_at=sa.func.coalesce(finished.c.started_at, now),
            last_duration_seconds=sa.extract("epoch", now - finished.c.started_at),
            consecutive_failures=0,
            last_success_at=sa.case((succeeded, now), else_=TASKS.c.last_success_at),
        )
    )
    return sa.select(finished).add_cte(event.cte("finished_event"), summary.cte("task_summary"))


def _release_locks(s: Session | Connection, run_id: int, now: datetime) -> None:
    if s.execute(sa.delete(RunLock).where(RunLock.run_id == run_id)).rowcount:
        # runs waiting for a lock this run held may start now, not at their next retry
        s.execute(
            sa.update(RUNS)
            .where(RUNS.c.status == PENDING, RUNS.c.progress_message.like(f"% held by run {run_id}"))
            .values(due_at=now)
        )


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff after attempt ``attempt`` (1-based): base, 2·base, 4·base, ... capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def _schedule_retry(s: Session | Connection, run: Any, now: datetime) -> int:
    task = None
    if run.task_id is not None:
        task = s.execute(
            sa.select(TASKS.c.retry_backoff_seconds, TASKS.c.retry_backoff_max_seconds).where(TASKS.c.id == run.task_id)
        ).first()
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
    retry_id = s.execute(sa.insert(RUNS).values(**values).returning(RUNS.c.id)).scalar_one()
    append_event(
        s,
        run.id,
        "info",
        "retry_scheduled",
        f"attempt {run.attempt + 1} as run {retry_id} in {delay:g}s",
        {"retry_run_id": retry_id, "delay_seconds": delay},
    )
    return retry_id


@functools.cache
def _task_summary_statement(fields: frozenset[str], count_failure: bool) -> sa.Update:
    values: dict[str, Any] = {name: sa.bindparam(name, type_=TASKS.c[name].type) for name in fields}
    if count_failure:
        values["consecutive_failures"] = TASKS.c.consecutive_failures + 1
    return sa.update(TASKS).where(TASKS.c.id == sa.bindparam("task_id")).values(**values)


def _update_task_summary(s: Session | Connection, run: Any, now: datetime, *, retrying: bool) -> None:
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
    count_failure = run.status in (FAILED, TIMED_OUT) and not retrying
    statement = _task_summary_statement(frozenset(values), count_failure)
    s.execute(statement, {**values, "task_id": run.task_id})


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


def beat(store: Store, run_ids: list[int]) -> None:
    """Heartbeat several running runs at once (the embedded supervisor beats for its workers)."""
    with store.write_connection() as c:
        c.execute(sa.update(RUNS).where(RUNS.c.id.in_(run_ids), RUNS.c.status == RUNNING).values(heartbeat_at=_now()))


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
