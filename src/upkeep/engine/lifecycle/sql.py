"""The run lifecycle on the store (SQLite and PostgreSQL): every statement that changes ``runs``.

(Over 500 lines on purpose: it is the one place that writes a run, and its operations share the
compiled statements, the finishing transaction and the lock handling; the rules they apply live in
``rules``, dependent runs in ``dependencies``, event rows in ``events``.)

    pending -> submitted -> running -> completed | failed | cancelled | timed_out
    pending <-> waiting (held without a worker, never reaped)
    (and skipped, created terminal when a slot is refused)

Named operations: ``create``, ``dispatch_due_runs``/``start_due_runs``/``dispatch_to``, ``claim``,
``heartbeat``/``heartbeat_many``/``progress``, ``finish``/``finish_many``, ``cancel``, ``requeue``,
``recover``, ``wait``/``resume`` and ``delete_ended``. Their rules (events, task summary, retries)
come from ``rules``; ``memory`` implements the same operations without SQL.

Every transition is one conditional UPDATE, so two workers (or a broker redelivering a message)
can never both run the same run. Retries are new runs that point at the run they retry.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from upkeep.engine.lifecycle import dependencies, rules
from upkeep.engine.lifecycle.events import EVENTS, EVENTS_INSERT, append_event, event_row
from upkeep.engine.lifecycle.inserts import insert_once
from upkeep.engine.lifecycle.rules import Trigger, run_values
from upkeep.engine.lifecycle.types import (
    ClaimedRun,
    Dispatched,
    Finish,
    Handout,
    LockBusy,
    WorkerIdentity,
)
from upkeep.store.db import Store
from upkeep.store.run_tables import run_events, run_locks, runs
from upkeep.store.states import (
    ACTIVE_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SUBMITTED,
    TERMINAL_STATUSES,
    WAITING,
    Origin,
)
from upkeep.store.tables import UTCDateTime, scheduled_tasks

# Core statements on Core tables: ORM-enabled DML costs several times more, and a process that
# runs runs (a worker, ``upkeep run``) never imports the ORM for them. A use case's session is
# accepted wherever a connection is.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from upkeep.store.models import ScheduledTask

log = logging.getLogger(__name__)
RUNS = runs
TASKS = scheduled_tasks


def _now() -> datetime:
    return datetime.now(UTC)


def insert_scheduled_runs(session: Session | Connection, rows: list[dict[str, Any]]) -> dict[tuple[int, datetime], int]:
    """Insert scheduled runs in one statement; a slot that already has its run is left alone.

    Returns the ids of the runs this call created, by (task id, slot).
    """
    if not rows:
        return {}
    bind = session if isinstance(session, Connection) else session.get_bind()
    stmt = insert_once(bind.dialect.name, ("task_id", "scheduled_for"), Origin.SCHEDULED.value)
    return {(task_id, slot): run_id for run_id, task_id, slot in session.execute(stmt, rows)}


def create(
    session: Session | Connection,
    trigger: Trigger,
    *,
    task: ScheduledTask | None,
    task_type: str,
    config: dict[str, Any],
    due_at: datetime,
    now: datetime | None = None,
    **fields: Any,
) -> int | None:
    """Insert one run; returns its id, or None when a scheduled run for that slot already exists."""
    values = run_values(
        trigger=trigger, task=task, task_type=task_type, config=config, due_at=due_at, now=now or _now(), **fields
    )
    if values["origin"] == "scheduled":
        return insert_scheduled_runs(session, [values]).get((values["task_id"], values["scheduled_for"]))
    return session.execute(sa.insert(RUNS).values(**values).returning(RUNS.c.id)).scalar_one()


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


_NEXT_PENDING_DUE = sa.select(sa.func.min(RUNS.c.due_at)).where(RUNS.c.status == PENDING)
_NEXT_PENDING_DUE_IN = _NEXT_PENDING_DUE.where(RUNS.c.queue.in_(sa.bindparam("queues", expanding=True)))


def _handout(c: Connection, items: list, wanted: int, queues: list[str] | None, now: datetime) -> Handout:
    """``items`` taken of ``wanted``: with all taken more may be due now, else ask when the next is."""
    return Handout(items, now if len(items) == wanted else _next_pending_due(c, queues), now)


def _next_pending_due(c: Connection, queues: list[str] | None) -> datetime | None:
    if queues:
        return c.execute(_NEXT_PENDING_DUE_IN, {"queues": list(queues)}).scalar()
    return c.execute(_NEXT_PENDING_DUE).scalar()


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
    RUNS.c.task_name,
    RUNS.c.dry_run,
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
    .values(**_CLAIM_VALUES, blocked_by_run_id=None)
    .returning(*_CLAIM_COLUMNS)
)
_SET_DEADLINE = (
    sa.update(RUNS).where(RUNS.c.id == sa.bindparam("run_id")).values(deadline_at=sa.bindparam("deadline", type_=_TS))
)


def claim(store: Store, run_id: int, worker: WorkerIdentity, *, lock_retry_seconds: float = 2.0) -> ClaimedRun | None:
    """Move a run to running with one conditional UPDATE, taking its mutex locks.

    Returns None when someone else has the run (or it was cancelled) or a lock is busy (the run
    goes back to pending and tries again shortly; the history says which run holds the lock).
    A run that cannot be started for what it holds (a value no bound caught) fails, saying why,
    rather than staying pending and failing every claim after it.
    """
    try:
        return _claim(store, run_id, worker, lock_retry_seconds)
    except BAD_VALUE_ERRORS as exc:  # anything else (the store down, a lock race) is not the run's fault
        reason = _unstartable(run_id, exc)
        finish(store, run_id, FAILED, error=reason, expect=(PENDING, SUBMITTED))
        return None


# what a run's own values raise when starting it: a deadline past the calendar (Python or SQL)
BAD_VALUE_ERRORS = (ArithmeticError, ValueError, TypeError, sa.exc.DataError)


def _unstartable(run_id: int, exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    reason = f"could not start: {type(exc).__name__}: {text} (a value of this run is out of range; fix the task)"
    log.warning("run %s: %s", run_id, reason)
    return reason


def _claim(store: Store, run_id: int, worker: WorkerIdentity, lock_retry_seconds: float) -> ClaimedRun | None:
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
                return rules.claimed_run(row, now)
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
    with store.write_connection() as s:
        row = s.execute(
            sa.select(RUNS.c.status, RUNS.c.cancel_requested_at, RUNS.c.locks, RUNS.c.progress_message).where(
                RUNS.c.id == run_id
            )
        ).first()
        if row is None or row.status not in (PENDING, SUBMITTED):
            return None
        if row.cancel_requested_at is not None:
            _finish_in_session(s, run_id, CANCELLED, None, None, rules.CANCELLED_BEFORE_START, None, now)
            return None
        if row.locks:
            try:
                _take_locks(s, run_id, row.locks, now)
            except LockBusy as busy:
                # back to pending until the holder ends (``_release_locks`` wakes it) or the retry
                s.execute(
                    sa.update(RUNS)
                    .where(RUNS.c.id == run_id, _CLAIMABLE)
                    .values(
                        status=PENDING,
                        due_at=now + timedelta(seconds=lock_retry_seconds),
                        worker=None,
                        blocked_by_run_id=busy.holder,
                    )
                )
                wait = rules.lock_wait_event(busy.lock, busy.holder)
                if row.progress_message != wait.message:
                    s.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(progress_message=wait.message))
                    append_event(s, run_id, wait.level, wait.event, wait.message, wait.data)
                return None
        claimed = s.execute(_CLAIM_LOCKED, params).first()
        if claimed is None:
            return None
        worker = WorkerIdentity(host=params["host"], pid=params["pid"], pgid=params["pgid"])
        return _started(s, claimed, worker, now)


def _started_event(row: Any, seq: int, worker: WorkerIdentity, now: datetime) -> dict[str, Any]:
    started = rules.started_event(row.attempt, row.task_type, row.requested_type, worker.label)
    return event_row(row.id, seq, started.level, started.event, started.message, started.data, now)


def _started(c: Any, row: Any, worker: WorkerIdentity, now: datetime) -> ClaimedRun:
    """Record the deadline and the ``started`` event of a run just claimed."""
    claimed = rules.claimed_run(row, now)
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
    finishing: Sequence[Finish] = (),
) -> Handout:
    """Hand the oldest due pending runs to idle workers, one run per worker, in one transaction.

    A plain run (no mutex locks, no cancel request) is claimed here for its worker: running, with
    the worker's pid and process group and its ``started`` event, so the worker only calls the
    handler. A run with locks or a cancel request is only submitted (``Dispatched``): its worker
    claims it with ``claim``, which owns the lock logic.

    ``finishing`` are results recorded first, in the same transaction, as ``finish_many`` does:
    the ends of the runs that freed these workers, so a hand-over costs one transaction, not two.
    """
    now = now or _now()
    if not workers and not finishing:
        return Handout([], None, now)
    with store.write_connection() as c:
        events: list[dict[str, Any]] = []  # the finished and started events, inserted in one statement
        for ending in finishing:
            _finish_one(c, ending, now, events)
        handout = _start_due_runs(c, store, workers, queues, dispatcher, now, events)
        if events:
            c.execute(EVENTS_INSERT, events)
        return handout


def _start_due_runs(
    c: Connection,
    store: Store,
    workers: list[WorkerIdentity],
    queues: list[str] | None,
    dispatcher: str,
    now: datetime,
    events: list[dict[str, Any]],
) -> Handout:
    """``start_due_runs`` in the caller's transaction; the started events are added to ``events``."""
    if not workers:
        return Handout([], None, now)
    columns = (*_CLAIM_COLUMNS, RUNS.c.queue, RUNS.c.locks, RUNS.c.cancel_requested_at)
    handed: list[ClaimedRun | Dispatched] = []
    unstartable: list[tuple[int, str]] = []
    starts: list[dict[str, Any]] = []
    submitted: list[int] = []
    due = _due_pending(c, store, columns, len(workers), queues, now)
    for row, worker in zip(due, workers, strict=False):
        if row.locks or row.cancel_requested_at is not None:
            submitted.append(row.id)
            handed.append(Dispatched(row.id, row.queue, row.timeout_seconds))
            continue
        try:
            claimed = rules.claimed_run(row, now)
        except Exception as exc:  # this run only: the others start
            unstartable.append((row.id, _unstartable(row.id, exc)))
            continue
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
    if submitted:
        _mark_submitted(c, submitted, dispatcher, now)
    for run_id, reason in unstartable:
        _finish_in_session(c, run_id, FAILED, None, None, None, reason, now, expect=(PENDING,))
    return _handout(c, handed, len(workers), queues, now)


