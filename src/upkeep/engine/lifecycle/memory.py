"""The run lifecycle on plain objects: the SQL implementation's operations, without a store.

For fast tests of what drives runs (the reaper, the watchers, retries and locks): the same
transitions, events, task summaries, retries and lock waits as ``sql``, decided by the same
``rules``. One process, one lock: it models what the store guarantees (one conditional
transition at a time), not the store's concurrency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from upkeep.engine.lifecycle import rules
from upkeep.engine.lifecycle.rules import Trigger
from upkeep.engine.lifecycle.types import ClaimedRun, Dispatched, Finish, Handout, LockBusy, WorkerIdentity, _now
from upkeep.store.states import (
    ACTIVE_STATUSES,
    CANCELLED,
    PENDING,
    RUNNING,
    SUBMITTED,
    TERMINAL_STATUSES,
    WAITING,
)

_NOT_STARTED = (PENDING, WAITING, SUBMITTED)


@dataclass
class MemoryEvent:
    seq: int
    ts: datetime
    level: str
    event: str
    message: str
    data: dict | None


@dataclass
class MemoryRun:
    """A run's columns (the ones ``runs`` has), as attributes."""

    id: int
    task_id: int | None
    task_name: str | None
    task_type: str
    requested_type: str | None
    origin: str
    scheduled_for: datetime | None
    due_at: datetime
    status: str
    attempt: int
    retry_of: int | None
    parent_run_id: int | None
    config: dict[str, Any]
    dry_run: bool
    confirm: bool
    queue: str
    timeout_seconds: float | None
    max_retries: int
    locks: list[str]
    triggered_by: str | None
    created_at: datetime
    summary: str | None
    finished_at: datetime | None
    worker: str | None
    submitted_at: datetime | None
    event_count: int
    trigger_run_id: int | None = None
    upstream_runs: list[dict[str, Any]] | None = None
    outcome: str | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    deadline_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    worker_host: str | None = None
    worker_pid: int | None = None
    worker_pgid: int | None = None
    progress: float | None = None
    progress_message: str | None = None
    result: dict | None = None
    error: str | None = None
    blocked_by_run_id: int | None = None
    events: list[MemoryEvent] = field(default_factory=list)


@dataclass
class TaskSummary:
    """A task's policies the lifecycle reads and the ``last_*`` columns it writes."""

    id: int
    retry_backoff_seconds: float = rules.DEFAULT_BACKOFF_SECONDS
    retry_backoff_max_seconds: float = rules.DEFAULT_BACKOFF_MAX_SECONDS
    last_run_id: int | None = None
    last_status: str | None = None
    last_outcome: str | None = None
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_duration_seconds: float | None = None
    consecutive_failures: int = 0


