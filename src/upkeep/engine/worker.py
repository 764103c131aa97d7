"""A worker process of the embedded executor (``engine.pool``): it calls the handlers of the runs
its supervisor hands it, one at a time, and dies with its parent."""

from __future__ import annotations

import logging
import os
import queue
import threading
from multiprocessing.connection import Connection

from upkeep.engine import lifecycle
from upkeep.engine.context import ServicesFactory
from upkeep.engine.detached import detach, die_with_parent  # noqa: F401  (runtime and distributed use it)
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.states import FAILED

log = logging.getLogger(__name__)


def worker_main(
    conn: Connection, settings_json: str, services: ServicesFactory | None = None, preload: tuple[str, ...] = ()
) -> None:
    """Entry point of a worker process: execute what the supervisor sends, one run at a time.

    Messages in: ``("claimed", ClaimedRun)`` (the supervisor claimed it for this process: call the
    handler, send its ``lifecycle.Finish`` back), ``("run", run_id)`` (claim it here, execute and record it),
    ``("cancel", run_id)`` (set the run's cancel flag) and ``None`` (exit). A reader thread takes
    them, so a cancel reaches a handler that is still running. ``preload``: what the worker
    prepares before it says it is ready (``HandlerSpec.preload``).
    """
    # the parent is the fork server, which exits with the supervisor; a supervisor already gone
    # shows as EOF on ``conn``, which ends this loop
    detach()
    serve(conn, settings_json, services, preload)


def serve(
    conn: Connection,
    settings_json: str,
    services: ServicesFactory | None = None,
    preload: tuple[str, ...] = (),
    *,
    cancelled: frozenset[int] = frozenset(),
) -> None:
    """``worker_main`` in a process already detached (``engine.early``'s worker, adopted).
    ``cancelled``: runs whose cancel came before serving (the early worker's): their flag starts set."""
    from upkeep.engine.execute import call_handler, execute_run, unwatched
    from upkeep.engine.registry import REGISTRY
    from upkeep.engine.registry import preload as prepare

    settings = Settings.model_validate_json(settings_json)
    store = Store(settings.resolved_database_url, pool_size=2)
    run_services = services(store, settings, REGISTRY) if services is not None else None
    identity = lifecycle.WorkerIdentity.current()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    cancel_flags: dict[int, threading.Event] = {}

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                inbox.put(None)
                return
            kind, payload = message
            if kind == "cancel":
                flag = cancel_flags.get(payload)
                if flag is not None:
                    flag.set()
                continue
            run_id = payload.id if kind == "claimed" else payload
            flag = cancel_flags[run_id] = threading.Event()  # before the run is queued: no cancel is lost
            if run_id in cancelled:  # sent once, before this process served (``engine.early``)
                flag.set()
            inbox.put(message)

    threading.Thread(target=read, name="worker-inbox", daemon=True).start()
    prepare(preload)
    conn.send(("ready", os.getpid()))
    while (message := inbox.get()) is not None:
        kind, payload = message
        run_id = payload.id if kind == "claimed" else payload
        try:
            if kind == "claimed":
                ending = call_handler(
                    store, payload, settings, cancel_event=cancel_flags[run_id], services=run_services
                )
                reply: tuple = ("ended", run_id, ending)
            else:
                # the supervisor watches it (heartbeat, cancel, deadline) as it watches the others
                done = execute_run(store, run_id, settings, worker=identity, services=run_services, watch=unwatched)
                reply = ("done", run_id, done)
        except Exception as exc:  # the store went away: report and let the reaper recover the run
            log.exception("run %s could not be executed", run_id)
            if kind == "claimed":
                reply = ("ended", run_id, lifecycle.Finish(run_id, FAILED, error=f"{type(exc).__name__}: {exc}"))
            else:
                reply = ("done", run_id, f"error: {exc}")
        finally:
            cancel_flags.pop(run_id, None)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            break
    store.dispose()
