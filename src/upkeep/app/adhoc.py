"""Runs made now (a one-off run of a handler type, a task's run, a tier's runs), and a run and its
events read while it goes, in Core statements.

``upkeep run`` runs them in the foreground: its process creates the run, follows it and prints it,
and imports neither the ORM, whose import and mappers cost such a command more than everything
else it does, nor the use cases that edit tasks. ``RunCases`` (the API's, the UI's and the rest of
the CLI's) answers from here too, so each of these is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from upkeep.app.run_views import event_view, run_view
from upkeep.clock import Clock
from upkeep.engine import lifecycle
from upkeep.engine.lifecycle import Trigger
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.errors import NotFound, UserError, did_you_mean
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.run_tables import run_events as EVENTS
from upkeep.store.run_tables import runs
from upkeep.store.tables import scheduled_tasks

# refuses what a caller may not say in a handler's config (``Base.check_said``): (type, config)
ConfigCheck = Callable[..., None]
# what an adapter checks of a run's overrides before the run is made, to name every field at fault
# its own way: (task type, the task's config with the overrides)
OverrideCheck = Callable[[str, dict[str, Any]], None]


def _run_row(c: Any, run_id: int) -> Any:
    row = c.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}", hint="`upkeep runs list` shows recent runs", field="run")
    return row


def wake(store: Store, settings: Any) -> None:
    """Tell the executors on this host (and, on PostgreSQL, every host) that a run is due now."""
    from upkeep.engine.wakeup import broadcast

    broadcast(store, settings.resolved_data_dir)


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    with store.read_connection() as c:
        return run_view(_run_row(c, run_id))


def run_events(store: Store, run_id: int, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    """The run's events after sequence number ``after``; NotFound for no such run."""
    with store.read_connection() as c:
        _run_row(c, run_id)
        rows = c.execute(
            sa.select(EVENTS).where(EVENTS.c.run_id == run_id, EVENTS.c.seq > after).order_by(EVENTS.c.seq).limit(limit)
        )
        return [event_view(e) for e in rows]