def finish_many(store: Store, endings: list[Finish]) -> list[bool]:
    """``finish`` for several runs in one transaction (the embedded executor's batch of results),
    each at the time its handler ended, after the events it kept. The first terminal write of a
    run stands: a result for a run that already ended is recorded as its ``late_result`` event."""
    if not endings:
        return []
    now = _now()
    with store.write_connection() as c:
        events: list[dict[str, Any]] = []
        done = [_finish_one(c, e, now, events) for e in endings]
        if events:
            c.execute(EVENTS_INSERT, events)
        return done


_RUN_EXISTS = sa.select(RUNS.c.id).where(RUNS.c.id == sa.bindparam("run_id"))


def _finish_one(c: Connection, e: Finish, now: datetime, events: list[dict[str, Any]]) -> bool:
    """Record one result; its ``finished`` event is added to ``events`` for the caller to insert
    with the others of the batch (a run's events are read in the order of their sequence
    numbers, which each took in turn, so inserting them last changes no order)."""
    ended = e.finished_at or now
    if e.events and c.execute(_RUN_EXISTS, {"run_id": e.run_id}).first() is not None:
        for kept in e.events:
            ts = datetime.fromisoformat(kept["ts"])
            append_event(c, e.run_id, kept["level"], kept["event"], kept["message"], kept.get("data"), ts)
    if _finish_in_session(
        c, e.run_id, e.status, e.outcome, e.result, e.summary, e.error, ended, expect=(RUNNING,), events=events
    ):
        return True
    if e.finished_at is not None and c.execute(_RUN_EXISTS, {"run_id": e.run_id}).first() is not None:
        late = rules.late_result_event(e.status, e.outcome, e.summary, e.error, ended)
        append_event(c, e.run_id, late.level, late.event, late.message, late.data)
    return False


