"""Execute one run in the current process: claim it, call its handler, record the end.

Used by the embedded worker processes and by the Celery task alike. The executor that owns this
process enforces the deadline from outside (it kills the process group); here the handler gets
the deadline, a heartbeat thread, and cooperative cancellation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from upkeep import secrets as secret_refs
from upkeep.clock import Clock
from upkeep.engine import lifecycle
from upkeep.engine.context import (
    CommandFailed,
    DeadlineExceeded,
    Inventory,
    RunCancelled,
    RunContext,
    Services,
    WaitRequested,
)
from upkeep.engine.lifecycle.sql import SqlLifecycle
from upkeep.engine.pending import BufferingJournal, record_or_keep, until_store_answers
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.engine.watch import Watcher, WatchThread
from upkeep.errors import UserError
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.records import Records, instance_secrets, load_targets
from upkeep.store.states import CANCELLED, COMPLETED, FAILED, OUTCOMES, TIMED_OUT, WAITING

log = logging.getLogger(__name__)


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
    status, outcome, result, summary, error = FAILED, None, None, None, None
    collected: list[str] = until_store_answers(lambda: instance_secrets(store), what="the run starts")
    try:
        spec = registry.get(claimed.task_type)
        raw_config, flags = spec.split_run_flags(claimed.config)
        resolved = secret_refs.resolve(raw_config, collected=collected)
        model = spec.validate_config(resolved)
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
        if ctx.dry_run:
            ctx.info("dry_run", "dry run: nothing will be changed")
        returned = spec.func(ctx, model)
        result = _jsonable(dict(returned or {}))
        outcome = str(result.get("outcome") or "ok")
        if outcome not in OUTCOMES:
            raise ValueError(f"handler returned outcome {outcome!r}; expected one of {OUTCOMES}")
        result["outcome"] = outcome
        summary = result.get("summary")
        status = COMPLETED
    except WaitRequested as exc:  # the lifecycle parks the run without a worker
        status, summary, result = WAITING, exc.reason, exc.result
    except RunCancelled:
        status, error = CANCELLED, "cancelled on request"
    except DeadlineExceeded as exc:
        status, error = TIMED_OUT, str(exc)
    except UserError as exc:
        # bad input, config or an unreachable server: the operator must fix something (CLI exit 2)
        status, error = FAILED, str(exc)
        result = {"error_kind": "user", "error_type": type(exc).__name__}
    except CommandFailed as exc:
        status, error = FAILED, str(exc)
    except Exception as exc:
        status, error = FAILED, f"{type(exc).__name__}: {exc}"
        try:
            journal.event(claimed.id, "error", "exception", error, {"traceback": traceback.format_exc(limit=20)})
        except Exception:
            log.exception("could not record the exception of run %s", claimed.id)
    if result is not None:  # always: a password inside a URL is masked even with no secret known
        from upkeep.engine.context import _scrub_data

        result = _scrub_data(result, collected)
    if error:
        error = secret_refs.scrub(error, collected)
    if summary:
        summary = secret_refs.scrub(str(summary), collected)
    ended = datetime.now(UTC)
    return lifecycle.Finish(claimed.id, status, outcome, result, summary, error, ended, tuple(journal.backlog))


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


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
