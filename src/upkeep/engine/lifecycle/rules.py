"""The rules of each lifecycle operation, as plain functions both implementations call.

What event a transition writes (level, name, message, data), what a finished run leaves in its
task's summary, when a failure is retried and after how long: written once here, so the SQL and
the in-memory lifecycle cannot drift apart (``tests/engine/test_lifecycle_equivalence.py`` drives
both with the same operations and compares).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from upkeep.engine.lifecycle.types import ClaimedRun
from upkeep.store.states import (
    COMPLETED,
    FAILED,
    PENDING,
    SKIPPED,
    SUBMITTED,
    TIMED_OUT,
    WAITING,
    Origin,
)

MAX_SUMMARY = 2000
MAX_ERROR = 8000
MAX_PROGRESS_MESSAGE = 1000
DEFAULT_BACKOFF_SECONDS = 30.0
DEFAULT_BACKOFF_MAX_SECONDS = 3600.0
CANCELLED_BEFORE_START = "cancelled before it started"


class Trigger(StrEnum):
    """Why a run is created: ``create`` turns it into the run's origin and first status.

    ``skipped`` records a slot the scheduler refused (a terminal run that says why);
    ``planning_failed`` a slot the scheduler could not plan (a failed run that says why, so it
    alerts as a failure does). Later
    triggers (a dependency that finished, an approval given) add members here and a row in
    ``ORIGIN_AND_STATUS``.
    """

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    TIER = "tier"
    RETRY = "retry"
    SKIPPED = "skipped"
    PLANNING_FAILED = "planning_failed"
    WAITING = "waiting"  # created held (an approval step, a checklist): only ``resume`` starts it
    DEPENDENCY = "dependency"  # the runs named in the task's ``after:`` ended (see ``dependencies``)
    DEPENDENCY_SKIPPED = "dependency_skipped"  # ... but its concurrency policy refused the run


ORIGIN_AND_STATUS: dict[Trigger, tuple[str, str]] = {
    Trigger.SCHEDULED: (Origin.SCHEDULED.value, PENDING.value),
    Trigger.MANUAL: (Origin.MANUAL.value, PENDING.value),
    Trigger.TIER: (Origin.TIER.value, PENDING.value),
    Trigger.RETRY: (Origin.RETRY.value, PENDING.value),
    Trigger.SKIPPED: (Origin.SCHEDULED.value, SKIPPED.value),
    Trigger.PLANNING_FAILED: (Origin.SCHEDULED.value, FAILED.value),
    Trigger.WAITING: (Origin.MANUAL.value, WAITING.value),
    Trigger.DEPENDENCY: (Origin.DEPENDENCY.value, PENDING.value),
    Trigger.DEPENDENCY_SKIPPED: (Origin.DEPENDENCY.value, SKIPPED.value),
}


def retry_values(run: Any, now: datetime, delay: float) -> dict[str, Any]:
    """The column values of the run that retries ``run`` in ``delay`` seconds: attempt + 1, the
    same task, config, flags and policies (a retry is a new run pointing at the run it retries)."""
    return dict(
        task_id=run.task_id,
        task_name=run.task_name,
        task_type=run.task_type,
        requested_type=run.requested_type,
        origin=ORIGIN_AND_STATUS[Trigger.RETRY][0],
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


def run_values(
    *,
    trigger: Trigger,
    task: Any,
    task_type: str,
    config: dict[str, Any],
    due_at: datetime,
    now: datetime,
    scheduled_for: datetime | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    triggered_by: str | None = None,
    requested_type: str | None = None,
    summary: str | None = None,
    error: str | None = None,
    timeout_seconds: float | None = None,
    reserved_by: str | None = None,
    trigger_run_id: int | None = None,
    upstream_runs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The column values of a new run (the task's policies are copied onto the run).

    ``timeout_seconds`` overrides the task's; ``reserved_by`` creates the run already submitted
    to that executor (``upkeep run`` executes it in the foreground).
    """
    origin, status = ORIGIN_AND_STATUS[trigger]
    if reserved_by is not None:
        status = SUBMITTED
    if timeout_seconds is None and task is not None:
        timeout_seconds = task.timeout_seconds
    return dict(
        task_id=task.id if task else None,
        task_name=task.name if task else None,
        task_type=task_type,
        requested_type=requested_type,
        origin=origin,
        scheduled_for=scheduled_for,
        due_at=due_at,
        status=status,
        attempt=1,
        retry_of=None,
        parent_run_id=None,
        config=config,
        dry_run=dry_run,
        confirm=confirm,
        queue=task.queue if task else "default",
        timeout_seconds=timeout_seconds,
        max_retries=task.max_retries if task else 0,
        locks=list(task.locks) if task else [],
        triggered_by=triggered_by,
        created_at=now,
        summary=summary,
        error=error,
        finished_at=now if status in (SKIPPED, FAILED) else None,  # created terminal
        worker=reserved_by,
        submitted_at=now if reserved_by is not None else None,
        event_count=0,
        trigger_run_id=trigger_run_id,
        upstream_runs=upstream_runs,
    )


