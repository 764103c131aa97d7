"""Read models of the UI's busiest pages, shaped for what the page shows and nothing more.

The task list (``/tasks``) shows 50 of possibly tens of thousands of tasks, each with its last
20 outcomes. Loading whole ``ScheduledTask`` objects (config, notify, locks... decoded from JSON)
to show a name and a schedule cost ten times the query, so the page reads the columns it shows
with one Core statement; the outcomes come from one statement over a covering index
(``Queries.recent_outcomes``). The API's task list keeps the full view.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from upkeep.engine.schedules import schedule_of
from upkeep.errors import UserError
from upkeep.store.db import Store
from upkeep.store.models import ScheduledTask

_T = ScheduledTask
TASK_ROW = (
    _T.id,
    _T.name,
    _T.task_type,
    _T.schedule,
    _T.timezone,
    _T.schedule_anchor,
    _T.created_at,
    _T.enabled,
    _T.managed_by,
    _T.next_run_at,
    _T.last_run_id,
    _T.last_status,
    _T.last_outcome,
    _T.last_run_at,
    _T.last_duration_seconds,
)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _schedule_text(row: Any) -> str:
    try:
        return schedule_of(row).explain()
    except UserError as exc:
        return f"invalid schedule: {exc}"


def task_rows(
    store: Store,
    registry,
    *,
    enabled: bool | None = None,
    task_type: str | None = None,
    last_status: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of tasks by name with what the task list shows of each, and how many match.
    Filters as the task use cases' ``list_tasks`` (a handler type by any of its names)."""
    where = []
    if enabled is not None:
        where.append(_T.enabled.is_(enabled))
    if task_type:
        where.append(_T.task_type == registry.resolve(task_type)[0].name)
    if last_status:
        where.append(_T.last_status == last_status)
    if search:
        where.append(_T.name.contains(search))
    with store.read() as s:
        total = s.execute(sa.select(sa.func.count(_T.id)).where(*where)).scalar_one()
        rows = s.execute(sa.select(*TASK_ROW).where(*where).order_by(_T.name).offset(offset).limit(limit)).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "type": r.task_type,
            "schedule": r.schedule,
            "timezone": r.timezone,
            "schedule_text": _schedule_text(r),
            "enabled": r.enabled,
            "managed_by": r.managed_by,
            "next_run_at": _iso(r.next_run_at),
            "last_run_id": r.last_run_id,
            "last_status": r.last_status,
            "last_outcome": r.last_outcome,
            "last_run_at": _iso(r.last_run_at),
            "last_duration_seconds": r.last_duration_seconds,
        }
        for r in rows
    ], total
