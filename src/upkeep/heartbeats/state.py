"""What a monitor's columns mean at a given time: pure functions, shared by the ping endpoint, the
alerter, the views and /metrics, so they all agree on "overdue".

Statuses: ``paused``; ``running`` (a /start whose end is not due yet); ``down`` (a /start past
its timeout, a missing ping past slot + grace, or a last run that failed); ``late`` (past the
expected slot, within grace); ``new`` (no run reported yet, first slot not yet due); ``up``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from upkeep.engine.schedules import Schedule
from upkeep.heartbeats.spec import format_duration, monitor_schedule

PAUSED, RUNNING, DOWN, LATE, NEW, UP = "paused", "running", "down", "late", "new", "up"
STATUSES = (PAUSED, RUNNING, DOWN, LATE, NEW, UP)
END_KINDS = ("success", "fail", "timeout")  # pings that end a run (and that the alerter evaluates)
ALERT_PREFIX = "heartbeat/"  # alert_state and silences name a monitor "heartbeat/NAME" ('/' is never in a task name)


def alert_name(name: str) -> str:
    return f"{ALERT_PREFIX}{name}"


@lru_cache(maxsize=4096)
def schedule_for(expression: str, timezone: str) -> Schedule:
    return monitor_schedule(expression, timezone)


def expectation(expression: str, timezone: str, grace_seconds: float, after: datetime) -> tuple[datetime, datetime]:
    """When the next ping is due after ``after``, and when it is overdue (due + grace)."""
    schedule = schedule_for(expression, timezone)
    if schedule.kind == "every":
        assert schedule.every is not None
        due = after + schedule.every
    else:
        due = schedule.next_after(after)
        assert due is not None  # cron schedules are recurring
    return due, due + timedelta(seconds=grace_seconds)


def effective_timeout(timeout_seconds: float | None, grace_seconds: float) -> float:
    return timeout_seconds or grace_seconds


def last_run_failed(row: Any) -> bool:
    failed, succeeded = row.last_failure_at, row.last_success_at
    return failed is not None and (succeeded is None or failed > succeeded)


def status_of(row: Any, now: datetime) -> tuple[str, str]:
    """``(status, reason)`` of a monitor row (anything with the heartbeats columns)."""
    if row.paused:
        return PAUSED, "paused: pings are recorded, nothing alerts"
    if row.started_at is not None and row.start_deadline_at is not None:
        if now <= row.start_deadline_at:
            return RUNNING, f"started {row.started_at.isoformat()}, must end by {row.start_deadline_at.isoformat()}"
        timeout = format_duration(effective_timeout(row.timeout_seconds, row.grace_seconds))
        return DOWN, f"started {row.started_at.isoformat()} and did not end within {timeout}"
    if row.overdue_at is not None and now > row.overdue_at:
        since = row.last_ping_at.isoformat() if row.last_ping_at else "it was created"
        return DOWN, (
            f"overdue: no ping since {since}; expected by {row.expected_at.isoformat()} "
            f"(+ grace {format_duration(row.grace_seconds)})"
        )
    if last_run_failed(row):
        status = f" (exit status {row.last_exit_status})" if row.last_exit_status is not None else ""
        return DOWN, f"the last run failed{status} at {row.last_failure_at.isoformat()}"
    if row.expected_at is not None and now > row.expected_at:
        return LATE, f"late: expected by {row.expected_at.isoformat()}, overdue after {row.overdue_at.isoformat()}"
    if row.last_success_at is None:
        due = row.expected_at.isoformat() if row.expected_at else "?"
        return NEW, f"no run reported yet; the first is due by {due}"
    return UP, f"last success {row.last_success_at.isoformat()}; next due by {row.expected_at.isoformat()}"


def is_overdue(row: Any, now: datetime) -> bool:
    """Overdue for alerting: past slot + grace with no open run (a /start past its timeout fails instead)."""
    return not row.paused and row.started_at is None and row.overdue_at is not None and now > row.overdue_at
