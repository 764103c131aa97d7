"""Task use cases of the UI that the API and the CLI share the pieces of: which handler types a
task can be created from here, cloning, and the YAML that makes upkeep.yaml match a task.

``TaskCases`` (joined into ``upkeep.app.Upkeep``) lists, creates, edits, enables and deletes tasks
for every adapter alike. An edit from the CLI or the API is a merge-patch of the config
(``merge_config``): a key set to ``null`` is removed, a secret sent back as the redacted mask keeps
its value, others are set; ``upkeep apply`` replaces the config with the file's.

- A handler type is offered for creation when each of its *required* fields can be given here:
  a plain value, or a host-scoped one that an inventory name may stand in for (``refs``). A type
  whose required field only upkeep.yaml may set (a path with no inventory kind) is not offered.
- A clone copies a task's spec under a new name. When the task holds host-scoped values inline
  (a path, a DSN...), the API may not create it: the clone is the YAML to paste into upkeep.yaml.
- A file-made task edited here has *drift* (the fields that differ from the file); the YAML of
  the task as it is now is what makes the file match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import yaml

from upkeep.app import task_list
from upkeep.app.base import Base
from upkeep.app.views import apply_spec, drift, task_after, task_spec_of, task_view
from upkeep.engine import lifecycle, taskgraph
from upkeep.engine.schedules import first_slot
from upkeep.engine.taskspec import validate_task
from upkeep.errors import Conflict, UserError
from upkeep.secrets import REDACTED, is_secret_key
from upkeep.store.db import Store
from upkeep.store.models import ACTIVE_STATUSES, Run, ScheduledTask

CLONE_DROPS = ("schedule_anchor",)  # a clone's slots start from its own creation


def creatable(spec) -> bool:
    """Whether every required field of the handler's config can be set through the API."""
    schema = spec.json_schema()
    props = schema.get("properties") or {}
    marked = dict(spec.host_scoped_fields())
    for name in schema.get("required", []):
        mark = marked.get(name)
        if mark is not None and not (mark.get("refs") or mark.get("any_name")):
            return False
        if name not in props:
            return False
    return True


def creatable_types(registry) -> list[Any]:
    return [spec for spec in registry.all() if creatable(spec)]


def task_yaml(spec: dict[str, Any]) -> str:
    """A task spec as the entry to paste under ``tasks:`` in upkeep.yaml."""
    from upkeep.config_file import compact_spec

    return yaml.safe_dump([compact_spec(spec)], sort_keys=False, allow_unicode=True, width=100)


def stored(store: Store, task_id: int) -> dict[str, Any]:
    from upkeep.app.config_plan import stored_spec

    with store.read() as s:
        return stored_spec(s.get(ScheduledTask, task_id))


def clone(svc, ref: str | int) -> dict[str, Any]:
    """What cloning task ``ref`` gives: ``{"spec": ..., "fields": [...]}``, the spec under a new
    name and the fields holding host-scoped values inline. With no such field the spec prefills
    the new-task form; with some, only upkeep.yaml can make the copy (``task_yaml``)."""
    from upkeep.store.records import load_targets

    task = svc.get_task(ref)
    spec = {k: v for k, v in stored(svc.store, task["id"]).items() if k not in CLONE_DROPS}
    spec["name"] = f"{task['name']}-copy"
    handler = svc.registry.get(task["type"])
    violations = handler.host_scope_violations(spec.get("config") or {}, load_targets(svc.store))
    return {"spec": spec, "fields": sorted({v.field for v in violations})}


