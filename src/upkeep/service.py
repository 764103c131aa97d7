"""The service layer: the one code path the CLI and the API use for every operation.

Every change (create, edit, enable, disable, trigger, cancel, apply, delete) writes an audit entry:
who, when, what, before and after. Views returned here are plain dicts with secrets redacted.

Who may say what a task touches: an ``Upkeep`` made for a trusted caller (``upkeep.yaml`` through
``apply``, the local CLI) may set host-scoped values; any other (the API, the UI) may not, and
``check_said`` refuses them, for task creation, edits and run overrides alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.clock import Clock
from upkeep.engine import hostscope, lifecycle, taskgraph
from upkeep.engine.lifecycle import Trigger
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.engine.scheduler import first_slot, schedule_of
from upkeep.engine.schedules import explain_schedule
from upkeep.engine.taskspec import TaskSpec, parse_duration, validate_task
from upkeep.engine.wakeup import broadcast
from upkeep.errors import ConfigError, Conflict, HostScoped, NotFound, UserError, did_you_mean
from upkeep.secrets import redact
from upkeep.settings import Settings
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.models import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    COMPLETED,
    AuditEntry,
    Run,
    RunEvent,
    ScheduledTask,
)
from upkeep.store.runs import count_by_status

# Columns of scheduled_tasks that a TaskSpec field maps to (spec field -> column).
SPEC_COLUMNS = {
    "type": "task_type",
    "description": "description",
    "schedule": "schedule",
    "timezone": "timezone",
    "schedule_anchor": "schedule_anchor",
    "enabled": "enabled",
    "config": "config",
    "tiers": "tiers",
    "concurrency": "concurrency",
    "misfire": "misfire",
    "misfire_grace_seconds": "misfire_grace_seconds",
    "locks": "locks",
    "windows": "windows",
    "max_retries": "max_retries",
    "retry_backoff_seconds": "retry_backoff_seconds",
    "retry_backoff_max_seconds": "retry_backoff_max_seconds",
    "timeout_seconds": "timeout_seconds",
    "jitter_seconds": "jitter_seconds",
    "queue": "queue",
    "notify": "notify",
    "ping_url": "ping_url",
    "affects": "affects",
    "after": "after",
}


_UNSET = object()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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


def _apply_spec(task: ScheduledTask, spec: TaskSpec) -> None:
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


class Upkeep:
    """Operations on tasks, runs and the audit log."""

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

    # --- helpers ----------------------------------------------------------------------------

    def _audit(
        self,
        s: Session,
        actor: str,
        action: str,
        object_type: str,
        object_id: Any,
        before: Any = None,
        after: Any = None,
        detail: str | None = None,
    ) -> None:
        add_audit(
            s,
            ts=self.clock.now(),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
            detail=detail,
        )

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
        names = s.execute(sa.select(ScheduledTask.name)).scalars()
        guess = did_you_mean(ref, names)
        return f"{guess} `upkeep tasks list` shows the tasks" if guess else "`upkeep tasks list` shows the tasks"

    def suggest(self, name: str) -> str | None:
        """``did you mean ...?`` over task names and handler types, for a name that is neither."""
        with self.store.read() as s:
            names = list(s.execute(sa.select(ScheduledTask.name)).scalars())
        return did_you_mean(name, [*names, *self.registry.names(), *self.registry.aliases()])

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
        named = sorted({name for upstream in Upkeep._edges(s).values() for name in upstream})
        for flag, which in ((True, ScheduledTask.name.in_(named)), (False, ScheduledTask.name.not_in(named))):
            s.execute(
                sa.update(ScheduledTask)
                .where(which, ScheduledTask.has_downstream.is_not(flag))
                .values(has_downstream=flag)
                .execution_options(synchronize_session=False)
            )

    def _check_affects(self, spec) -> None:
        """``affects`` names targets of the inventory (``upkeep apply`` says where in the file)."""
        from upkeep.engine.execute import load_targets
        from upkeep.engine.targets import affects_problems

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
        from upkeep.engine.execute import load_targets  # the executor's modules: API edits only

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

    # --- views ------------------------------------------------------------------------------

    def task_view(self, task: ScheduledTask, *, detail: bool = False) -> dict[str, Any]:
        try:
            text = schedule_of(task).explain()
        except UserError as exc:
            text = f"invalid schedule: {exc}"
        view = {
            "id": task.id,
            "name": task.name,
            "type": task.task_type,
            "description": task.description,
            "schedule": task.schedule,
            "timezone": task.timezone,
            "schedule_text": text,
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
        if detail:
            try:
                info = explain_schedule(
                    task.schedule,
                    task.timezone,
                    count=5,
                    now=self.clock.now(),
                    anchor=task.schedule_anchor or task.created_at,
                )
                view["next_times"] = [t.isoformat() for t in info["next"]]
            except UserError:
                view["next_times"] = []
            if task.managed_by == "file" and task.file_spec:
                current = task_spec_of(task)
                view["drift"] = sorted(k for k, v in task.file_spec.items() if k in current and current[k] != v)
        return view

    @staticmethod
    def run_view(run: Run) -> dict[str, Any]:
        duration = None
        if run.started_at and run.finished_at:
            duration = (run.finished_at - run.started_at).total_seconds()
        return {
            "id": run.id,
            "task_id": run.task_id,
            "task_name": run.task_name,
            "task_type": run.task_type,
            "requested_type": run.requested_type,
            "origin": run.origin,
            "status": run.status,
            "outcome": run.outcome,
            "attempt": run.attempt,
            "retry_of": run.retry_of,
            "parent_run_id": run.parent_run_id,
            "scheduled_for": _iso(run.scheduled_for),
            "due_at": _iso(run.due_at),
            "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "heartbeat_at": _iso(run.heartbeat_at),
            "duration_seconds": duration,
            "dry_run": run.dry_run,
            "config": redact(run.config or {}),
            "queue": run.queue,
            "timeout_seconds": run.timeout_seconds,
            "worker": run.worker,
            "progress": run.progress,
            "progress_message": run.progress_message,
            "summary": run.summary,
            "result": redact(run.result) if run.result is not None else None,
            "error": run.error,
            "cancel_requested": run.cancel_requested_at is not None,
            "triggered_by": run.triggered_by,
            "trigger_run_id": run.trigger_run_id,
            "upstream_runs": run.upstream_runs,
        }

    # --- tasks ------------------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        enabled: bool | None = None,
        tier: str | None = None,
        task_type: str | None = None,
        last_status: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        query = sa.select(ScheduledTask)
        if enabled is not None:
            query = query.where(ScheduledTask.enabled.is_(enabled))
        if task_type:
            canonical = self.registry.resolve(task_type)[0].name
            query = query.where(ScheduledTask.task_type == canonical)
        if last_status:
            query = query.where(ScheduledTask.last_status == last_status)
        if search:
            query = query.where(ScheduledTask.name.contains(search))
        with self.store.read() as s:
            if tier:
                rows = [t for t in s.execute(query.order_by(ScheduledTask.name)).scalars() if tier in (t.tiers or [])]
                total = len(rows)
                rows = rows[offset : offset + limit if limit else None]
            else:
                total = s.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
                query = query.order_by(ScheduledTask.name).offset(offset)
                if limit:
                    query = query.limit(limit)
                rows = list(s.execute(query).scalars())
            return [self.task_view(t) for t in rows], total

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
            _apply_spec(task, spec)
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
            self._audit(s, actor, "create", "task", task.name, None, task_spec_of(task))
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
    ) -> dict[str, Any]:
        now = self.clock.now()
        with self.store.write() as s:
            task = self._find_task(s, ref, lock=True)
            before = task_spec_of(task)
            if "name" in changes and changes["name"] != task.name:
                raise UserError("a task cannot be renamed", hint="create a new task and delete this one", field="name")
            merged = {**before, **changes}
            if "config" in changes and isinstance(changes["config"], dict) and changes.get("_merge_config"):
                merged["config"] = {**before["config"], **changes["config"]}
            merged.pop("_merge_config", None)
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
            _apply_spec(task, spec)
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
                self._audit(s, actor, "update", "task", task.name, before, after)
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
                self._audit(
                    s,
                    actor,
                    "enable" if enabled else "disable",
                    "task",
                    task.name,
                    {"enabled": not enabled},
                    {"enabled": enabled},
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
            self._audit(s, actor, "delete", "task", before["name"], before, None)

    def trigger(
        self,
        ref: str | int,
        *,
        actor: str,
        overrides: dict[str, Any] | None = None,
        dry_run: bool = False,
        confirm: bool = False,
        trigger: Trigger = Trigger.MANUAL,
    ) -> dict[str, Any]:
        """Queue a run of a task now. ``overrides`` may only touch the handler's overridable fields."""
        overrides = dict(overrides or {})
        now = self.clock.now()
        with self.store.write() as s:
            task = self._find_task(s, ref)
            spec = self.registry.get(task.task_type)
            if "dry_run" in overrides:
                dry_run = bool(overrides.pop("dry_run")) or dry_run
            spec.check_overrides(overrides)
            self.check_said(spec.name, overrides, prefix="overrides")
            config = spec.storable_config({**(task.config or {}), **overrides})
            overrides = {k: config[k] for k in overrides}
            if spec.destructive and not dry_run and (task.config or {}).get("dry_run"):
                dry_run = True
            spec.check_confirmed(dry_run=dry_run, confirm=confirm)
            run_id = lifecycle.create(
                s,
                trigger,
                task=task,
                task_type=task.task_type,
                config=config,
                due_at=now,
                dry_run=dry_run,
                confirm=confirm,
                triggered_by=actor,
                now=now,
            )
            self._audit(
                s,
                actor,
                "trigger",
                "task",
                task.name,
                None,
                {"run_id": run_id, "overrides": overrides, "dry_run": dry_run, "confirm": confirm},
            )
            view = self.run_view(s.get(Run, run_id))
        self._wake()
        return view

    def create_adhoc_run(
        self,
        task_type: str,
        config: dict[str, Any] | None,
        *,
        actor: str,
        dry_run: bool = False,
        confirm: bool = False,
        timeout_seconds: float | None = None,
        reserved_by: str | None = None,
    ) -> dict[str, Any]:
        """A one-off run of a handler type with its own config (``upkeep run TYPE``)."""
        spec, alias = self.registry.resolve(task_type)
        raw, flags = spec.split_run_flags(config)
        self.check_said(spec.name, raw)
        raw = spec.storable_config(raw)
        dry_run = dry_run or bool(flags.get("dry_run"))
        spec.check_confirmed(dry_run=dry_run, confirm=confirm)
        now = self.clock.now()
        with self.store.write() as s:
            run_id = lifecycle.create(
                s,
                Trigger.MANUAL,
                task=None,
                task_type=spec.name,
                requested_type=alias,
                config=raw,
                due_at=now,
                dry_run=dry_run,
                confirm=confirm,
                triggered_by=actor,
                now=now,
                timeout_seconds=timeout_seconds or None,
                reserved_by=reserved_by,
            )
            self._audit(s, actor, "trigger", "handler", spec.name, None, {"run_id": run_id, "dry_run": dry_run})
            view = self.run_view(s.get(Run, run_id))
        if reserved_by is None:
            self._wake()
        return view

    def trigger_tier(self, tier: str, *, actor: str, dry_run: bool = False) -> list[dict[str, Any]]:
        tasks, _ = self.list_tasks(tier=tier, enabled=True)
        if not tasks:
            raise NotFound(
                f"no enabled task has tier {tier!r}",
                hint="add `tiers: [" + tier + "]` to tasks in upkeep.yaml",
            )
        unconfirmed = [
            t["name"]
            for t in tasks
            if self.registry.get(t["type"]).needs_confirm and not (dry_run or (t["config"] or {}).get("dry_run"))
        ]
        if unconfirmed:  # refused before any run of the tier exists
            raise UserError(
                f"tier {tier!r} holds tasks that need confirmation for each run: {', '.join(unconfirmed)}",
                hint="a tier never confirms a run: take them out of the tier, or run them by name with --yes",
                field="tier",
            )
        return [self.trigger(t["id"], actor=actor, dry_run=dry_run, trigger=Trigger.TIER) for t in tasks]

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

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self.store.read() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}", hint="`upkeep runs list` shows recent runs", field="run")
            return self.run_view(run)

    def run_events(self, run_id: int, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        self.get_run(run_id)
        with self.store.read() as s:
            rows = s.execute(
                sa.select(RunEvent)
                .where(RunEvent.run_id == run_id, RunEvent.seq > after)
                .order_by(RunEvent.seq)
                .limit(limit)
            ).scalars()
            return [
                {
                    "seq": e.seq,
                    "ts": e.ts.isoformat(),
                    "level": e.level,
                    "event": e.event,
                    "message": e.message,
                    "data": e.data,
                }
                for e in rows
            ]

    def cancel_run(self, run_id: int, *, actor: str) -> dict[str, Any]:
        before = self.get_run(run_id)
        status = lifecycle.cancel(self.store, run_id)
        if before["status"] == "submitted" and self.settings.executor == "celery":
            from upkeep.distributed import revoke

            revoke(self.settings, run_id)  # its message is on the broker: workers drop it unseen
        with self.store.write() as s:
            self._audit(s, actor, "cancel", "run", run_id, {"status": before["status"]}, {"status": status})
        self._wake()
        return self.get_run(run_id)

    # --- audit and stats --------------------------------------------------------------------

    def list_audit(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        object_type: str | None = None,
        object_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        query = sa.select(AuditEntry)
        if object_type:
            query = query.where(AuditEntry.object_type == object_type)
        if object_id:
            query = query.where(AuditEntry.object_id == object_id)
        with self.store.read() as s:
            total = s.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            rows = s.execute(query.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)).scalars()
            return [
                {
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
                for a in rows
            ], total

    def record_audit(
        self,
        actor: str,
        action: str,
        object_type: str,
        object_id: Any,
        before: Any = None,
        after: Any = None,
        detail: str | None = None,
    ) -> None:
        with self.store.write() as s:
            self._audit(s, actor, action, object_type, object_id, before, after, detail)

    def overdue_tasks(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Tasks with no run started within a slot + grace, or no success within expect_success_within.

        One definition for the CLI, the API, alerts and metrics: ``Queries.overdue``.
        """
        from upkeep.queries import Queries

        return Queries(self.store, self.clock).overdue(now)

    def stats(self, days: int = 7) -> dict[str, Any]:
        if days < 1 or days > 366:
            raise UserError("days must be between 1 and 366", field="days")
        since = self.clock.now() - timedelta(days=days)
        with self.store.read() as s:
            total_tasks = s.execute(sa.select(sa.func.count(ScheduledTask.id))).scalar_one()
            enabled = s.execute(
                sa.select(sa.func.count(ScheduledTask.id)).where(ScheduledTask.enabled.is_(True))
            ).scalar_one()
            by_status = count_by_status(s, created_since=since)
            by_outcome = dict(
                s.execute(
                    sa.select(Run.outcome, sa.func.count(Run.id))
                    .where(Run.created_at >= since, Run.status == COMPLETED)
                    .group_by(Run.outcome)
                ).all()
            )
            failing = (
                s.execute(
                    sa.select(ScheduledTask.name)
                    .where(
                        ScheduledTask.last_status.in_(("failed", "timed_out"))
                        | (ScheduledTask.last_outcome == "critical")
                    )
                    .order_by(ScheduledTask.name)
                )
                .scalars()
                .all()
            )
            active = s.execute(sa.select(sa.func.count(Run.id)).where(Run.status.in_(ACTIVE_STATUSES))).scalar_one()
        finished = sum(v for k, v in by_status.items() if k in ("completed", "failed", "timed_out", "cancelled"))
        ok = by_status.get("completed", 0)
        return {
            "days": days,
            "tasks": total_tasks,
            "enabled": enabled,
            "runs": sum(by_status.values()),
            "by_status": by_status,
            "by_outcome": {str(k): v for k, v in by_outcome.items()},
            "success_rate": round(ok / finished, 4) if finished else None,
            "failing_now": list(failing),
            "active_runs": active,
            "overdue": self.overdue_tasks(),
        }