@dataclass(frozen=True)
class Event:
    level: str
    event: str
    message: str
    data: dict[str, Any] | None = None


def started_event(attempt: int, task_type: str, requested_type: str | None, worker_label: str) -> Event:
    note = f" (requested as alias {requested_type})" if requested_type else ""
    return Event(
        "info",
        "started",
        f"attempt {attempt} of {task_type}{note} on {worker_label}",
        {"worker": worker_label, "attempt": attempt, "alias": requested_type},
    )


def finish_values(
    status: str, outcome: str | None, result: dict | None, summary: str | None, error: str | None, now: datetime
) -> dict[str, Any]:
    """The columns ``finish`` sets (fields not given are left as they are)."""
    values: dict[str, Any] = {"status": status, "finished_at": now, "outcome": outcome}
    if result is not None:
        values["result"] = result
    if summary is not None:
        values["summary"] = summary[:MAX_SUMMARY]
    if error is not None:
        values["error"] = error[:MAX_ERROR]
    if status == COMPLETED:
        values["progress"] = 1.0
    return values


def finished_event(status: str, outcome: str | None, summary: str | None, error: str | None) -> Event:
    level = "info" if status == COMPLETED else "error" if status in (FAILED, TIMED_OUT) else "warning"
    message = f"{status}: {summary or error or status}"[:MAX_SUMMARY]
    return Event(level, "finished", message, {"status": str(status), "outcome": outcome})


def late_result_event(
    status: str, outcome: str | None, summary: str | None, error: str | None, ended: datetime
) -> Event:
    """A result that arrived after the run had ended (recovered while its worker kept the result
    through a store outage): the first end stands, the result is told."""
    detail = summary or error
    message = (
        f"the worker's result arrived after the run had ended, which stands: the handler ended "
        f"{status} at {ended.isoformat()}" + (f": {detail}" if detail else "")
    )
    data = {
        "status": str(status),
        "outcome": outcome,
        "summary": summary,
        "error": error,
        "ended_at": ended.isoformat(),
    }
    return Event("warning", "late_result", message[:MAX_SUMMARY], data)


def retries(status: str, attempt: int, max_retries: int, cancel_requested: bool) -> bool:
    """A failed or timed-out attempt is retried while attempts remain, unless someone cancelled it."""
    return status in (FAILED, TIMED_OUT) and attempt <= max_retries and not cancel_requested


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff after attempt ``attempt`` (1-based): base, 2·base, 4·base, ... capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def retry_event(next_attempt: int, retry_id: int, delay: float) -> Event:
    return Event(
        "info",
        "retry_scheduled",
        f"attempt {next_attempt} as run {retry_id} in {delay:g}s",
        {"retry_run_id": retry_id, "delay_seconds": delay},
    )


