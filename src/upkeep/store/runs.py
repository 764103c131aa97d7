"""Reads of runs that several layers share (the health summary, statistics, metrics, alerts)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.clock import format_when
from upkeep.store.models import Run, ScheduledTask


def count_by_status(
    s: Session,
    *,
    created_since: datetime | None = None,
    statuses: Iterable[str] | None = None,
    due_by: datetime | None = None,
) -> dict[str, int]:
    """Runs per status: created since ``created_since``, in ``statuses``, due by ``due_by`` (each if given)."""
    query = sa.select(Run.status, sa.func.count(Run.id))
    if created_since is not None:
        query = query.where(Run.created_at >= created_since)
    if statuses is not None:
        query = query.where(Run.status.in_(tuple(statuses)))
    if due_by is not None:
        query = query.where(Run.due_at <= due_by)
    return dict(s.execute(query.group_by(Run.status)).all())


MIN_GRACE = timedelta(seconds=60)  # the engine's floor on a task's misfire grace for "overdue"


def overdue_tasks(s: Session, now: datetime) -> list[dict[str, Any]]:
    """Tasks with no run started within a slot + grace, or no success within expect_success_within:
    one definition for the CLI, the API, alerts and metrics, in three queries (not one per task)."""
    reasons: dict[int, tuple[str, str, str]] = {}
    t = ScheduledTask
    # 1. no success within expect_success_within
    # "> 0" (not "is not null") and enabled checked here: SQLite then reads the few tasks that set
    # it from ix_scheduled_tasks_expect_success instead of every enabled task
    for row in s.execute(
        sa.select(
            t.id, t.name, t.task_type, t.last_success_at, t.created_at, t.expect_success_within_seconds, t.enabled
        ).where(t.expect_success_within_seconds > 0)
    ):
        if not row.enabled:
            continue
        since = row.last_success_at or row.created_at
        if now - since > timedelta(seconds=row.expect_success_within_seconds):
            reasons[row.id] = (row.name, row.task_type, f"no success since {format_when(since, now)}")
    # 2. a slot that was not started within its grace
    for row in s.execute(
        sa.select(t.id, t.name, t.task_type, t.next_run_at, t.misfire_grace_seconds, t.timezone).where(
            t.enabled.is_(True), t.next_run_at.is_not(None), t.next_run_at < now - MIN_GRACE
        )
    ):
        if row.id in reasons:
            continue
        grace = timedelta(seconds=max(row.misfire_grace_seconds, 60))
        if now - row.next_run_at > grace:
            reasons[row.id] = (
                row.name,
                row.task_type,
                f"slot {format_when(row.next_run_at, now, row.timezone)} not started (scheduler behind or down)",
            )
    # 3. a pending run of a scheduled task that has not started within its grace
    pending = (
        sa.select(Run.task_id, Run.id, Run.due_at)
        .where(Run.status.in_(("pending", "submitted")), Run.due_at < now - MIN_GRACE)
        .subquery()
    )
    for row in s.execute(
        sa.select(t.id, t.name, t.task_type, t.misfire_grace_seconds, pending.c.id, pending.c.due_at, t.timezone)
        .join(pending, pending.c.task_id == t.id)
        .where(t.enabled.is_(True), t.schedule.is_not(None), t.schedule != "")
        .order_by(t.id, pending.c.id)
    ):
        if row.id in reasons:
            continue
        grace = timedelta(seconds=max(row.misfire_grace_seconds, 60))
        if row.due_at < now - grace:
            reasons[row.id] = (
                row.name,
                row.task_type,
                f"run {row[4]} due at {format_when(row.due_at, now, row.timezone)} has not started",
            )
    return [
        {"id": task_id, "name": name, "type": task_type, "reason": reason}
        for task_id, (name, task_type, reason) in sorted(reasons.items())
    ]