def _take_locks(s: Connection, run_id: int, locks: list[str], now: datetime) -> None:
    """Take every lock or none (a run waiting for one lock must not sit on the others)."""
    take = []
    for name in sorted(set(locks)):
        holder = s.execute(sa.select(run_locks.c.run_id).where(run_locks.c.name == name)).scalar()
        if holder is not None and holder != run_id:
            holder_status = s.execute(sa.select(RUNS.c.status).where(RUNS.c.id == holder)).scalar()
            if holder_status in ACTIVE_STATUSES:
                raise LockBusy(name, holder)
            s.execute(sa.delete(run_locks).where(run_locks.c.name == name))  # left by an ended run
        if holder != run_id:
            take.append(name)
    if take:
        s.execute(sa.insert(run_locks), [{"name": name, "run_id": run_id, "acquired_at": now} for name in take])


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
    events: list[dict[str, Any]] | None = None,
) -> bool:
    """End a run; its ``finished`` event is inserted now, or added to ``events`` when given."""
    if status == WAITING:  # the handler asked to wait (an approval step): no worker, no end yet
        return _park(s, run_id, summary or "waiting", result, now)
    values = rules.finish_values(status, outcome, result, summary, error, now)
    finished = rules.finished_event(status, outcome, summary, error)
    if status == COMPLETED and _dialect_name(s) == "postgresql":  # no retry to plan: one statement
        run = s.execute(
            _finish_completed_pg(frozenset(values), tuple(expect)),
            {**values, "run_id": run_id, "now": now, "ev_message": finished.message, "ev_data": finished.data},
        ).first()
        if run is not None and run.locks:
            _release_locks(s, run_id, now)
        if run is not None and run.has_downstream:
            _start_dependents(s, run, now, retrying=False)
        return run is not None
    run = s.execute(_finish_statement(frozenset(values), tuple(expect)), {**values, "run_id": run_id}).first()
    if run is None:
        return False
    if run.locks:
        _release_locks(s, run_id, now)
    row = event_row(run_id, run.event_count, finished.level, finished.event, finished.message, finished.data, now)
    if events is None:
        s.execute(EVENTS_INSERT, row)
    else:
        events.append(row)
    retry_id = None
    if rules.retries(status, run.attempt, run.max_retries, run.cancel_requested_at is not None):
        retry_id = _schedule_retry(s, s.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).one(), now)
    _update_task_summary(s, run, now, retrying=retry_id is not None)
    _start_dependents(s, run, now, retrying=retry_id is not None)
    return True


