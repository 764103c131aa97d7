"""A one-off run of a handler type, and a run and its events read while it goes, in Core statements.

``upkeep run TYPE`` runs a handler in the foreground: its process creates the run, follows it and
prints it, and imports neither the ORM, whose import and mappers cost such a command more than
everything else it does, nor the use cases that edit tasks. ``RunCases`` (the API's, the UI's and
the rest of the CLI's) answers from here too, so each of these is written once.
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
from upkeep.errors import NotFound, did_you_mean
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.run_tables import run_events as EVENTS
from upkeep.store.run_tables import runs
from upkeep.store.tables import scheduled_tasks

# refuses what a caller may not say in a handler's config (``Base.check_said``): (type, config)
ConfigCheck = Callable[[str, dict[str, Any]], None]


def _run_row(c: Any, run_id: int) -> Any:
    row = c.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}", hint="`upkeep runs list` shows recent runs", field="run")
    return row


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


def suggest(store: Store, registry: Registry, name: str) -> str | None:
    """``did you mean ...?`` over task names and handler types, for a name that is neither."""
    with store.read_connection() as c:
        names = list(c.execute(sa.select(scheduled_tasks.c.name)).scalars())
    return did_you_mean(name, [*names, *registry.names(), *registry.aliases()])


class LocalRuns:
    """What ``upkeep run`` asks for a handler type and to follow a run: the local CLI's, a trusted
    caller's (its user owns the host, so no value of a config is refused as host-scoped)."""

    def __init__(self, store: Store, *, registry: Registry = REGISTRY, clock: Clock | None = None):
        self.store = store
        self.registry = registry
        self.clock = clock or Clock()

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
