"""Run a handler in-process against a real store, for handler tests.

The executor runs handlers in killable worker processes; handler tests call the function
directly with a real ``RunContext`` whose events, progress and records go to the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from upkeep.clock import Clock
from upkeep.engine.context import Inventory, RunContext
from upkeep.engine.journal import StoreJournal
from upkeep.engine.registry import REGISTRY
from upkeep.store.db import Store
from upkeep.store.models import Run, RunEvent
from upkeep.store.records import Records


def make_context(
    store: Store,
    task_type: str = "test.noop",
    *,
    dry_run: bool = False,
    confirm: bool = False,
    targets: dict[str, Any] | None = None,
    data_dir: Path | None = None,
    clock: Clock | None = None,
    services: Any = None,
    task_name: str | None = None,
) -> RunContext:
    with store.write() as s:
        run = Run(task_type=task_type, task_name=task_name, status="running", origin="manual", dry_run=dry_run)
        s.add(run)
        s.flush()
        run_id = run.id
    return RunContext(
        run_id=run_id,
        task_type=task_type,
        task_name=task_name,
        journal=StoreJournal(store),
        records_factory=lambda domain: Records(store, domain),
        dry_run=dry_run,
        confirm=confirm,
        targets=Inventory(targets or {}),
        clock=clock or Clock(),
        data_dir=data_dir or Path(".upkeep"),
        services=services,
    )


def run_handler(store: Store, task_type: str, config: dict | None = None, **context_kwargs) -> dict:
    """Validate ``config`` with the handler's model and call it; returns the result dict."""
    spec = REGISTRY.get(task_type)
    raw, flags = spec.split_run_flags(config)
    context_kwargs.setdefault("dry_run", bool(flags.get("dry_run", False)))
    ctx = make_context(store, spec.name, **context_kwargs)
    model = spec.validate_config(raw)
    result = spec.func(ctx, model)
    result = dict(result or {})
    result.setdefault("outcome", "ok")
    result["_run_id"] = ctx.run_id
    return result


def events_of(store: Store, run_id: int) -> list[dict]:
    with store.read() as s:
        rows = s.execute(sa.select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)).scalars()
        return [{"seq": e.seq, "level": e.level, "event": e.event, "message": e.message, "data": e.data} for e in rows]
