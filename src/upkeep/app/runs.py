"""Run use cases the UI and the API share: rerunning a run."""

from __future__ import annotations

from typing import Any

from upkeep.errors import NotFound
from upkeep.store.models import Run, ScheduledTask

_MISSING = object()


def rerun(svc, run_id: int, *, actor: str, confirm: bool = False) -> dict[str, Any]:
    """Run again what run ``run_id`` ran, as a new manual run.

    A task's run goes through ``trigger``: the task's current config with the same run overrides
    (the overridable values where the run differed from the task) and the same dry-run flag. A
    one-off run goes through ``create_adhoc_run`` with its config, so the trust boundary applies
    as to any run asked for here. ``confirm`` is never carried over: a restore is approved per run.
    """
    with svc.store.read() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run {run_id}", field="run", hint="GET /api/v1/runs lists them")
        task = s.get(ScheduledTask, run.task_id) if run.task_id is not None else None
        config, dry_run, task_type = dict(run.config or {}), bool(run.dry_run), run.task_type
        task_id, task_config = (task.id, dict(task.config or {})) if task is not None else (None, {})
    if task_id is None:
        return svc.create_adhoc_run(task_type, config, actor=actor, dry_run=dry_run, confirm=confirm)
    allowed = svc.registry.get(task_type).overridable_fields()
    overrides = {k: v for k, v in config.items() if k in allowed and task_config.get(k, _MISSING) != v}
    return svc.trigger(task_id, actor=actor, overrides=overrides, dry_run=dry_run, confirm=confirm)