_HAS_DOWNSTREAM = sa.select(TASKS.c.has_downstream).where(TASKS.c.id == sa.bindparam("task_id"))


def _start_dependents(s: Session | Connection, run: Any, now: datetime, *, retrying: bool) -> None:
    """Start the tasks whose ``after:`` waits for this run's task (``dependencies``)."""
    if run.task_id is None or not rules.triggers_dependents(run.status, run.origin, run.dry_run, retrying):
        return
    if getattr(run, "has_downstream", None) or s.execute(_HAS_DOWNSTREAM, {"task_id": run.task_id}).scalar():
        dependencies.start_dependents(s, run, now, cancel=cancel_in_session)


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
    has_downstream = sa.select(TASKS.c.has_downstream).where(TASKS.c.id == finished.c.task_id).scalar_subquery()
    return sa.select(finished, has_downstream.label("has_downstream")).add_cte(
        event.cte("finished_event"), summary.cte("task_summary")
    )


_WAKE_WAITERS = (
    sa.update(RUNS)
    .where(RUNS.c.status == PENDING, RUNS.c.blocked_by_run_id == sa.bindparam("holder"))
    .values(due_at=sa.bindparam("now", type_=_TS), blocked_by_run_id=None)
)


def _release_locks(s: Session | Connection, run_id: int, now: datetime) -> None:
    if s.execute(sa.delete(run_locks).where(run_locks.c.run_id == run_id)).rowcount:
        # runs waiting for a lock this run held may start now, not at their next retry
        s.execute(_WAKE_WAITERS, {"holder": run_id, "now": now})


