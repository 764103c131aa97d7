"""The scheduler: one tick claims due tasks and creates their runs in one transaction.

- Exactly one scheduled run per (task, slot): a unique index over scheduled runs, and on
  PostgreSQL due tasks are claimed with ``FOR UPDATE SKIP LOCKED`` so several schedulers share work.
- ``next_run_at`` is always the next *slot* of the schedule after now, never "now + period".
- Misfires: a slot more than ``misfire_grace_seconds`` late is a misfire. ``skip`` records the
  misfired slots as one skipped run and fires only slots within grace (so a first start never fires
  a backlog); ``run_once`` coalesces all due slots into one run for the latest; ``run_all`` fires
  every due slot.
- Concurrency: ``forbid`` turns a slot into a ``skipped`` run that says why while a run of the task
  is active; ``replace`` cancels the active run; ``allow`` runs both.
- Windows: a slot outside the task's maintenance windows waits (``due_at``) for the next window;
  while one run waits, further slots are skipped. Jitter delays ``due_at`` by up to N seconds.
- A task whose planning raises (a value no bound caught, a schedule that no longer parses) gets a
  failed run saying why (``Trigger.PLANNING_FAILED``), which alerts as any failure does, and the
  other tasks keep their slots.
- The loop sleeps until the next due slot or a change (see ``wakeup``), and runs the reaper.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from upkeep.clock import Clock
from upkeep.engine import lifecycle
from upkeep.engine.background import Background
from upkeep.engine.lifecycle import Trigger, append_event
from upkeep.engine.schedules import schedule_of
from upkeep.engine.wakeup import Notifier, notify_hosts, wake_local
from upkeep.engine.windows import next_window_open, parse_windows, window_allows
from upkeep.store.db import Store
from upkeep.store.models import ACTIVE_STATUSES, PENDING, SKIPPED, Instance, Run, ScheduledTask

log = logging.getLogger(__name__)
MAX_RUN_ALL = 1000
# On PostgreSQL, when slots fall due back to back (thousands of tasks a minute), a tick waits
# until this long after the previous one began, so it takes several slots at once: the per-tick
# round trips are most of a tick's cost. On SQLite a tick is cheap and the wait would only add
# latency, so it has none. A slot due after a quiet spell still fires at once. (The measurements:
# benchmarks/README.md.)
MIN_TICK_INTERVAL = 0.02
# when a task's schedule itself cannot be read, the scheduler tries it again this much later
UNPLANNABLE_RETRY = timedelta(minutes=5)


@dataclass
class TickResult:
    created: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    tasks: int = 0
    next_due: datetime | None = None
    as_of: datetime | None = None


@dataclass
class _Plan:
    """What one tick writes: built in Python first, then written in a few statements."""

    now: datetime
    rows: list[dict] = field(default_factory=list)
    notes: list[tuple[int, datetime, str, str, str, dict | None]] = field(default_factory=list)
    cancels: list[tuple[int, str]] = field(default_factory=list)
    next_slots: list[dict] = field(default_factory=list)

    def add(
        self,
        task: ScheduledTask,
        slot: datetime,
        due_at: datetime,
        *,
        trigger: Trigger = Trigger.SCHEDULED,
        summary: str | None = None,
        error: str | None = None,
    ) -> None:
        self.rows.append(
            lifecycle.run_values(
                trigger=trigger,
                task=task,
                task_type=task.task_type,
                config=task.config,
                scheduled_for=slot,
                due_at=due_at,
                summary=summary,
                error=error,
                triggered_by="scheduler",
                now=self.now,
            )
        )

    def replace_planned(self, task: ScheduledTask, reason: str) -> None:
        """The run this tick planned for an earlier slot of ``task`` becomes a skipped run saying why."""
        for row in [r for r in self.rows if r["task_id"] == task.id and r["status"] == PENDING]:
            self.rows.remove(row)
            self.add(task, row["scheduled_for"], row["scheduled_for"], trigger=Trigger.SKIPPED, summary=reason)

    def mark(self) -> tuple[int, int, int, int]:
        return len(self.rows), len(self.notes), len(self.cancels), len(self.next_slots)

    def undo(self, mark: tuple[int, int, int, int]) -> None:
        """Forget what was planned since ``mark`` (a task whose planning failed half-way)."""
        rows, notes, cancels, next_slots = mark
        del self.rows[rows:], self.notes[notes:], self.cancels[cancels:], self.next_slots[next_slots:]

    def note(
        self, task: ScheduledTask, slot: datetime, level: str, event: str, message: str, data: dict | None = None
    ) -> None:
        self.notes.append((task.id, slot, level, event, message, data))


TASKS = ScheduledTask.__table__
_DUE_TASKS = (
    sa.select(TASKS)
    .where(TASKS.c.enabled.is_(True), TASKS.c.next_run_at <= sa.bindparam("now", type_=TASKS.c.next_run_at.type))
    .order_by(TASKS.c.next_run_at)
    .limit(sa.bindparam("limit"))
)
_NEXT_DUE = sa.select(sa.func.min(TASKS.c.next_run_at)).where(TASKS.c.enabled.is_(True))
_SET_NEXT_SLOT = (
    sa.update(TASKS)
    .where(TASKS.c.id == sa.bindparam("task_id"))
    .values(next_run_at=sa.bindparam("next_slot", type_=TASKS.c.next_run_at.type))
)


def tick(store: Store, now: datetime, *, limit: int = 500, announce_to: Path | None = None) -> TickResult:
    """Create the runs of every task that is due at ``now``, in one transaction.

    Core statements on a bare connection: a tick runs for every slot of every task, so at
    thousands of tasks a minute the ORM's per-object work would be most of its cost. With
    ``announce_to`` (a data directory), sleepers on other hosts are told of new runs at commit.
    """
    result = TickResult(as_of=now)
    query = _DUE_TASKS.with_for_update(skip_locked=True) if store.is_postgres else _DUE_TASKS
    with store.write_connection() as c:
        tasks = c.execute(query, {"now": now, "limit": limit}).all()
        result.tasks = len(tasks)
        if tasks:
            active = _active_runs(c, [t.id for t in tasks])
            plan = _Plan(now=now)
            for task in tasks:
                _plan_contained(task, now, active.get(task.id, []), plan)
            _write(c, plan, result)
            if result.created and announce_to is not None:
                notify_hosts(c, announce_to)
        result.next_due = c.execute(_NEXT_DUE).scalar()
    return result


_ACTIVE_RUNS = sa.select(Run.task_id, Run.id, Run.status).where(
    Run.task_id.in_(sa.bindparam("task_ids", expanding=True)), Run.status.in_(ACTIVE_STATUSES)
)


def _active_runs(s: Session | Connection, task_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    out: dict[int, list[tuple[int, str]]] = {}
    for task_id, run_id, status in s.execute(_ACTIVE_RUNS, {"task_ids": task_ids}):
        out.setdefault(task_id, []).append((run_id, status))
    return out


def _plan_contained(task: ScheduledTask, now: datetime, active: list[tuple[int | None, str]], plan: _Plan) -> None:
    """Plan one task; if that raises, the task gets a failed run saying why and the tick goes on."""
    mark = plan.mark()
    try:
        _plan_task(task, now, active, plan)
    except Exception as exc:
        plan.undo(mark)
        reason = (
            f"the scheduler could not plan this task's slot: {type(exc).__name__}: {exc}; "
            "fix the task's schedule or settings (upkeep apply and the API refuse such values today)"
        )
        log.warning("task %s (id %s): %s", task.name, task.id, reason)
        slot = task.next_run_at
        plan.add(task, slot, now, trigger=Trigger.PLANNING_FAILED, summary=reason, error=reason)
        plan.note(task, slot, "error", "planning_failed", reason)
        try:
            next_slot = schedule_of(task).next_after(now)
        except Exception:
            next_slot = now + UNPLANNABLE_RETRY
        plan.next_slots.append({"task_id": task.id, "next_slot": next_slot})


def _plan_task(task: ScheduledTask, now: datetime, active: list[tuple[int | None, str]], plan: _Plan) -> None:
    schedule = schedule_of(task)
    first = task.next_run_at
    due = [first, *schedule.slots_between(first, now, limit=MAX_RUN_ALL)] if first <= now else []
    grace = timedelta(seconds=task.misfire_grace_seconds or 0)
    if task.misfire == "run_all":
        fire, missed = due, []
    elif task.misfire == "run_once":
        fire, missed = due[-1:], due[:-1]
    else:
        fire = [slot for slot in due if now - slot <= grace]
        missed = [slot for slot in due if now - slot > grace]
    if missed and task.misfire == "skip":
        reason = (
            f"missed {len(missed)} slot(s) from {missed[0].isoformat()} to {missed[-1].isoformat()}: "
            f"more than {task.misfire_grace_seconds}s late (misfire policy skip)"
        )
        _plan_skip(task, missed[-1], reason, plan)
    for slot in fire:
        if _plan_slot(task, slot, now, active, plan) and task.misfire == "run_once" and missed:
            plan.note(
                task,
                slot,
                "info",
                "misfire",
                f"coalesced {len(missed)} earlier missed slot(s) into this run (misfire policy run_once)",
                {"missed": len(missed)},
            )
    plan.next_slots.append({"task_id": task.id, "next_slot": schedule.next_after(now)})


def _plan_skip(task: ScheduledTask, slot: datetime, reason: str, plan: _Plan) -> None:
    plan.add(task, slot, slot, trigger=Trigger.SKIPPED, summary=reason)
    plan.note(task, slot, "warning", "skipped", reason)


def _plan_slot(
    task: ScheduledTask, slot: datetime, now: datetime, active: list[tuple[int | None, str]], plan: _Plan
) -> bool:
    """Plan the run of one slot (or a skipped run saying why); True when a run will start.

    ``active`` holds the task's active runs, and ``(None, PENDING)`` for a run this tick planned
    for an earlier slot (it has no id until the tick writes it)."""
    windows = parse_windows(task.windows or [])
    outside_window = bool(windows) and not window_allows(windows, max(slot, now))
    if active and task.concurrency == "forbid":
        holder_id, holder_status = active[0]
        holder = f"run {holder_id}" if holder_id is not None else "the run of an earlier slot"
        reason = f"skipped: {holder} of this task is still {holder_status} (concurrency forbid)"
        if outside_window and holder_status == PENDING:
            reason = f"skipped: {holder} is already waiting for the maintenance window"
        _plan_skip(task, slot, reason, plan)
        return False
    if active and task.concurrency == "replace":
        reason = f"replaced by the run of slot {slot.isoformat()}"
        for run_id, _status in active:
            if run_id is not None:
                plan.cancels.append((run_id, reason))
        plan.replace_planned(task, reason)
        active.clear()
    due_at = slot if task.misfire == "run_all" else max(slot, now)
    if outside_window:
        due_at = next_window_open(windows, max(slot, now))
        plan.note(
            task,
            slot,
            "info",
            "window_wait",
            f"slot {slot.isoformat()} is outside the maintenance window; waiting until {due_at.isoformat()}",
            {"due_at": due_at.isoformat()},
        )
    if task.jitter_seconds:
        due_at = due_at + timedelta(seconds=random.uniform(0, task.jitter_seconds))
    plan.add(task, slot, due_at)
    active.append((None, PENDING))  # later slots of this tick see this run as active
    return True


def _write(s: Session | Connection, plan: _Plan, result: TickResult) -> None:
    for run_id, reason in plan.cancels:
        lifecycle.cancel_in_session(s, run_id, plan.now, reason)
    created = lifecycle.insert_scheduled_runs(s, plan.rows)  # a slot another scheduler made is left alone
    for row in plan.rows:
        run_id = created.get((row["task_id"], row["scheduled_for"]))
        if run_id is not None and row["status"] in (PENDING, SKIPPED):  # a planning failure is neither
            (result.created if row["status"] == PENDING else result.skipped).append(run_id)
    for task_id, slot, level, event, message, data in plan.notes:
        run_id = created.get((task_id, slot))
        if run_id is not None:
            append_event(s, run_id, level, event, message, data)
    if plan.next_slots:
        s.execute(_SET_NEXT_SLOT, plan.next_slots)


class Scheduler(Background):
    """The scheduler loop: tick, sleep until the next due slot or a change, reap stale runs."""

    def __init__(
        self,
        store: Store,
        settings,
        *,
        clock: Clock | None = None,
        instance_id: str | None = None,
        chores: Sequence[Callable[[Store, datetime], Any]] = (),
    ):
        """``chores`` run with the reaper, e.g. ``people.approvals.expire`` (the runtime passes it):
        cancel the procedure runs whose approval step was not decided in time."""
        from upkeep.engine.reaper import Reaper

        self.store = store
        self.settings = settings
        self.clock = clock or Clock()
        self.notifier = Notifier(store, settings.resolved_data_dir)
        self.reaper = Reaper(store, settings)
        self.instance_id = instance_id or f"scheduler:{lifecycle.HOSTNAME}:{__import__('os').getpid()}"
        super().__init__()
        self.chores = tuple(chores)
        self._last_recorded = -1e9
        # for /healthz: when the last tick succeeded (monotonic; the start counts as one) and the
        # error of the last tick if it failed since
        self.last_tick = time.monotonic()
        self.last_error: str | None = None

    thread_name = "scheduler"

    def wake(self) -> None:
        self.notifier.wake()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self.notifier.close()

    def run_once(self) -> TickResult:
        now = self.clock.now()
        data_dir = self.settings.resolved_data_dir
        result = tick(self.store, now, announce_to=data_dir)
        self.last_tick, self.last_error = time.monotonic(), None
        self._record_tick(now)
        if result.created:
            wake_local(data_dir, exclude=self.notifier)
        return result

    def _chores(self) -> None:
        for chore in self.chores:
            chore(self.store, self.clock.now())

    def run(self) -> None:
        next_reap = 0.0
        while not self._stop.is_set():
            try:
                began = time.monotonic()
                result = self.run_once()
                if time.monotonic() >= next_reap:
                    self.reaper.reap()
                    self._chores()
                    next_reap = time.monotonic() + min(self.settings.heartbeat_seconds, 5.0)
                if result.tasks >= 500:
                    continue  # more due work than one tick takes
                sleep = lifecycle.seconds_until(
                    result.next_due, result.as_of, cap=self.settings.scheduler_max_sleep_seconds, now=self.clock.now()
                )
                sleep = min(sleep, max(0.0, next_reap - time.monotonic()))
                if sleep < MIN_TICK_INTERVAL and self.store.is_postgres:
                    sleep = max(sleep, MIN_TICK_INTERVAL - (time.monotonic() - began))
                if sleep > 0:
                    self.notifier.wait(sleep)
            except Exception as exc:
                self.last_error = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
                log.exception("scheduler tick failed; retrying in 1s")
                self.reaper.disconnected()
                self._stop.wait(1.0)

    def health_problem(self) -> str | None:
        """Why this scheduler is not healthy (its last tick failed, or none for too long), or None."""
        if self.last_error is not None:
            return f"scheduler: its last tick failed: {self.last_error}"
        quiet = time.monotonic() - self.last_tick
        limit = 2 * self.settings.scheduler_max_sleep_seconds + 10
        if quiet > limit:
            return f"scheduler: no tick for {quiet:.0f}s (it ticks at least every {limit:.0f}s)"
        return None

    def _record_tick(self, now: datetime) -> None:
        if time.monotonic() - self._last_recorded < 5.0:
            return  # liveness, not a log: at most every 5 s
        self._last_recorded = time.monotonic()
        record_instance(self.store, self.instance_id, "scheduler", now)


def record_instance(
    store: Store,
    instance_id: str,
    role: str,
    now: datetime,
    queues: list[str] | None = None,
    info: dict | None = None,
) -> None:
    import os

    for attempt in (1, 2):
        try:
            with store.write() as s:
                row = s.get(Instance, instance_id)
                if row is None:
                    s.add(
                        Instance(
                            id=instance_id,
                            role=role,
                            host=lifecycle.HOSTNAME,
                            pid=os.getpid(),
                            queues=queues or [],
                            started_at=now,
                            last_seen_at=now,
                            info=info or {},
                        )
                    )
                else:
                    row.last_seen_at = now
                    if info is not None:
                        row.info = info
            return
        except sa.exc.IntegrityError:
            # two threads of one process (``upkeep worker`` and its executor's loop) recorded the
            # same instance at once on PostgreSQL: the row is there now, the second try updates it
            if attempt == 2:
                raise
