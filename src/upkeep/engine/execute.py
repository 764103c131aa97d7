"""Execute one run in the current process: claim it, call its handler, record the end.

Used by the embedded worker processes and by the Celery task alike. The executor that owns this
process enforces the deadline from outside (it kills the process group); here the handler gets
the deadline, a heartbeat thread, and cooperative cancellation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from upkeep.clock import Clock
from upkeep.engine import lifecycle
from upkeep.engine.context import Inventory, RunContext, Services
from upkeep.engine.handling import ending_of, invoke, resolve_config
from upkeep.engine.lifecycle.sql import SqlLifecycle
from upkeep.engine.pending import BufferingJournal, record_or_keep, until_store_answers
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.engine.watch import Watcher, WatchThread
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.records import Records, instance_secrets, load_targets

log = logging.getLogger(__name__)


def run_secrets(store: Store) -> list[str]:
    """The secret values a run's output is scrubbed of before any of it is known (``instance_secrets``)."""
    return until_store_answers(lambda: instance_secrets(store), what="the run starts")


def call_handler(
    store: Store,
    claimed: lifecycle.ClaimedRun,
    settings: Settings,
    *,
    cancel_event: threading.Event,
    registry: Registry = REGISTRY,
    clock: Clock | None = None,
    services: Services | None = None,
) -> lifecycle.Finish:
    """Call the handler of a claimed run; how it ended, secrets scrubbed (nothing recorded yet)."""
    journal = BufferingJournal(store)
    collected = run_secrets(store)

    def call() -> dict | None:
        spec = registry.get(claimed.task_type)
        model, flags = resolve_config(spec, claimed.config, collected)
        ctx = RunContext(
            run_id=claimed.id,
            task_type=spec.name,
            task_name=claimed.task_name,
            journal=journal,
            records_factory=lambda domain: Records(store, domain),
            attempt=claimed.attempt,
            dry_run=claimed.dry_run or bool(flags.get("dry_run", False)),
            confirm=claimed.confirm,
            deadline=claimed.deadline_at,
            targets=Inventory(loader=lambda: load_targets(store), secrets=collected),
            clock=clock or Clock(),
            data_dir=settings.resolved_data_dir,
            services=services,
            secrets=collected,
            cancel_event=cancel_event,
            requested_type=claimed.requested_type,
        )
        return invoke(spec, ctx, model)

    ending = ending_of(call, journal, claimed.id, collected)
    return lifecycle.Finish(claimed.id, **vars(ending), events=tuple(journal.backlog))


@contextlib.contextmanager
def watch_in_thread(
    store: Store, claimed: lifecycle.ClaimedRun, settings: Settings, cancel_event: threading.Event
) -> Iterator[None]:
    """The watcher in a thread of its own for the length of one run: heartbeat and cancel requests
    (passed on to the handler). Deadlines stay cooperative: nothing here can kill the handler."""
    watcher = Watcher(
        SqlLifecycle(store),
        heartbeat_seconds=settings.heartbeat_seconds,
        cancel_grace_seconds=settings.cancel_grace_seconds,
        end=None,
    )
    watcher.watch(claimed.id, claimed.deadline_at, on_cancel=cancel_event.set)
    thread = WatchThread(watcher, name=f"watch-{claimed.id}")
    thread.start()
    try:
        yield
    finally:
        thread.stop()


@contextlib.contextmanager
def unwatched(*_args: Any) -> Iterator[None]:
    """For a run its executor watches from outside (the embedded supervisor, the foreground runner)."""
    yield


def execute_claimed(
    store: Store,
    claimed: lifecycle.ClaimedRun,
    settings: Settings,
    *,
    registry: Registry = REGISTRY,
    clock: Clock | None = None,
    services: Services | None = None,
    watch: Callable[..., contextlib.AbstractContextManager] = watch_in_thread,
) -> str:
    """Run the handler of a claimed run and record how it ended.

    While the handler runs, ``watch(store, claimed, settings, cancel_event)`` beats the run's
    heartbeat and sets ``cancel_event`` on a cancel request: by default a thread for this run; in
    a Celery pool process the watcher thread that process keeps for all its runs; ``unwatched``
    where the executor's own watcher does it from outside.
    """
    cancel_event = threading.Event()
    with watch(store, claimed, settings, cancel_event):
        ending = call_handler(
            store, claimed, settings, cancel_event=cancel_event, registry=registry, clock=clock, services=services
        )
    # tried at least once a heartbeat: recorded before the reaper could judge the run lost
    record_or_keep(store, settings.resolved_data_dir, ending, retry_max=settings.heartbeat_seconds)
    return ending.status


def execute_run(
    store: Store,
    run_id: int,
    settings: Settings,
    *,
    worker: lifecycle.WorkerIdentity | None = None,
    registry: Registry = REGISTRY,
    services: Services | None = None,
    watch: Callable[..., contextlib.AbstractContextManager] = watch_in_thread,
) -> str | None:
    """Claim and execute a run; None when the claim failed (someone else has it)."""
    claimed = lifecycle.claim(store, run_id, worker or lifecycle.WorkerIdentity.current())
    if claimed is None:
        return None
    return execute_claimed(store, claimed, settings, registry=registry, services=services, watch=watch)