backoff_seconds = rules.backoff_seconds


def _schedule_retry(s: Session | Connection, run: Any, now: datetime) -> int:
    task = None
    if run.task_id is not None:
        task = s.execute(
            sa.select(TASKS.c.retry_backoff_seconds, TASKS.c.retry_backoff_max_seconds).where(TASKS.c.id == run.task_id)
        ).first()
    base = task.retry_backoff_seconds if task else rules.DEFAULT_BACKOFF_SECONDS
    cap = task.retry_backoff_max_seconds if task else rules.DEFAULT_BACKOFF_MAX_SECONDS
    delay = rules.backoff_seconds(run.attempt, base, cap)
    values = rules.retry_values(run, now, delay)
    retry_id = s.execute(sa.insert(RUNS).values(**values).returning(RUNS.c.id)).scalar_one()
    note = rules.retry_event(run.attempt + 1, retry_id, delay)
    append_event(s, run.id, note.level, note.event, note.message, note.data)
    return retry_id


@functools.cache
def _task_summary_statement(fields: frozenset[str], count_failure: bool) -> sa.Update:
    values: dict[str, Any] = {name: sa.bindparam(name, type_=TASKS.c[name].type) for name in fields}
    if count_failure:
        values["consecutive_failures"] = TASKS.c.consecutive_failures + 1
    return sa.update(TASKS).where(TASKS.c.id == sa.bindparam("task_id")).values(**values)


def _update_task_summary(s: Session | Connection, run: Any, now: datetime, *, retrying: bool) -> None:
    if not rules.summarises(run.task_id, run.status, run.origin):
        return
    values = rules.task_summary(run.id, run.status, run.outcome, run.started_at, now)
    count_failure = rules.counts_as_failure(run.status, retrying)
    statement = _task_summary_statement(frozenset(values), count_failure)
    s.execute(statement, {**values, "task_id": run.task_id})


_STATUS_AND_CANCEL = sa.select(RUNS.c.status, RUNS.c.cancel_requested_at).where(RUNS.c.id == sa.bindparam("run_id"))
_NOT_STARTED = (PENDING, WAITING, SUBMITTED)


def cancel(store: Store, run_id: int, reason: str | None = None) -> str | None:
    """Ask a run to stop. A run not yet started ends at once; a running one on its next check.

    Returns the run's status afterwards, or None when there is no such run.
    """
    with store.write_connection() as c:
        return cancel_in_session(c, run_id, _now(), reason)


def cancel_in_session(s: Session | Connection, run_id: int, now: datetime, reason: str | None = None) -> str | None:
    """``cancel`` inside the caller's transaction (the scheduler's ``replace``, deleting a task)."""
    row = s.execute(_STATUS_AND_CANCEL, {"run_id": run_id}).first()
    if row is None:
        return None
    if row.status in _NOT_STARTED:
        s.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(cancel_requested_at=now))
        if reason is None:
            _finish_in_session(s, run_id, CANCELLED, None, None, rules.CANCELLED_BEFORE_START, None, now, _NOT_STARTED)
        else:
            _finish_in_session(s, run_id, CANCELLED, None, None, None, reason, now, _NOT_STARTED)
        return CANCELLED
    if row.status == RUNNING:
        if row.cancel_requested_at is None:
            s.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(cancel_requested_at=now))
            note = rules.cancel_event(reason)
            append_event(s, run_id, note.level, note.event, note.message, note.data)
        return RUNNING
    return row.status


_HEARTBEAT = (
    sa.update(RUNS)
    .where(RUNS.c.id.in_(sa.bindparam("run_ids", expanding=True)), RUNS.c.status == RUNNING)
    .values(heartbeat_at=sa.bindparam("now", type_=_TS))
)
_CANCEL_REQUESTED = sa.select(RUNS.c.cancel_requested_at).where(RUNS.c.id == sa.bindparam("run_id"))


