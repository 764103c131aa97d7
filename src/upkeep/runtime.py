"""Starting upkeep's long-running shapes: serve (API + UI + scheduler + worker), scheduler, worker.

The embedded default upgrades its own schema on start and applies the config file, so
``make run`` is all a first start needs.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING

# Imported by the functions that use them: the CLI calls ``open_store`` and ``configure_logging``
# without loading the scheduler, the executor or the settings model.
if TYPE_CHECKING:
    from upkeep.settings import Settings
    from upkeep.store.db import Store

log = logging.getLogger("upkeep")


def open_store(settings: Settings, *, upgrade: bool) -> Store:
    from upkeep.store.db import Store

    store = Store(settings.resolved_database_url)
    store.check_connection()
    if upgrade:
        store.upgrade()
    elif not store.is_up_to_date():
        from upkeep.errors import UserError

        raise UserError("the database schema is not up to date", hint="run `upkeep db upgrade`")
    return store


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _wait_for_signal(stop: threading.Event) -> None:
    def handle(signum, frame):
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):
            signal.signal(sig, handle)
    while not stop.wait(1.0):
        pass


def recover_on_start(store: Store, settings: Settings) -> dict:
    """Before any new work: record the results that stopped workers on this host kept, then
    recover this host's runs whose worker process is gone (kill their leftovers, retry or fail
    them). Heartbeats are not judged here: the store may only just have come back."""
    from upkeep.engine.pending import PendingResults
    from upkeep.engine.reaper import Reaper

    kept = PendingResults(store, settings.resolved_data_dir, retry_max=settings.heartbeat_seconds)
    if kept.adopt():
        while not kept.flush(now=True):
            time.sleep(kept.delay)
    report = Reaper(store, settings).reap(judge_heartbeats=False)
    if report.recovered or report.requeued:
        log.warning(
            "recovered %d run(s), requeued %d after an unclean stop",
            len(report.recovered),
            len(report.requeued),
        )
    return report.as_dict()


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    worker: bool = True,
    scheduler: bool = True,
    apply_config: bool = True,
    access_log: bool = False,
) -> None:
    """API + UI (+ workers, scheduler) until stopped. Requests are logged only with ``access_log``
    (or ``server.access_log`` / ``UPKEEP_ACCESS_LOG``): a UI page asks for several a second."""
    import uvicorn

    from upkeep.api.app import create_app
    from upkeep.engine.pool import EmbeddedExecutor
    from upkeep.engine.scheduler import Scheduler

    store = open_store(settings, upgrade=settings.is_sqlite or settings.executor == "embedded")
    parts: list = []
    if store.is_sqlite:  # the commits of serve's threads leave the WAL checkpoints to one of its own
        from upkeep.engine.checkpoints import WalCheckpointer

        parts.append(WalCheckpointer(store))
        parts[-1].start()
    if apply_config and settings.config_path.exists():
        from upkeep.app.config import apply_file

        apply_file(settings, store, actor="serve", prune=False, dry_run=False, quiet=True)
    recover_on_start(store, settings)
    if worker:
        if settings.executor == "celery":
            log.warning("UPKEEP_EXECUTOR=celery: run workers with `upkeep worker`; serve will not execute runs")
        else:
            from upkeep.app.run_services import RunServices

            executor = EmbeddedExecutor(settings, store, services=RunServices)
            executor.start()
            parts.append(executor)
            # the warm workers (``workers_warm``) should be ready for the first slots
            if not executor.wait_ready(WORKERS_READY_SECONDS):
                log.warning("workers not ready after %ss; starting the scheduler anyway", WORKERS_READY_SECONDS)
    if scheduler:
        for part in scheduler_parts(settings, store):  # the scheduler, the alerter, a Celery dispatcher
            part.start()
            parts.append(part)
    app = create_app(settings, store=store)
    app.state.health.scheduler = next((part for part in parts if isinstance(part, Scheduler)), None)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", lifespan="on", access_log=access_log or settings.access_log
    )
    server = uvicorn.Server(config)
    settle_heap()
    try:
        server.run()
    finally:
        for part in reversed(parts):
            part.stop()


WORKERS_READY_SECONDS = 30.0


def settle_heap() -> None:
    """Once started: what start-up made (modules, the app, the schema, the settings) lives as long
    as the process, so the collector's full passes stop walking it (``gc.freeze``). They held the
    interpreter lock for 70-180 ms in ``upkeep serve`` with 10,000 tasks a minute, and every run
    due meanwhile waited; 10 ms once frozen (the measurements: benchmarks/README.md)."""
    import gc

    gc.collect()
    gc.freeze()


def scheduler_parts(settings: Settings, store: Store) -> list:
    """The scheduler loop, plus the Celery dispatcher in distributed mode, plus the alerter (in
    this process while few runs finish, in a child process while many do: ``notify.offload``)."""
    from upkeep.engine.scheduler import Scheduler
    from upkeep.notify.offload import OffloadingAlerter
    from upkeep.people import approvals

    parts: list = [Scheduler(store, settings, chores=(approvals.expire,))]
    if settings.executor == "celery":
        from upkeep.distributed import CeleryDispatcher

        parts.append(CeleryDispatcher(settings, store))
    parts.append(OffloadingAlerter(store, settings))
    return parts


def run_scheduler(settings: Settings) -> None:
    store = open_store(settings, upgrade=False)
    parts = scheduler_parts(settings, store)
    for part in parts:
        part.start()
    settle_heap()
    stop = threading.Event()
    try:
        _wait_for_signal(stop)
    finally:
        for part in reversed(parts):
            part.stop()


def run_worker(settings: Settings, *, queues: list[str] | None, concurrency: int | None) -> None:
    """``upkeep worker``: a Celery worker in distributed mode, else an embedded executor."""
    if settings.executor == "celery":
        from upkeep.distributed import run_worker as run_celery_worker

        store = open_store(settings, upgrade=False)
        recover_on_start(store, settings)
        store.dispose()
        from upkeep.app.run_services import RunServices

        run_celery_worker(settings, queues=queues, concurrency=concurrency, services=RunServices)
        return
    run_embedded_worker(settings, queues=queues, concurrency=concurrency)


def run_embedded_worker(settings: Settings, *, queues: list[str] | None, concurrency: int | None) -> None:
    import os

    from upkeep.app.run_services import RunServices
    from upkeep.clock import utcnow
    from upkeep.engine.lifecycle import HOSTNAME
    from upkeep.engine.pool import EmbeddedExecutor
    from upkeep.engine.scheduler import record_instance

    store = open_store(settings, upgrade=False)
    recover_on_start(store, settings)
    executor = EmbeddedExecutor(settings, store, size=concurrency, queues=queues, services=RunServices)
    executor.start()
    stop = threading.Event()
    instance = f"worker:{HOSTNAME}:{os.getpid()}"

    def beat():
        while not stop.wait(settings.heartbeat_seconds):
            with contextlib.suppress(Exception):
                record_instance(store, instance, "worker", utcnow(), queues=queues)

    record_instance(store, instance, "worker", utcnow(), queues=queues)
    threading.Thread(target=beat, daemon=True).start()
    try:
        _wait_for_signal(stop)
    finally:
        executor.stop()