def create_adhoc_run(
    store: Store,
    registry: Registry,
    clock: Clock,
    task_type: str,
    config: dict[str, Any] | None,
    *,
    actor: str,
    dry_run: bool = False,
    confirm: bool = False,
    timeout_seconds: float | None = None,
    reserved_by: str | None = None,
    check_said: ConfigCheck | None = None,
) -> dict[str, Any]:
    """A one-off run of a handler type with its own config, audited; its view. ``check_said``
    judges the config first (None: a trusted caller, who may say anything)."""
    spec, alias = registry.resolve(task_type)
    raw, flags = spec.split_run_flags(config)
    if check_said is not None:
        check_said(spec.name, raw)
    raw = spec.storable_config(raw)
    dry_run = dry_run or bool(flags.get("dry_run"))
    spec.check_confirmed(dry_run=dry_run, confirm=confirm)
    now = clock.now()
    with store.write_connection() as c:
        run_id = lifecycle.create(
            c,
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
        after = {"run_id": run_id, "dry_run": dry_run}
        add_audit(
            c, ts=clock.now(), actor=actor, action="trigger", object_type="handler", object_id=spec.name, after=after
        )
        return run_view(_run_row(c, run_id))


def task_hint(c: Any, ref: str) -> str:
    """Where to look for a task ``ref`` names none of (a connection's or a session's reads)."""
    guess = did_you_mean(ref, c.execute(sa.select(scheduled_tasks.c.name)).scalars())
    return f"{guess} `upkeep tasks list` shows the tasks" if guess else "`upkeep tasks list` shows the tasks"


def _task_row(c: Any, ref: str | int) -> Any:
    """The task named ``ref`` (or, for digits, with that id or name)."""
    ref_text = str(ref)
    which = scheduled_tasks.c.name == ref_text
    if ref_text.isdigit():
        which = sa.or_(scheduled_tasks.c.id == int(ref_text), which)
    task = c.execute(sa.select(scheduled_tasks).where(which)).first()
    if task is None:
        raise NotFound(f"no task {ref!r}", hint=task_hint(c, ref_text), field="task")
    return task


def trigger(
    store: Store,
    registry: Registry,
    clock: Clock,
    ref: str | int,
    *,
    actor: str,
    overrides: dict[str, Any] | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    trigger: Trigger = Trigger.MANUAL,
    check: OverrideCheck | None = None,
    check_said: ConfigCheck | None = None,
) -> dict[str, Any]:
    """Queue a run of a task now, audited; its view. ``overrides`` may only touch the handler's
    overridable fields; ``check`` sees the config the run would have, before anything else judges
    it; ``check_said`` as for ``create_adhoc_run``."""
    overrides = dict(overrides or {})
    now = clock.now()
    with store.write_connection() as c:
        task = _task_row(c, ref)
        spec = registry.get(task.task_type)
        if "dry_run" in overrides:
            dry_run = bool(overrides.pop("dry_run")) or dry_run
        spec.check_overrides(overrides)
        if check is not None and overrides:
            check(task.task_type, {**(task.config or {}), **overrides})
        if check_said is not None:
            check_said(spec.name, overrides, prefix="overrides")
        config = spec.storable_config({**(task.config or {}), **overrides})
        overrides = {k: config[k] for k in overrides}
        if spec.destructive and not dry_run and (task.config or {}).get("dry_run"):
            dry_run = True
        spec.check_confirmed(dry_run=dry_run, confirm=confirm)
        run_id = lifecycle.create(
            c,
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
        after = {"run_id": run_id, "overrides": overrides, "dry_run": dry_run, "confirm": confirm}
        add_audit(
            c, ts=clock.now(), actor=actor, action="trigger", object_type="task", object_id=task.name, after=after
        )
        return run_view(_run_row(c, run_id))


def trigger_tier(
    store: Store,
    registry: Registry,
    tier: str,
    trigger_one: Callable[..., dict[str, Any]],
    *,
    actor: str,
    dry_run: bool,
) -> list[dict[str, Any]]:
    """Queue a run of every enabled task of ``tier``, each through ``trigger_one`` (a ``trigger``
    that also wakes the executors), or none when one of them needs a confirmation."""
    from upkeep.app.task_list import list_tasks

    tasks, _ = list_tasks(store, tier=tier, enabled=True, registry=registry)
    if not tasks:
        raise NotFound(
            f"no enabled task has tier {tier!r}",
            hint="add `tiers: [" + tier + "]` to tasks in upkeep.yaml",
        )
    unconfirmed = [
        t["name"]
        for t in tasks
        if registry.get(t["type"]).needs_confirm and not (dry_run or (t["config"] or {}).get("dry_run"))
    ]
    if unconfirmed:  # refused before any run of the tier exists
        raise UserError(
            f"tier {tier!r} holds tasks that need confirmation for each run: {', '.join(unconfirmed)}",
            hint="a tier never confirms a run: take them out of the tier, or run them by name with --yes",
            field="tier",
        )
    return [trigger_one(t["id"], actor=actor, dry_run=dry_run, trigger=Trigger.TIER) for t in tasks]


def suggest(store: Store, registry: Registry, name: str) -> str | None:
    """``did you mean ...?`` over task names and handler types, for a name that is neither."""
    with store.read_connection() as c:
        names = list(c.execute(sa.select(scheduled_tasks.c.name)).scalars())
    return did_you_mean(name, [*names, *registry.names(), *registry.aliases()])


class LocalRuns:
    """What ``upkeep run`` asks to make runs and follow them: the local CLI's, a trusted caller's (its
    user owns the host, so no value of a config is refused as host-scoped)."""

    def __init__(self, settings: Any, store: Store, *, registry: Registry = REGISTRY, clock: Clock | None = None):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.clock = clock or Clock()

    def task_type(self, ref: str | int) -> str | None:
        """The handler type of the task ``ref`` names (as ``trigger`` finds it); None for no task."""
        with self.store.read_connection() as c:
            try:
                return _task_row(c, ref).task_type
            except NotFound:
                return None

    def trigger(self, ref: str | int, *, actor: str, **options: Any) -> dict[str, Any]:
        view = trigger(self.store, self.registry, self.clock, ref, actor=actor, **options)
        wake(self.store, self.settings)
        return view

    def trigger_tier(self, tier: str, *, actor: str, dry_run: bool = False) -> list[dict[str, Any]]:
        return trigger_tier(self.store, self.registry, tier, self.trigger, actor=actor, dry_run=dry_run)

    def resolve(self, task_type: str) -> Any:
        """The handler's spec and the alias used; UserError for no such type."""
        return self.registry.resolve(task_type)

    def suggest(self, name: str) -> str | None:
        return suggest(self.store, self.registry, name)

    def create_adhoc_run(self, task_type: str, config: dict[str, Any] | None, *, actor: str, **options: Any) -> dict:
        return create_adhoc_run(self.store, self.registry, self.clock, task_type, config, actor=actor, **options)

    def get_run(self, run_id: int) -> dict[str, Any]:
        return get_run(self.store, run_id)

    def run_events(self, run_id: int, *, after: int = 0) -> list[dict[str, Any]]:
        return run_events(self.store, run_id, after=after)