def heartbeat(store: Store, run_id: int) -> bool:
    """Record that the run is alive; returns whether a cancel was requested."""
    with store.write_connection() as c:
        c.execute(_HEARTBEAT, {"run_ids": [run_id], "now": _now()})
        return c.execute(_CANCEL_REQUESTED, {"run_id": run_id}).scalar() is not None


def heartbeat_many(store: Store, run_ids: list[int]) -> None:
    """Heartbeat several running runs at once (one watcher beats for all its runs)."""
    with store.write_connection() as c:
        c.execute(_HEARTBEAT, {"run_ids": list(run_ids), "now": _now()})


def cancel_requested(store: Store, run_id: int) -> bool:
    with store.read_connection() as c:
        return c.execute(_CANCEL_REQUESTED, {"run_id": run_id}).scalar() is not None


_CANCEL_REQUESTS = sa.select(RUNS.c.id, RUNS.c.cancel_requested_at).where(
    RUNS.c.id.in_(sa.bindparam("run_ids", expanding=True)), RUNS.c.cancel_requested_at.is_not(None)
)


def cancel_requests(store: Store, run_ids: list[int]) -> dict[int, datetime]:
    """When a cancel was requested, for those of ``run_ids`` that have a request."""
    with store.read_connection() as c:
        return dict(c.execute(_CANCEL_REQUESTS, {"run_ids": list(run_ids)}).all())


def progress(store: Store, run_id: int, fraction: float | None, message: str | None) -> None:
    """A handler's progress report, which is also a heartbeat."""
    values: dict[str, Any] = {"heartbeat_at": _now()}
    if fraction is not None:
        values["progress"] = fraction
    if message is not None:
        values["progress_message"] = message[: rules.MAX_PROGRESS_MESSAGE]
    with store.write_connection() as c:
        c.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(**values))


def event(store: Store, run_id: int, level: str, name: str, message: str, data: dict | None) -> None:
    """Append one event a handler wrote to its run."""
    with store.write_connection() as c:
        append_event(c, run_id, level, name, message, data)


def dispatch_to(store: Store, run_id: int, label: str) -> bool:
    """Hand one pending run to the executor ``label`` (``upkeep run`` executes it in the foreground)."""
    with store.write_connection() as c:
        return (
            c.execute(
                sa.update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status == PENDING)
                .values(status=SUBMITTED, worker=label, submitted_at=_now())
            ).rowcount
            == 1
        )


def requeue(store: Store, run_id: int) -> bool:
    """Put a submitted run whose dispatcher or worker lost it back to pending."""
    with store.write_connection() as c:
        return (
            c.execute(
                sa.update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status == SUBMITTED)
                .values(status=PENDING, worker=None)
            ).rowcount
            == 1
        )


def recover(store: Store, run_id: int, reason: str) -> bool:
    """The run's worker is gone: a running run fails with ``reason`` (retried while attempts
    remain, locks released), a submitted one goes back to pending. False when it had moved on."""
    if finish(store, run_id, rules.RECOVERED_STATUS, error=reason, expect=(RUNNING,)):
        return True
    return requeue(store, run_id)


_PARKED = sa.select(RUNS.c.deadline_at, RUNS.c.locks).where(
    RUNS.c.id == sa.bindparam("run_id"), RUNS.c.status == RUNNING
)


def _park(s: Session | Connection, run_id: int, reason: str, result: dict | None, now: datetime) -> bool:
    """A running run whose handler asked to wait becomes ``waiting``: its worker lets it go, its
    locks are released, and what is left of its timeout is kept for when it resumes (the wait
    does not count). Only ``resume`` or ``cancel`` moves it on; the reaper never judges it."""
    row = s.execute(_PARKED, {"run_id": run_id}).first()
    if row is None:
        return False
    values: dict[str, Any] = dict(
        status=WAITING,
        worker=None,
        worker_host=None,
        worker_pid=None,
        worker_pgid=None,
        heartbeat_at=None,
        deadline_at=None,
        progress_message=reason[: rules.MAX_PROGRESS_MESSAGE],
    )
    if row.deadline_at is not None:
        values["timeout_seconds"] = rules.remaining_timeout(row.deadline_at, now)
    if result is not None:
        values["result"] = result
    moved = s.execute(sa.update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == RUNNING).values(**values)).rowcount
    if not moved:
        return False
    if row.locks:
        _release_locks(s, run_id, now)
    note = rules.waiting_event(reason)
    append_event(s, run_id, note.level, note.event, note.message, note.data, now)
    return True


