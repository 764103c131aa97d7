"""What every use case of the application layer shares: the settings, store, clock and registry,
the one audit writer, finding a task, the task graph, and who may say what a task touches.

Who may say what a task touches: an ``Upkeep`` made for a trusted caller (``upkeep.yaml`` through
``apply``, the local CLI) may set host-scoped values; any other (the API, the UI) may not, and
``check_said`` refuses them, for task creation, edits and run overrides alike.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.app import adhoc
from upkeep.clock import Clock
from upkeep.engine import hostscope, taskgraph
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.engine.wakeup import broadcast
from upkeep.errors import ConfigError, HostScoped, NotFound
from upkeep.settings import Settings
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.models import ScheduledTask


class Base:
    """The state every use case family works with (``upkeep.app.Upkeep`` joins the families)."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        clock: Clock | None = None,
        registry: Registry = REGISTRY,
        trusted: bool = False,
    ):
        """``trusted``: the caller controls the host and the config file (``apply``, the local CLI)."""
        self.settings = settings
        self.store = store or Store(settings.resolved_database_url)
        self.clock = clock or Clock()
        self.registry = registry
        self.trusted = trusted

    def audit(self, s: Session, actor: str, action: str, kind: str, ref: Any, **change: Any) -> None:
        """The audit entry of a change, in the change's transaction: ``change`` is its ``before``,
        ``after`` and ``detail``; ``add_audit`` (the one writer) redacts them."""
        add_audit(s, ts=self.clock.now(), actor=actor, action=action, object_type=kind, object_id=ref, **change)

    def _wake(self) -> None:
        broadcast(self.store, self.settings.resolved_data_dir)

    def _find_task(self, s: Session, ref: str | int, *, lock: bool = False) -> ScheduledTask:
        query = sa.select(ScheduledTask)
        ref_text = str(ref)
        if ref_text.isdigit():
            query = query.where(sa.or_(ScheduledTask.id == int(ref_text), ScheduledTask.name == ref_text))
        else:
            query = query.where(ScheduledTask.name == ref_text)
        if lock and self.store.is_postgres:
            query = query.with_for_update()
        task = s.execute(query).scalars().first()
        if task is None:
            raise NotFound(f"no task {ref!r}", hint=self._task_hint(s, ref_text), field="task")
        return task

    @staticmethod
    def _task_hint(s: Session, ref: str) -> str:
        return adhoc.task_hint(s, ref)

    def suggest(self, name: str) -> str | None:
        """``did you mean ...?`` over task names and handler types, for a name that is neither."""
        return adhoc.suggest(self.store, self.registry, name)

    @staticmethod
    def _edges(s: Session) -> dict[str, list[str]]:
        """Every task's upstream task names (its ``after.tasks``)."""
        rows = s.execute(sa.select(ScheduledTask.name, ScheduledTask.after))
        return {name: list((after or {}).get("tasks", [])) for name, after in rows}

    def _check_graph(self, s: Session, name: str, after: dict[str, Any] | None) -> None:
        """Refuse an ``after:`` naming no task or closing a cycle (with the path), as if written."""
        edges = self._edges(s)
        edges[name] = list((after or {}).get("tasks", []))
        taskgraph.check(edges, set(edges))

    @staticmethod
    def _refresh_downstream(s: Session) -> None:
        """Mark the tasks some ``after:`` names: only their finishing runs look for dependents."""
        s.flush()
        named = sorted({name for upstream in Base._edges(s).values() for name in upstream})
        for flag, which in ((True, ScheduledTask.name.in_(named)), (False, ScheduledTask.name.not_in(named))):
            s.execute(
                sa.update(ScheduledTask)
                .where(which, ScheduledTask.has_downstream.is_not(flag))
                .values(has_downstream=flag)
                .execution_options(synchronize_session=False)
            )

    def _check_affects(self, spec) -> None:
        """``affects`` names targets of the inventory (``upkeep apply`` says where in the file)."""
        from upkeep.engine.targets import affects_problems
        from upkeep.store.records import load_targets

        if spec.affects is not None and not self.trusted:
            for parts, message in affects_problems(spec.affects.model_dump(), load_targets(self.store))[:1]:
                raise ConfigError(f"task {spec.name!r}: {message}", field=".".join(parts))

    def check_said(
        self, task_type: str, said: dict[str, Any], *, prefix: str = "config", task: dict[str, Any] | None = None
    ) -> None:
        """Refuse host-scoped values from an untrusted caller (403 naming the field): ``said`` is the
        config (or the part of it, or the run overrides) this caller sets; ``task`` the other task
        fields it sets (an ``${env:...}`` reference there would be resolved and sent somewhere)."""
        if self.trusted:
            return
        from upkeep.store.records import load_targets

        spec = self.registry.get(task_type)
        inventory = load_targets(self.store)
        found = spec.host_scope_violations(said, inventory, prefix=prefix)
        for key, value in (task or {}).items():
            if key != "config":
                found += hostscope.env_references(value, f"task.{key}")
        if not found:
            return
        first = found[0]
        where = first.field.removeprefix("task.")
        if first.env_reference:
            message = f"{where}: an ${{env:...}} reference can only be written in upkeep.yaml"
            hint = "reference secrets in upkeep.yaml and run `upkeep apply`"
        else:
            message = (
                f"{where} names something on this host (a path, address, command, signal or mode): "
                "only upkeep.yaml or the local CLI may set it"
            )
            hint = "set it in upkeep.yaml and run `upkeep apply`"
            if first.refs:
                kinds = " or ".join(f"targets.{k}" for k in first.refs)
                hint = f"name a {kinds} entry instead (known: {', '.join(first.known) or 'none'}), or {hint}"
        fields = [v.field.removeprefix("task.") for v in found]
        if len(fields) > 1:
            message += f" (also: {', '.join(fields[1:])})"
        raise HostScoped(message, hint=hint, fields=fields)