def summarises(task_id: int | None, status: str, origin: str) -> bool:
    """Whether a finished run updates its task's summary (a procedure's steps and skips do not)."""
    return task_id is not None and status != SKIPPED and origin != Origin.PROCEDURE


def task_summary(
    run_id: int, status: str, outcome: str | None, started_at: datetime | None, now: datetime
) -> dict[str, Any]:
    """The task's ``last_*`` columns after one of its runs ended (``consecutive_failures`` apart)."""
    values: dict[str, Any] = {
        "last_run_id": run_id,
        "last_status": str(status),
        "last_outcome": outcome,
        "last_run_at": started_at or now,
        "last_duration_seconds": (now - started_at).total_seconds() if started_at else None,
    }
    if status == COMPLETED:
        values["consecutive_failures"] = 0
        if outcome in (None, "ok", "warning"):
            values["last_success_at"] = now
    return values


def counts_as_failure(status: str, retrying: bool) -> bool:
    """A failure counts towards ``consecutive_failures`` once its retries are spent."""
    return status in (FAILED, TIMED_OUT) and not retrying


def lock_wait_message(lock: str, holder: int) -> str:
    return f"waiting for lock {lock} held by run {holder}"


def lock_wait_event(lock: str, holder: int) -> Event:
    return Event("info", "lock_wait", lock_wait_message(lock, holder), {"lock": lock, "holder": holder})


CANCEL_REQUESTED = Event("warning", "cancel_requested", "cancel requested")


def cancel_event(reason: str | None) -> Event:
    return Event("warning", "cancel_requested", reason or CANCEL_REQUESTED.message)


def waiting_event(reason: str) -> Event:
    return Event("info", "waiting", reason)


def remaining_timeout(deadline: datetime, now: datetime) -> float:
    """What is left of a run's timeout when it parks (at least a second: it resumed to do work)."""
    return max(1.0, (deadline - now).total_seconds())


def resumed_event(reason: str) -> Event:
    return Event("info", "resumed", reason)


# --- dependencies (a task's ``after:``) ---------------------------------------------------------

SUCCEEDED_OUTCOMES = (None, "ok", "warning")


def ends_as(status: str, outcome: str | None) -> set[str]:
    """Which ``after.on`` values a final run ending this way satisfies (a retried attempt is not final)."""
    if status == COMPLETED and outcome in SUCCEEDED_OUTCOMES:
        return {"success", "completion"}
    if status in (FAILED, TIMED_OUT) or (status == COMPLETED and outcome == "critical"):
        return {"failure", "completion"}
    return set()  # cancelled, skipped


def triggers_dependents(status: str, origin: str, dry_run: bool, retrying: bool) -> bool:
    """Whether a finished run may start the tasks that wait for its task: a dry run, a procedure's
    step and an attempt that is retried do not."""
    return not dry_run and not retrying and origin != Origin.PROCEDURE and status in (COMPLETED, FAILED, TIMED_OUT)


def dependency_event(upstream: list[dict[str, Any]], on: str) -> Event:
    names = ", ".join(f"run {u['run_id']} of {u['task']}" for u in upstream)
    return Event("info", "dependency", f"after {names} ({on})", {"upstream_runs": upstream, "on": on})


def dependent_event(run_id: int, task: str, skipped: bool) -> Event:
    what = "skipped run" if skipped else "run"
    return Event("info", "dependent", f"{what} {run_id} of {task} follows this run", {"run_id": run_id, "task": task})


def forbid_skip_reason(holder_id: int, holder_status: str) -> str:
    return f"skipped: run {holder_id} of this task is still {holder_status} (concurrency forbid)"


# a run whose worker is gone fails (and is retried while attempts remain)
RECOVERED_STATUS = FAILED


def claimed_run(row: Any, now: datetime) -> ClaimedRun:
    """What a worker gets for the run it claimed at ``now``, from a stored row or the memory lifecycle's run:
    its deadline counts from the claim."""
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