def wait(store: Store, run_id: int, reason: str) -> bool:
    """Hold a pending run without a worker until ``resume`` (or ``cancel``); never reaped."""
    return _move(store, run_id, PENDING, WAITING, rules.waiting_event(reason), {})


def resume(store: Store, run_id: int, reason: str) -> bool:
    """Let a waiting run start: pending again, due now."""
    with store.write_connection() as c:
        return resume_in_session(c, run_id, reason, _now())


def resume_in_session(s: Session | Connection, run_id: int, reason: str, now: datetime) -> bool:
    """``resume`` inside the caller's transaction (an approval given)."""
    return _move_in(s, run_id, WAITING, PENDING, rules.resumed_event(reason), {"due_at": now})


def _move(store: Store, run_id: int, before: str, after: str, note: rules.Event, values: dict[str, Any]) -> bool:
    with store.write_connection() as c:
        return _move_in(c, run_id, before, after, note, values)


def _move_in(
    s: Session | Connection, run_id: int, before: str, after: str, note: rules.Event, values: dict[str, Any]
) -> bool:
    moved = s.execute(
        sa.update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == before).values(status=after, **values)
    ).rowcount
    if moved:
        append_event(s, run_id, note.level, note.event, note.message, note.data)
    return moved == 1


def delete_ended(s: Session | Connection, run_ids: list[int]) -> None:
    """Delete ended runs and their events (retention); a run that is not terminal stays."""
    s.execute(sa.delete(run_events).where(run_events.c.run_id.in_(run_ids)))
    s.execute(sa.delete(RUNS).where(RUNS.c.id.in_(run_ids), RUNS.c.status.in_(TERMINAL_STATUSES)))


class SqlLifecycle:
    """This module's operations bound to one store: the shape ``memory.MemoryLifecycle`` has."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, trigger: Trigger, **fields: Any) -> int | None:
        with self.store.write_connection() as c:
            return create(c, trigger, **fields)

    def dispatch_due_runs(self, **kwargs: Any) -> Handout:
        return dispatch_due_runs(self.store, **kwargs)

    def dispatch_to(self, run_id: int, label: str) -> bool:
        return dispatch_to(self.store, run_id, label)

    def claim(self, run_id: int, worker: WorkerIdentity, *, lock_retry_seconds: float = 2.0) -> ClaimedRun | None:
        return claim(self.store, run_id, worker, lock_retry_seconds=lock_retry_seconds)

    def heartbeat(self, run_id: int) -> bool:
        return heartbeat(self.store, run_id)

    def heartbeat_many(self, run_ids: list[int]) -> None:
        heartbeat_many(self.store, run_ids)

    def cancel_requested(self, run_id: int) -> bool:
        return cancel_requested(self.store, run_id)

    def cancel_requests(self, run_ids: list[int]) -> dict[int, datetime]:
        return cancel_requests(self.store, run_ids)

    def progress(self, run_id: int, fraction: float | None, message: str | None) -> None:
        progress(self.store, run_id, fraction, message)

    def event(self, run_id: int, level: str, name: str, message: str, data: dict | None) -> None:
        event(self.store, run_id, level, name, message, data)

    def finish(self, run_id: int, status: str, **kwargs: Any) -> bool:
        return finish(self.store, run_id, status, **kwargs)

    def finish_many(self, endings: list[Finish]) -> list[bool]:
        return finish_many(self.store, endings)

    def cancel(self, run_id: int, reason: str | None = None) -> str | None:
        return cancel(self.store, run_id, reason)

    def requeue(self, run_id: int) -> bool:
        return requeue(self.store, run_id)

    def recover(self, run_id: int, reason: str) -> bool:
        return recover(self.store, run_id, reason)

    def wait(self, run_id: int, reason: str) -> bool:
        return wait(self.store, run_id, reason)

    def resume(self, run_id: int, reason: str) -> bool:
        return resume(self.store, run_id, reason)
