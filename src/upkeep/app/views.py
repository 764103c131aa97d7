"""What the application layer shows and stores of a task or a run: the views (plain dicts, secrets
redacted) every adapter prints or returns, and the mapping between a ``TaskSpec`` and the
``scheduled_tasks`` row (``task_spec_of`` is what upkeep.yaml, the API's POST body and the audit's
before/after of a task hold)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from upkeep.app.run_views import event_view, run_view  # noqa: F401 - the views of runs, named here too
from upkeep.app.task_list import summary_view
from upkeep.engine.schedules import explain_schedule
from upkeep.engine.taskspec import TaskSpec, parse_duration
from upkeep.errors import UserError
from upkeep.store.models import AuditEntry, ScheduledTask

# Columns of scheduled_tasks that a TaskSpec field maps to (spec field -> column): every field of the
# one task model, in its order, under the same name but ``type`` (``task_type``); ``name`` is the key
# and ``expect_success_within`` is stored as seconds (``expect_success_within_seconds``).
SPEC_COLUMNS = {
    field: "task_type" if field == "type" else field
    for field in TaskSpec.model_fields
    if field not in ("name", "expect_success_within")
}


def task_spec_of(task: ScheduledTask) -> dict[str, Any]:
    """The task as a TaskSpec dict (what upkeep.yaml and the API's POST body hold)."""
    spec: dict[str, Any] = {"name": task.name}
    for field, column in SPEC_COLUMNS.items():
        value = getattr(task, column)
        if isinstance(value, datetime):
            value = value.isoformat()
        spec[field] = value
    if task.expect_success_within_seconds is not None:
        spec["expect_success_within"] = f"{int(task.expect_success_within_seconds)}s"
    else:
        spec["expect_success_within"] = None
    return spec


def apply_spec(task: ScheduledTask, spec: TaskSpec) -> None:
    data = spec.model_dump(mode="python")
    for field, column in SPEC_COLUMNS.items():
        value = data[field]
        if field == "notify":
            value = spec.notify.model_dump(mode="json")
        if field == "after":
            value = task_after(spec)
        setattr(task, column, value)
    task.expect_success_within_seconds = (
        parse_duration(spec.expect_success_within) if spec.expect_success_within else None
    )


def task_after(spec: TaskSpec) -> dict[str, Any] | None:
    return spec.after.model_dump(mode="json") if spec.after else None


def task_view(task: ScheduledTask, *, now: datetime | None = None, detail: bool = False) -> dict[str, Any]:
    """A task as the adapters show it; ``detail`` (with ``now``) adds its next times and drift."""
    view = summary_view(task)
    if detail:
        try:
            info = explain_schedule(
                task.schedule,
                task.timezone,
                count=5,
                now=now,
                anchor=task.schedule_anchor or task.created_at,
            )
            view["next_times"] = [t.isoformat() for t in info["next"]]
        except UserError:
            view["next_times"] = []
        if task.managed_by == "file" and task.file_spec:
            view["drift"] = drift(task)
    return view


def drift(task: ScheduledTask) -> list[str]:
    """The fields of a file-made task that differ from what the file said when last applied."""
    current = task_spec_of(task)
    return sorted(k for k, v in (task.file_spec or {}).items() if k in current and current[k] != v)


def audit_view(a: AuditEntry) -> dict[str, Any]:
    return {
        "id": a.id,
        "ts": a.ts.isoformat(),
        "actor": a.actor,
        "action": a.action,
        "object_type": a.object_type,
        "object_id": a.object_id,
        "before": a.before,
        "after": a.after,
        "detail": a.detail,
    }
