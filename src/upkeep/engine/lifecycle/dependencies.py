"""Dependent runs: the end of a run starts the tasks whose ``after:`` waits for its task, in the
transaction that records that end (``sql._finish_in_session`` calls ``start_dependents``).

Exactly once, with any number of workers finishing runs at the same moment:
- a chain (``after: {tasks: [a]}``): each finishing run of ``a`` is ended by one conditional
  UPDATE, so one transaction only creates its dependent run; the unique index
  ``uq_runs_dependency`` (task, upstream run) says so in the schema too;
- a fan-in (``after: {tasks: [a, b]}``): runs of ``a`` and ``b`` ending together must not both
  miss (each not yet seeing the other) nor both start it. A finishing transaction that has
  dependents to look at first takes one lock (PostgreSQL: a transaction-level advisory lock, the
  same for every dependent task, so that transactions ending several runs at once, as the
  embedded executor's batches do, cannot deadlock on each other; SQLite: writes are serialised
  by ``BEGIN IMMEDIATE``) and then reads, in a statement that sees everything committed before
  it got the lock. The dependent task's last dependency run records the upstream runs it
  consumed (``upstream_runs``); it runs again only once every listed task has a newer
  qualifying run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from upkeep.engine.lifecycle import rules
from upkeep.engine.lifecycle.events import append_event
from upkeep.engine.lifecycle.inserts import insert_once
from upkeep.engine.lifecycle.rules import Trigger, run_values
from upkeep.engine.windows import next_window_open, parse_windows, window_allows
from upkeep.store.run_tables import runs
from upkeep.store.states import ACTIVE_STATUSES, COMPLETED, FAILED, TIMED_OUT, Origin
from upkeep.store.tables import scheduled_tasks

if TYPE_CHECKING:  # a caller's session works as a connection does: the ORM is not imported for it
    from sqlalchemy.orm import Session

# (session, run id, now, reason) -> the run's status after the cancel
Cancel = Callable[["Session | Connection", int, datetime, str | None], str | None]

RUNS = runs
TASKS = scheduled_tasks
_LOCK = sa.text("SELECT pg_advisory_xact_lock(19, 0)")  # dependency decisions' lock (namespace 19, key 0)

_WITH_AFTER = sa.select(TASKS).where(TASKS.c.after.is_not(None), TASKS.c.enabled.is_(True)).order_by(TASKS.c.id)
_TASK_IDS = sa.select(TASKS.c.name, TASKS.c.id).where(TASKS.c.name.in_(sa.bindparam("names", expanding=True)))
_LAST_CONSUMED = (
    sa.select(RUNS.c.upstream_runs)
    .where(RUNS.c.task_id == sa.bindparam("task_id"), RUNS.c.origin == Origin.DEPENDENCY.value)
    .order_by(RUNS.c.id.desc())
    .limit(1)
)
_ACTIVE = (
    sa.select(RUNS.c.id, RUNS.c.status)
    .where(RUNS.c.task_id == sa.bindparam("task_id"), RUNS.c.status.in_(ACTIVE_STATUSES))
    .order_by(RUNS.c.id)
)


def _final_failure() -> sa.ColumnElement[bool]:
    retry = RUNS.alias("retry")
    retried = sa.exists().where(retry.c.retry_of == RUNS.c.id)
    return sa.and_(RUNS.c.status.in_((FAILED.value, TIMED_OUT.value)), ~retried)


def _qualifying(on: str) -> sa.ColumnElement[bool]:
    """SQL for ``rules.ends_as``: a run whose end satisfies ``on``."""
    succeeded = sa.and_(
        RUNS.c.status == COMPLETED.value,
        sa.or_(RUNS.c.outcome.is_(None), RUNS.c.outcome.in_([o for o in rules.SUCCEEDED_OUTCOMES if o])),
    )
    critical = sa.and_(RUNS.c.status == COMPLETED.value, RUNS.c.outcome == "critical")
    if on == "success":
        return succeeded
    if on == "failure":
        return sa.or_(_final_failure(), critical)
    return sa.or_(RUNS.c.status == COMPLETED.value, _final_failure())


def _latest_qualifying(on: str) -> sa.Select:
    return (
        sa.select(RUNS.c.id, RUNS.c.status, RUNS.c.finished_at)
        .where(
            RUNS.c.task_id == sa.bindparam("task_id"),
            RUNS.c.finished_at >= sa.bindparam("since", type_=RUNS.c.finished_at.type),
            RUNS.c.dry_run.is_(False),
            RUNS.c.origin != Origin.PROCEDURE.value,
            _qualifying(on),
        )
        .order_by(RUNS.c.finished_at.desc(), RUNS.c.id.desc())
        .limit(1)
    )


def start_dependents(s: Session | Connection, run: Any, now: datetime, *, cancel: Cancel) -> list[int]:
    """Create the runs (or skipped runs) of the tasks waiting for ``run``'s task, which just ended
    at ``now``; returns their ids. ``run`` has the finishing UPDATE's returned columns. ``cancel``
    (``sql.cancel_in_session``, which finishes runs and so calls back here) ends the runs a
    ``concurrency: replace`` dependent replaces."""
    ends = rules.ends_as(run.status, run.outcome)
    waiting = [
        task
        for task in s.execute(_WITH_AFTER)
        if run.task_name in task.after.get("tasks", []) and task.after.get("on", "success") in ends
    ]
    postgres = _dialect(s) == "postgresql"
    if waiting and postgres:  # see the module docstring: one deciding transaction at a time
        s.execute(_LOCK)
    created = []
    for task in waiting:
        upstream = _upstream_runs(s, task, run, now)
        if upstream is not None:
            run_id = _start(s, task, run, upstream, now, cancel)
            if run_id is not None:
                created.append(run_id)
    if created and postgres:  # dispatchers sleeping until their next due run look again at commit
        s.execute(sa.text("SELECT pg_notify('upkeep_wake', 'dependency')"))
    return created


def _dialect(s: Session | Connection) -> str:
    return (s.dialect if isinstance(s, Connection) else s.get_bind().dialect).name


def _upstream_runs(s: Session | Connection, task: Any, run: Any, now: datetime) -> list[dict[str, Any]] | None:
    """The upstream runs this end completes (the finishing one first), or None while a listed
    task has no qualifying run within ``within`` newer than the one the last dependent consumed."""
    from upkeep.engine.taskspec import parse_duration

    names = [name for name in task.after["tasks"] if name != run.task_name]
    mine = {"task": run.task_name, "run_id": run.id, "status": str(run.status), "finished_at": now.isoformat()}
    if not names:
        return [mine]
    consumed = {u["task"]: u for u in (s.execute(_LAST_CONSUMED, {"task_id": task.id}).scalar() or [])}
    ids = dict(s.execute(_TASK_IDS, {"names": names}).all())
    since = now - timedelta(seconds=parse_duration(task.after.get("within", "24h")))
    query = _latest_qualifying(task.after.get("on", "success"))
    found = [mine]
    for name in names:
        if name not in ids:
            return None
        latest = s.execute(query, {"task_id": ids[name], "since": since}).first()
        if latest is None:
            return None
        last = consumed.get(name)
        if last is not None and (
            latest.id == last["run_id"] or latest.finished_at < datetime.fromisoformat(last["finished_at"])
        ):
            return None
        found.append(
            {
                "task": name,
                "run_id": latest.id,
                "status": str(latest.status),
                "finished_at": latest.finished_at.isoformat(),
            }
        )
    return found


def _start(
    s: Session | Connection, task: Any, run: Any, upstream: list[dict[str, Any]], now: datetime, cancel: Cancel
) -> int | None:
    """The dependent run, obeying the task's concurrency policy and maintenance windows."""
    active = s.execute(_ACTIVE, {"task_id": task.id}).all()
    trigger, summary = Trigger.DEPENDENCY, None
    if active and task.concurrency == "forbid":
        trigger, summary = Trigger.DEPENDENCY_SKIPPED, rules.forbid_skip_reason(active[0].id, active[0].status)
    due_at = now
    windows = parse_windows(task.windows or [])
    if trigger == Trigger.DEPENDENCY and windows and not window_allows(windows, now):
        due_at = next_window_open(windows, now)
    values = run_values(
        trigger=trigger,
        task=task,
        task_type=task.task_type,
        config=task.config or {},
        due_at=due_at,
        now=now,
        triggered_by=f"after run {run.id} of {run.task_name}"[:200],
        summary=summary,
        trigger_run_id=run.id,
        upstream_runs=upstream,
    )
    insert = insert_once(_dialect(s), ("task_id", "trigger_run_id"), Origin.DEPENDENCY.value)
    run_id = s.execute(insert.values(**values)).scalar()
    if run_id is None:
        return None  # this upstream run already has its dependent run of this task
    if trigger == Trigger.DEPENDENCY and active and task.concurrency == "replace":
        for holder in active:
            cancel(s, holder.id, now, f"replaced by run {run_id}, after run {run.id} of {run.task_name}")
    note = rules.dependency_event(upstream, task.after.get("on", "success"))
    append_event(s, run_id, note.level, note.event, note.message, note.data, now)
    if summary:
        append_event(s, run_id, "warning", "skipped", summary, None, now)
    told = rules.dependent_event(run_id, task.name, skipped=summary is not None)
    append_event(s, run.id, told.level, told.event, told.message, told.data, now)
    if due_at > now:
        message = f"outside the maintenance window; waiting until {due_at.isoformat()}"
        append_event(s, run_id, "info", "window_wait", message, {"due_at": due_at.isoformat()}, now)
    return run_id