def drifted(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """File-made tasks changed since the file was applied: name and the fields that differ."""
    out = []
    with store.read() as s:
        rows = s.execute(
            sa.select(ScheduledTask)
            .where(ScheduledTask.managed_by == "file", ScheduledTask.file_spec.is_not(None))
            .order_by(ScheduledTask.name)
        ).scalars()
        for task in rows:
            fields = drift(task)
            if fields:
                out.append({"id": task.id, "name": task.name, "drift": fields})
                if len(out) >= limit:
                    break
    return out


_UNSET = object()

# what an adapter checks of an edit before it is written, to name every field at fault its own way:
# (task name, task type, the changes with the config merged)
EditCheck = Callable[[str, str, dict[str, Any]], None]


def merge_config(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch a config: ``null`` removes a key; an unchanged redacted secret keeps its value."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif value == REDACTED and is_secret_key(key) and key in current:
            continue
        else:
            merged[key] = value
    return merged


class TaskCases(Base):
    """Tasks: list, read, create, edit, enable/disable, delete (each write audited as ``task``)."""

    def task_view(self, task: ScheduledTask, *, detail: bool = False) -> dict[str, Any]:
        return task_view(task, now=self.clock.now(), detail=detail)

    def list_tasks(self, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        """The tasks that match ``filters`` (``upkeep.app.task_list.list_tasks``) and their count."""
        return task_list.list_tasks(self.store, registry=self.registry, **filters)

    def get_task(self, ref: str | int) -> dict[str, Any]:
        with self.store.read() as s:
            task = self._find_task(s, ref)
            view = self.task_view(task, detail=True)
            view["upstream"] = list((task.after or {}).get("tasks", []))
            view["downstream"] = taskgraph.downstream(self._edges(s), task.name)
            return view

    def create_task(
        self, data: dict[str, Any], *, actor: str, managed_by: str = "api", check_graph: bool = True
    ) -> dict[str, Any]:
        """``check_graph=False``: the caller checked the whole graph it is writing (``apply``)."""
        spec = validate_task(data, self.registry)
        self._check_affects(spec)
        canonical = self.registry.resolve(spec.type)[0].name
        self.check_said(canonical, spec.config, task=data)
        now = self.clock.now()
        with self.store.write() as s:
            if s.execute(sa.select(ScheduledTask.id).where(ScheduledTask.name == spec.name)).first():
                raise Conflict(
                    f"a task named {spec.name!r} already exists",
                    hint="choose another name or edit it",
                    field="name",
                )
            if check_graph:
                self._check_graph(s, spec.name, task_after(spec))
            task = ScheduledTask(name=spec.name, created_at=now, updated_at=now, managed_by=managed_by)
            apply_spec(task, spec)
            task.task_type = canonical
            if spec.schedule_anchor is None and (spec.schedule or "").startswith("@every"):
                task.schedule_anchor = now
            if managed_by == "file":
                task.file_spec = task_spec_of(task)
            task.next_run_at = first_slot(task, now) if task.enabled else None
            s.add(task)
            s.flush()
            self._refresh_downstream(s)
            view = self.task_view(task)
            self.audit(s, actor, "create", "task", task.name, after=task_spec_of(task))
        self._wake()
        return view

    def update_task(
        self,
        ref: str | int,
        changes: dict[str, Any],
        *,
        actor: str,
        managed_by: str | None = None,
        check_graph: bool = True,
        patch: bool = False,
        check: EditCheck | None = None,
    ) -> dict[str, Any]:
        """Change fields of a task. ``patch``: ``changes["config"]`` is merged into the task's
        (``merge_config``; the CLI's ``tasks set`` and the API's PATCH), else it replaces it
        (``upkeep apply``). ``check`` sees the changes as they will be validated, config merged."""
        now = self.clock.now()
        with self.store.write() as s:
            task = self._find_task(s, ref, lock=True)
            before = task_spec_of(task)
            if "name" in changes and changes["name"] != task.name:
                raise UserError("a task cannot be renamed", hint="create a new task and delete this one", field="name")
            if patch and "config" in changes:
                changes = {**changes, "config": merge_config(before["config"] or {}, changes["config"] or {})}
            if check is not None:
                check(task.name, task.task_type, changes)
            merged = {**before, **changes}
            spec = validate_task(merged, self.registry)
            self._check_affects(spec)
            canonical = self.registry.resolve(spec.type)[0].name
            same_type = canonical == task.task_type
            old_config = before["config"] or {}
            said = {k: v for k, v in spec.config.items() if not same_type or old_config.get(k, _UNSET) != v}
            self.check_said(canonical, said, task={k: v for k, v in changes.items() if before.get(k) != v})
            schedule_changed = any(before.get(k) != merged.get(k) for k in ("schedule", "timezone", "schedule_anchor"))
            was_enabled = task.enabled
            if check_graph and before.get("after") != task_after(spec):
                self._check_graph(s, task.name, task_after(spec))
            apply_spec(task, spec)
            task.task_type = canonical
            task.updated_at = now
            if managed_by == "file":
                task.managed_by = "file"
                task.file_spec = task_spec_of(task)
            if not task.enabled:
                task.next_run_at = None
            elif schedule_changed or not was_enabled or task.next_run_at is None:
                task.next_run_at = first_slot(task, now)
            after = task_spec_of(task)
            if after.get("after") != before.get("after"):
                self._refresh_downstream(s)
            if after != before:
                self.audit(s, actor, "update", "task", task.name, before=before, after=after)
            view = self.task_view(task)
        self._wake()
        return view

    def set_enabled(self, ref: str | int, enabled: bool, *, actor: str) -> dict[str, Any]:
        now = self.clock.now()
        with self.store.write() as s:
            task = self._find_task(s, ref, lock=True)
            if task.enabled != enabled:
                task.enabled = enabled
                task.updated_at = now
                task.next_run_at = first_slot(task, now) if enabled else None
                action = "enable" if enabled else "disable"
                self.audit(
                    s, actor, action, "task", task.name, before={"enabled": not enabled}, after={"enabled": enabled}
                )
            view = self.task_view(task)
        self._wake()
        return view

    def delete_task(self, ref: str | int, *, actor: str, check_graph: bool = True) -> None:
        with self.store.write() as s:
            task = self._find_task(s, ref, lock=True)
            before = task_spec_of(task)
            dependents = taskgraph.downstream(self._edges(s), task.name)
            if check_graph and dependents:
                raise Conflict(
                    f"task {task.name!r} is named in the after: of {', '.join(map(repr, dependents))}",
                    hint="remove it from their after.tasks first, or delete them too",
                    field="task",
                )
            active = s.execute(sa.select(Run.id).where(Run.task_id == task.id, Run.status.in_(ACTIVE_STATUSES)))
            active = active.scalars().all()
            now = self.clock.now()
            for run_id in active:
                lifecycle.cancel_in_session(s, run_id, now, "task deleted")
            s.delete(task)
            self._refresh_downstream(s)
            self.audit(s, actor, "delete", "task", before["name"], before=before)
