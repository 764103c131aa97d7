"""Run use cases, the same for the CLI, the API and the UI: queue a task's run now (``trigger``), a
one-off run of a handler (``create_adhoc_run``), a tier, list, read, cancel and rerun runs.

A confirmed action (a restore) is approved per run, never in a task's config nor carried over to
a rerun (``HandlerSpec.split_run_flags`` says so once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from upkeep.app import adhoc
from upkeep.app.base import Base
from upkeep.app.views import run_view
from upkeep.engine import lifecycle
from upkeep.errors import NotFound, UserError
from upkeep.store.models import ALL_STATUSES, Run, ScheduledTask

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


class RunCases(Base):
    """Runs: queue, list, read, cancel (each write audited: ``trigger`` of a task or handler,
    ``cancel`` of a run)."""

    run_view = staticmethod(run_view)

    def trigger(self, ref: str | int, *, actor: str, **options: Any) -> dict[str, Any]:
        """Queue a run of a task now: the options of ``adhoc.trigger`` (overrides, dry_run,
        confirm, trigger, check), the overrides judged by ``check_said``."""
        view = adhoc.trigger(
            self.store, self.registry, self.clock, ref, actor=actor, check_said=self.check_said, **options
        )
        self._wake()
        return view

    def create_adhoc_run(
        self, task_type: str, config: dict[str, Any] | None, *, actor: str, **options: Any
    ) -> dict[str, Any]:
        """A one-off run of a handler type with its own config (``upkeep run TYPE``): the options of
        ``adhoc.create_adhoc_run``, the config judged by ``check_said``."""
        view = adhoc.create_adhoc_run(
            self.store, self.registry, self.clock, task_type, config, actor=actor, check_said=self.check_said, **options
        )
        if options.get("reserved_by") is None:
            self._wake()
        return view

    def trigger_tier(self, tier: str, *, actor: str, dry_run: bool = False) -> list[dict[str, Any]]:
        return adhoc.trigger_tier(self.store, self.registry, tier, self.trigger, actor=actor, dry_run=dry_run)

    # --- runs -------------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        task: str | int | None = None,
        status: str | None = None,
        outcome: str | None = None,
        task_type: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        query = sa.select(Run)
        with self.store.read() as s:
            if task is not None:
                query = query.where(Run.task_id == self._find_task(s, task).id)
            if status:
                if status not in ALL_STATUSES:
                    raise UserError(
                        f"unknown status {status!r}", hint=f"one of {', '.join(ALL_STATUSES)}", field="status"
                    )
                query = query.where(Run.status == status)
            if outcome:
                query = query.where(Run.outcome == outcome)
            if task_type:
                query = query.where(Run.task_type == task_type)
            if since:
                query = query.where(Run.created_at >= since)
            total = s.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            rows = s.execute(query.order_by(Run.id.desc()).offset(offset).limit(limit)).scalars()
            return [self.run_view(r) for r in rows], total

    @staticmethod
    def _find_run(s, run_id: int) -> Run:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run {run_id}", hint="`upkeep runs list` shows recent runs", field="run")
        return run

    def get_run(self, run_id: int) -> dict[str, Any]:
        return adhoc.get_run(self.store, run_id)

    def run_events(self, run_id: int, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return adhoc.run_events(self.store, run_id, after=after, limit=limit)

    def cancel_run(self, run_id: int, *, actor: str) -> dict[str, Any]:
        """Ask a run to stop (one not started ends at once), audited in the same transaction."""
        with self.store.write() as s:
            before = self._find_run(s, run_id).status
            status = lifecycle.cancel_in_session(s, run_id, self.clock.now())
            self.audit(s, actor, "cancel", "run", run_id, before={"status": before}, after={"status": status})
        if before == "submitted" and self.settings.executor == "celery":
            from upkeep.distributed import revoke

            revoke(self.settings, run_id)  # its message is on the broker: workers drop it unseen
        self._wake()
        return self.get_run(run_id)
