"""Listing tasks: one Core query on ``scheduled_tasks`` and the task views, without the ORM.

``upkeep tasks list`` is what cron users and scripts run most; it imports this module, the store
and the settings, not the use cases that write (the run lifecycle, the task model, the ORM and its
mappers cost such a command more than the rest of its work). ``Upkeep.list_tasks`` and
``Upkeep.task_view`` answer from here too, so the CLI and the API show the same views.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from upkeep.errors import UserError
from upkeep.secrets import redact
from upkeep.store.db import Store
from upkeep.store.tables import scheduled_tasks

if TYPE_CHECKING:  # the registry is imported only to filter by type
    from upkeep.engine.registry import Registry


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def summary_view(task: Any, *, explain: bool = True) -> dict[str, Any]:
    """A task's view (secrets redacted) from a ``ScheduledTask`` or a row of ``scheduled_tasks``;
    without ``explain``, without ``schedule_text``, the schedule in words (which loads the
    schedules' parsers)."""
    view = {
        "id": task.id,
        "name": task.name,
        "type": task.task_type,
        "description": task.description,
        "schedule": task.schedule,
        "timezone": task.timezone,
        "schedule_text": None,
        "enabled": task.enabled,
        "tiers": list(task.tiers or []),
        "config": redact(task.config or {}),
        "concurrency": task.concurrency,
        "misfire": task.misfire,
        "misfire_grace_seconds": task.misfire_grace_seconds,
        "locks": list(task.locks or []),
        "windows": list(task.windows or []),
        "max_retries": task.max_retries,
        "retry_backoff_seconds": task.retry_backoff_seconds,
        "retry_backoff_max_seconds": task.retry_backoff_max_seconds,
        "timeout_seconds": task.timeout_seconds,
        "jitter_seconds": task.jitter_seconds,
        "queue": task.queue,
        "notify": task.notify or {},
        "expect_success_within_seconds": task.expect_success_within_seconds,
        "ping_url": redact(task.ping_url) if task.ping_url else None,
        "affects": task.affects,
        "after": task.after,
        "managed_by": task.managed_by,
        "next_run_at": _iso(task.next_run_at),
        "last_run_id": task.last_run_id,
        "last_status": task.last_status,
        "last_outcome": task.last_outcome,
        "last_run_at": _iso(task.last_run_at),
        "last_success_at": _iso(task.last_success_at),
        "last_duration_seconds": task.last_duration_seconds,
        "consecutive_failures": task.consecutive_failures,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
    }
    if not explain:
        del view["schedule_text"]
        return view
    from upkeep.engine.schedules import schedule_of

    try:
        view["schedule_text"] = schedule_of(task).explain()
    except UserError as exc:
        view["schedule_text"] = f"invalid schedule: {exc}"
    return view


def list_tasks(
    store: Store,
    *,
    enabled: bool | None = None,
    tier: str | None = None,
    task_type: str | None = None,
    last_status: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    registry: Registry | None = None,
    explain: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """The views of the tasks that match, by name, and how many match in all. ``task_type`` is a
    handler type or one of its aliases (of ``registry``, the built-in one by default); ``explain``
    as for ``summary_view``."""
    t = scheduled_tasks
    query = sa.select(t)
    if enabled is not None:
        query = query.where(t.c.enabled.is_(enabled))
    if task_type:
        if registry is None:
            from upkeep.engine.registry import REGISTRY as registry
        query = query.where(t.c.task_type == registry.resolve(task_type)[0].name)
    if last_status:
        query = query.where(t.c.last_status == last_status)
    if search:
        query = query.where(t.c.name.contains(search))
    with store.read_connection() as conn:
        if tier or (not limit and not offset):  # every match is read: they count themselves
            rows = [row for row in conn.execute(query.order_by(t.c.name)) if not tier or tier in (row.tiers or [])]
            total = len(rows)
            rows = rows[offset : offset + limit if limit else None]
        else:
            total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            query = query.order_by(t.c.name).offset(offset)
            if limit:
                query = query.limit(limit)
            rows = list(conn.execute(query))
    return [summary_view(row, explain=explain) for row in rows], total