class MemoryLifecycle:
    """``sql``'s operations as methods, the store argument dropped."""

    def __init__(self, clock: Callable[[], datetime] = _now):
        self.clock = clock
        self.runs: dict[int, MemoryRun] = {}
        self.locks: dict[str, int] = {}  # lock name -> the run holding it
        self.tasks: dict[int, TaskSummary] = {}
        self._next_id = 1
        self._mutex = threading.RLock()

    # --- reads ------------------------------------------------------------------------------

    def run(self, run_id: int) -> MemoryRun:
        return self.runs[run_id]

    def in_status(self, *statuses: str) -> list[MemoryRun]:
        return [r for r in self.runs.values() if r.status in statuses]

    def add_task(self, task: Any) -> TaskSummary:
        """Know a task's retry policy (``task`` has the ``scheduled_tasks`` attributes)."""
        summary = TaskSummary(task.id, task.retry_backoff_seconds, task.retry_backoff_max_seconds)
        self.tasks[task.id] = summary
        return summary

    # --- create -----------------------------------------------------------------------------

    def create(
        self,
        trigger: Trigger,
        *,
        task: Any,
        task_type: str,
        config: dict[str, Any],
        due_at: datetime,
        now: datetime | None = None,
        **fields: Any,
    ) -> int | None:
        values = rules.run_values(
            trigger=trigger,
            task=task,
            task_type=task_type,
            config=config,
            due_at=due_at,
            now=now or self.clock(),
            **fields,
        )
        with self._mutex:
            if values["origin"] == "scheduled" and any(
                r.origin == "scheduled" and (r.task_id, r.scheduled_for) == (values["task_id"], values["scheduled_for"])
                for r in self.runs.values()
            ):
                return None  # the slot has its run
            return self._insert(values)

    def _insert(self, values: dict[str, Any]) -> int:
        run_id = self._next_id
        self._next_id += 1
        self.runs[run_id] = MemoryRun(id=run_id, **values)
        return run_id

    # --- dispatch and claim -----------------------------------------------------------------

    def dispatch_due_runs(
        self, *, limit: int, queues: list[str] | None, worker: str, now: datetime | None = None
    ) -> Handout:
        now = now or self.clock()
        with self._mutex:
            due = self._due(queues, now)[:limit]
            for run in due:
                run.status, run.submitted_at, run.worker = SUBMITTED, now, worker
            items = [Dispatched(r.id, r.queue, r.timeout_seconds) for r in due]
            pending = [r.due_at for r in self.runs.values() if r.status == PENDING and _in(r, queues)]
            next_due = now if len(items) == limit else min(pending, default=None)
            return Handout(items, next_due, now)

    def _due(self, queues: list[str] | None, now: datetime) -> list[MemoryRun]:
        due = [r for r in self.runs.values() if r.status == PENDING and r.due_at <= now and _in(r, queues)]
        return sorted(due, key=lambda r: (r.due_at, r.id))

    def dispatch_to(self, run_id: int, label: str) -> bool:
        with self._mutex:
            run = self.runs.get(run_id)
            if run is None or run.status != PENDING:
                return False
            run.status, run.worker, run.submitted_at = SUBMITTED, label, self.clock()
            return True

    def claim(self, run_id: int, worker: WorkerIdentity, *, lock_retry_seconds: float = 2.0) -> ClaimedRun | None:
        now = self.clock()
        with self._mutex:
            run = self.runs.get(run_id)
            if run is None or run.status not in (PENDING, SUBMITTED):
                return None
            if run.cancel_requested_at is not None:
                self._finish(run, CANCELLED, None, None, rules.CANCELLED_BEFORE_START, None, now, ACTIVE_STATUSES)
                return None
            if run.locks:
                try:
                    self._take_locks(run, now)
                except LockBusy as busy:
                    run.status, run.worker, run.blocked_by_run_id = PENDING, None, busy.holder
                    run.due_at = now + timedelta(seconds=lock_retry_seconds)
                    wait = rules.lock_wait_event(busy.lock, busy.holder)
                    if run.progress_message != wait.message:
                        run.progress_message = wait.message
                        self._append(run, wait, now)
                    return None
                run.blocked_by_run_id = None
            run.status, run.started_at, run.heartbeat_at = RUNNING, now, now
            run.worker, run.worker_host, run.worker_pid, run.worker_pgid = (
                worker.label,
                worker.host,
                worker.pid,
                worker.pgid,
            )
            run.progress_message = None
            claimed = rules.claimed_run(run, now)
            run.deadline_at = claimed.deadline_at
            self._append(run, rules.started_event(run.attempt, run.task_type, run.requested_type, worker.label), now)
            return claimed

    def _take_locks(self, run: MemoryRun, now: datetime) -> None:
        take = []
        for name in sorted(set(run.locks)):
            holder = self.locks.get(name)
            if holder is not None and holder != run.id:
                if self.runs[holder].status in ACTIVE_STATUSES:
                    raise LockBusy(name, holder)
                del self.locks[name]  # left by an ended run
            if holder != run.id:
                take.append(name)
        for name in take:
            self.locks[name] = run.id

    # --- while it runs ----------------------------------------------------------------------

    def heartbeat(self, run_id: int) -> bool:
        with self._mutex:
            self.heartbeat_many([run_id])
            run = self.runs.get(run_id)
            return run is not None and run.cancel_requested_at is not None

    def heartbeat_many(self, run_ids: list[int]) -> None:
        now = self.clock()
        with self._mutex:
            for run_id in run_ids:
                run = self.runs.get(run_id)
                if run is not None and run.status == RUNNING:
                    run.heartbeat_at = now

    def cancel_requested(self, run_id: int) -> bool:
        run = self.runs.get(run_id)
        return run is not None and run.cancel_requested_at is not None

    def cancel_requests(self, run_ids: list[int]) -> dict[int, datetime]:
        runs = [self.runs[i] for i in run_ids if i in self.runs]
        return {r.id: r.cancel_requested_at for r in runs if r.cancel_requested_at is not None}

    def progress(self, run_id: int, fraction: float | None, message: str | None) -> None:
        with self._mutex:
            run = self.runs[run_id]
            run.heartbeat_at = self.clock()
            if fraction is not None:
                run.progress = fraction
            if message is not None:
                run.progress_message = message[: rules.MAX_PROGRESS_MESSAGE]

    def event(self, run_id: int, level: str, name: str, message: str, data: dict | None) -> None:
        with self._mutex:
            self._append(self.runs[run_id], rules.Event(level, name, message, data), self.clock())

    # --- the end ----------------------------------------------------------------------------

    def finish(
        self,
        run_id: int,
        status: str,
        *,
        outcome: str | None = None,
        result: dict | None = None,
        summary: str | None = None,
        error: str | None = None,
        expect: tuple[str, ...] = (RUNNING,),
    ) -> bool:
        with self._mutex:
            run = self.runs.get(run_id)
            if run is None:
                return False
            return self._finish(run, status, outcome, result, summary, error, self.clock(), expect)

    def finish_many(self, endings: list[Finish]) -> list[bool]:
        return [self._finish_one(e) for e in endings]

    def _finish_one(self, e: Finish) -> bool:
        with self._mutex:
            run = self.runs.get(e.run_id)
            if run is None:
                return False
            ended = e.finished_at or self.clock()
            for kept in e.events:
                note = rules.Event(kept["level"], kept["event"], kept["message"], kept.get("data"))
                self._append(run, note, datetime.fromisoformat(kept["ts"]))
            if self._finish(run, e.status, e.outcome, e.result, e.summary, e.error, ended, (RUNNING,)):
                return True
            if e.finished_at is not None:
                self._append(run, rules.late_result_event(e.status, e.outcome, e.summary, e.error, ended), self.clock())
            return False

    def _finish(
        self,
        run: MemoryRun,
        status: str,
        outcome: str | None,
        result: dict | None,
        summary: str | None,
        error: str | None,
        now: datetime,
        expect: tuple[str, ...],
    ) -> bool:
        if run.status not in expect:
            return False
        if status == WAITING:  # the handler asked to wait: see ``sql._park``
            return self._park(run, summary or "waiting", result, now)
        for name, value in rules.finish_values(status, outcome, result, summary, error, now).items():
            setattr(run, name, value)
        if run.locks:
            self._release_locks(run.id, now)
        self._append(run, rules.finished_event(status, outcome, summary, error), now)
        retrying = rules.retries(status, run.attempt, run.max_retries, run.cancel_requested_at is not None)
        if retrying:
            self._schedule_retry(run, now)
        if rules.summarises(run.task_id, run.status, run.origin) and run.task_id in self.tasks:
            task = self.tasks[run.task_id]
            for name, value in rules.task_summary(run.id, run.status, run.outcome, run.started_at, now).items():
                setattr(task, name, value)
            if rules.counts_as_failure(run.status, retrying):
                task.consecutive_failures += 1
        return True

    def _park(self, run: MemoryRun, reason: str, result: dict | None, now: datetime) -> bool:
        if run.status != RUNNING:
            return False
        if run.deadline_at is not None:
            run.timeout_seconds = rules.remaining_timeout(run.deadline_at, now)
        run.status, run.worker, run.worker_host, run.worker_pid, run.worker_pgid = WAITING, None, None, None, None
        run.heartbeat_at, run.deadline_at = None, None
        run.progress_message = reason[: rules.MAX_PROGRESS_MESSAGE]
        if result is not None:
            run.result = result
        if run.locks:
            self._release_locks(run.id, now)
        self._append(run, rules.waiting_event(reason), now)
        return True

    def _release_locks(self, run_id: int, now: datetime) -> None:
        held = [name for name, holder in self.locks.items() if holder == run_id]
        for name in held:
            del self.locks[name]
        if held:
            for waiter in self.runs.values():
                if waiter.status == PENDING and waiter.blocked_by_run_id == run_id:
                    waiter.due_at, waiter.blocked_by_run_id = now, None

    def _schedule_retry(self, run: MemoryRun, now: datetime) -> None:
        task = self.tasks.get(run.task_id) if run.task_id is not None else None
        base = task.retry_backoff_seconds if task else rules.DEFAULT_BACKOFF_SECONDS
        cap = task.retry_backoff_max_seconds if task else rules.DEFAULT_BACKOFF_MAX_SECONDS
        delay = rules.backoff_seconds(run.attempt, base, cap)
        retry_id = self._insert(
            rules.retry_values(run, now, delay)
            | dict(
                locks=list(run.locks),
                scheduled_for=None,
                summary=None,
                finished_at=None,
                worker=None,
                submitted_at=None,
            )
        )
        self._append(run, rules.retry_event(run.attempt + 1, retry_id, delay), now)

    def cancel(self, run_id: int, reason: str | None = None) -> str | None:
        now = self.clock()
        with self._mutex:
            run = self.runs.get(run_id)
            if run is None:
                return None
            if run.status in _NOT_STARTED:
                run.cancel_requested_at = now
                if reason is None:
                    self._finish(run, CANCELLED, None, None, rules.CANCELLED_BEFORE_START, None, now, _NOT_STARTED)
                else:
                    self._finish(run, CANCELLED, None, None, None, reason, now, _NOT_STARTED)
                return CANCELLED
            if run.status == RUNNING:
                if run.cancel_requested_at is None:
                    run.cancel_requested_at = now
                    self._append(run, rules.cancel_event(reason), now)
                return RUNNING
            return run.status

    def requeue(self, run_id: int) -> bool:
        with self._mutex:
            run = self.runs.get(run_id)
            if run is None or run.status != SUBMITTED:
                return False
            run.status, run.worker = PENDING, None
            return True

    def recover(self, run_id: int, reason: str) -> bool:
        if self.finish(run_id, rules.RECOVERED_STATUS, error=reason, expect=(RUNNING,)):
            return True
        return self.requeue(run_id)

    def wait(self, run_id: int, reason: str) -> bool:
        return self._move(run_id, PENDING, WAITING, rules.waiting_event(reason), due_now=False)

    def resume(self, run_id: int, reason: str) -> bool:
        return self._move(run_id, WAITING, PENDING, rules.resumed_event(reason), due_now=True)

    def _move(self, run_id: int, before: str, after: str, note: rules.Event, *, due_now: bool) -> bool:
        now = self.clock()
        with self._mutex:
            run = self.runs.get(run_id)
            if run is None or run.status != before:
                return False
            run.status = after
            if due_now:
                run.due_at = now
            self._append(run, note, now)
            return True

    def delete_ended(self, run_ids: list[int]) -> None:
        with self._mutex:
            for run_id in run_ids:
                if run_id in self.runs and self.runs[run_id].status in TERMINAL_STATUSES:
                    del self.runs[run_id]

    def _append(self, run: MemoryRun, note: rules.Event, now: datetime) -> None:
        run.event_count += 1
        run.events.append(MemoryEvent(run.event_count, now, note.level, note.event, note.message[:8000], note.data))


def _in(run: MemoryRun, queues: list[str] | None) -> bool:
    return not queues or run.queue in queues
