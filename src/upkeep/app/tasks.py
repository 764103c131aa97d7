"""Task use cases of the UI that the API and the CLI share the pieces of: which handler types a
task can be created from here, cloning, and the YAML that makes upkeep.yaml match a task.

Creating, editing and deleting go through ``Upkeep.create_task`` / ``update_task`` /
``delete_task`` (the API's routes call the same); this module only decides what the UI offers.

- A handler type is offered for creation when each of its *required* fields can be given here:
  a plain value, or a host-scoped one that an inventory name may stand in for (``refs``). A type
  whose required field only upkeep.yaml may set (a path with no inventory kind) is not offered.
- A clone copies a task's spec under a new name. When the task holds host-scoped values inline
  (a path, a DSN...), the API may not create it: the clone is the YAML to paste into upkeep.yaml.
- A file-made task edited here has *drift* (the fields that differ from the file); the YAML of
  the task as it is now is what makes the file match.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import yaml

from upkeep.engine.execute import load_targets
from upkeep.store.db import Store
from upkeep.store.models import ScheduledTask

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
    from upkeep.config_file import stored_spec

    with store.read() as s:
        return stored_spec(s.get(ScheduledTask, task_id))


def clone(svc, ref: str | int) -> dict[str, Any]:
    """What cloning task ``ref`` gives: ``{"spec": ..., "fields": [...]}``, the spec under a new
    name and the fields holding host-scoped values inline. With no such field the spec prefills
    the new-task form; with some, only upkeep.yaml can make the copy (``task_yaml``)."""
    task = svc.get_task(ref)
    spec = {k: v for k, v in stored(svc.store, task["id"]).items() if k not in CLONE_DROPS}
    spec["name"] = f"{task['name']}-copy"
    handler = svc.registry.get(task["type"])
    violations = handler.host_scope_violations(spec.get("config") or {}, load_targets(svc.store))
    return {"spec": spec, "fields": sorted({v.field for v in violations})}


def drifted(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """File-made tasks changed since the file was applied: name and the fields that differ."""
    from upkeep.service import task_spec_of

    out = []
    with store.read() as s:
        rows = s.execute(
            sa.select(ScheduledTask)
            .where(ScheduledTask.managed_by == "file", ScheduledTask.file_spec.is_not(None))
            .order_by(ScheduledTask.name)
        ).scalars()
        for task in rows:
            current = task_spec_of(task)
            fields = sorted(k for k, v in (task.file_spec or {}).items() if k in current and current[k] != v)
            if fields:
                out.append({"id": task.id, "name": task.name, "drift": fields})
                if len(out) >= limit:
                    break
    return out
