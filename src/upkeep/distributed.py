"""Distributed mode: Celery over Redis or RabbitMQ as the transport, the store as the truth.

- The scheduler process runs a ``CeleryDispatcher``: due pending runs become submitted and their
  ids are published to the run's queue (``task.queue``: a worker on host A consumes ``host-a``).
  A publish that fails puts the run back to pending; it is published again later.
- One Celery task, ``upkeep.execute_run(run_id)``, claims the run with the same conditional
  UPDATE as the embedded executor, so a redelivered message (``acks_late``) never runs twice.
- Every pool process leads its own process group. Its one watcher thread (``PoolWatch``) beats
  the heartbeat of the run in progress, passes cancel requests on to the handler, and kills that
  group (the handler and all its subprocesses) at the run's deadline or a cancel's grace period,
  after recording the end; Celery's hard time limit is only a backstop. If the worker's main
  process dies, the watcher kills its group too, the heartbeat stops and the reaper retries the run.
- The store, not the broker, recovers lost work: a submitted run nobody claimed is published
  again by the reaper, a running run whose worker died is noticed by its heartbeat. So on Redis,
  kombu's ack emulation is off: it copies every delivered message into an "unacked" hash and
  deletes it at the ack (two more round trips per run; benchmarks/README.md) only to redeliver
  after a visibility timeout that has to outlast the longest task.
  Unacknowledged messages still go back to the queue when a worker shuts down; ``acks_late``
  and prefetch 1 keep their meaning on RabbitMQ.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from celery import Celery, signals

from upkeep.engine import lifecycle
from upkeep.engine.background import Background
from upkeep.engine.lifecycle.sql import SqlLifecycle
from upkeep.engine.watch import Watcher, WatchThread
from upkeep.settings import Settings
from upkeep.store.db import Store, once_more_if_disconnected
from upkeep.store.models import COMPLETED

if TYPE_CHECKING:
    from upkeep.engine.context import ServicesFactory

log = logging.getLogger(__name__)
TASK_NAME = "upkeep.execute_run"
DISPATCH_BATCH = 200


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        from upkeep.errors import ConfigError

        raise ConfigError("UPKEEP_EXECUTOR=celery needs UPKEEP_BROKER_URL", hint="redis://host:6379/0 or amqp://...")
    app = Celery("upkeep", broker=settings.broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,  # the reaper recovers lost runs; no blind redelivery loops
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"ack_emulation": False},  # Redis; see the module docstring
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )

    @app.task(name=TASK_NAME, bind=True, acks_late=True)
    def execute_run_task(self, run_id: int) -> str | None:
        return _execute_in_worker(settings, run_id)

    return app


# --- worker side ------------------------------------------------------------------------------

_store: Store | None = None
_parent_pid: int | None = None


_pool_settings: Settings | None = None  # set by _celery_worker_main; its pool processes inherit it
_pool_services: ServicesFactory | None = None  # likewise: each pool process's ``ctx.services``


@signals.worker_process_init.connect
def _pool_process_init(**_kwargs) -> None:
    """Each pool process leads its own group, so killing the group kills exactly one run's tree;
    then it gets ready for its first run."""
    global _parent_pid
    _parent_pid = os.getppid()
    with contextlib.suppress(OSError):
        os.setsid()
    if _pool_settings is not None:
        try:
            _warm_up(_pool_settings)
        except Exception:  # the store may be down now: the first run connects again
            log.warning("pool process warm-up failed", exc_info=True)


def _warm_up(settings: Settings) -> None:
    """Connect to the store, start the watcher and compile the claim and finish statements before
    the first message arrives, so a pool process's first run does not wait for them."""
    store = _worker_store(settings)
    _pool_watch(store, settings)
    nobody = -1  # no run has this id: the statements run, compile and change nothing
    lifecycle.claim(store, nobody, lifecycle.WorkerIdentity.current())
    lifecycle.finish_many(store, [lifecycle.Finish(nobody, COMPLETED)])


def _worker_store(settings: Settings) -> Store:
    global _store
    if _store is None:
        _store = Store(settings.resolved_database_url, pool_size=2)
    return _store


class PoolWatch:
    """The watcher of a pool process (``engine.watch``), checked by one thread for all the runs
    the process executes in turn.

    For the run in progress it beats the heartbeat, passes a cancel request on to the handler
    (its cancel flag), and at the deadline or when a cancel's grace period is over records the
    end and kills this process group: the handler and all its subprocesses. At any time it kills
    the group when the worker's main process is gone; the reaper then recovers the run by its
    stopped heartbeat. One thread per process rather than two per run: starting threads was a
    fifth of a pool process's own CPU per no-op run.
    """

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self._next_vouch = 0.0
        self.watcher = Watcher(
            SqlLifecycle(store),
            heartbeat_seconds=settings.heartbeat_seconds,
            cancel_grace_seconds=settings.cancel_grace_seconds,
            end=self._end,
        )
        self.thread = WatchThread(self.watcher, also=self._also, name="upkeep-pool-watch")

    def start(self) -> None:
        self.thread.start()

    @contextlib.contextmanager
    def watching(
        self, store: Store, claimed: lifecycle.ClaimedRun, settings: Settings, cancel_event: threading.Event
    ) -> Iterator[None]:
        """``execute_claimed``'s ``watch``: watch ``claimed`` while the handler runs."""
        with self.thread.lock:
            self.watcher.watch(claimed.id, claimed.deadline_at, on_cancel=cancel_event.set)
        try:
            yield
        finally:
            with self.thread.lock:  # a check in progress ends first: nothing is killed after the run ended
                self.watcher.forget(claimed.id)

    def _also(self) -> None:
        if _parent_pid is not None and os.getppid() != _parent_pid:
            self._kill_group()
        if time.monotonic() >= self._next_vouch:
            self._next_vouch = time.monotonic() + self.settings.heartbeat_seconds
            self._vouch()

    def _vouch(self) -> None:
        """This pool process's instance heartbeat lists the run it executes and the results it
        holds that the store did not take yet: the reaper's evidence that those runs are not lost."""
        from upkeep.engine.pending import held_here
        from upkeep.engine.scheduler import record_instance

        held = sorted(held_here() | set(self.watcher.runs))
        if held:
            with contextlib.suppress(Exception):  # the store may still be down: the next beat tries
                instance = f"pool:{lifecycle.HOSTNAME}:{os.getpid()}"
                record_instance(self.store, instance, "worker", datetime.now(UTC), info={"runs": held})

    def _end(self, run_id: int, status: str, error: str) -> None:
        """Record the end (kept on disk if the store does not answer: ``upkeep worker`` records it
        later) and kill this process group."""
        from upkeep.engine.pending import PendingResults

        with contextlib.suppress(Exception):
            kept = PendingResults(self.store, self.settings.resolved_data_dir)
            kept.add(lifecycle.Finish(run_id, status, error=error, finished_at=datetime.now(UTC)))
            kept.flush(now=True)
        self._kill_group()

    @staticmethod
    def _kill_group() -> None:
        os.killpg(os.getpgid(0), signal.SIGKILL)


_watch: PoolWatch | None = None


def _pool_watch(store: Store, settings: Settings) -> PoolWatch:
    global _watch
    if _watch is None:
        _watch = PoolWatch(store, settings)
        _watch.start()
    return _watch


def _execute_in_worker(settings: Settings, run_id: int) -> str | None:
    from upkeep.engine.execute import execute_claimed
    from upkeep.engine.registry import REGISTRY

    store = _worker_store(settings)
    identity = lifecycle.WorkerIdentity.current()
    claimed = once_more_if_disconnected(lambda: lifecycle.claim(store, run_id, identity))
    if claimed is None:
        return None  # redelivered, cancelled, or waiting for a lock (claim put it back to pending)
    services = _pool_services(store, settings, REGISTRY) if _pool_services is not None else None
    return execute_claimed(store, claimed, settings, services=services, watch=_pool_watch(store, settings).watching)


# --- scheduler side ---------------------------------------------------------------------------


class CeleryDispatcher(Background):
    """Publishes due runs to the broker; runs in the scheduler process."""

    def __init__(self, settings: Settings, store: Store, app: Celery | None = None):
        from upkeep.engine.wakeup import Notifier

        self.settings = settings
        self.store = store
        self.app = app or make_celery(settings)
        self.notifier = Notifier(store, settings.resolved_data_dir)
        self.label = f"dispatcher:{lifecycle.HOSTNAME}:{os.getpid()}"
        super().__init__()

    thread_name = "celery-dispatch"

    def wake(self) -> None:
        self.notifier.wake()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self.notifier.close()

    def dispatch_once(self) -> lifecycle.Handout:
        """Publish the due runs; the handout says which were taken and when the next is due."""
        handout = lifecycle.dispatch_due_runs(self.store, limit=DISPATCH_BATCH, queues=None, worker=self.label)
        for run in handout.items:
            options = {"queue": run.queue or "default", "task_id": task_id_of(run.id)}
            if run.timeout_seconds:
                options["time_limit"] = run.timeout_seconds + 30  # backstop; the pool watcher ends the run
            try:
                self.app.send_task(TASK_NAME, args=[run.id], **options)
            except Exception as exc:
                log.warning("could not publish run %s (%s); it goes back to pending", run.id, exc)
                lifecycle.requeue(self.store, run.id)
                self._stop.wait(1.0)
        return handout

    def warm_up(self) -> None:
        """Before the first due run: a process's first publish imports kombu's transport, connects
        and looks up the result backend, 130-150 ms during which the runs due waited to be
        published (p50 fire latency 141 ms in the first second of 10,000 tasks a minute)."""
        try:
            self.app.backend  # noqa: B018 - the lookup reads the package entry points
            with self.app.producer_or_acquire() as producer:
                producer.connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        except Exception as exc:  # the first publish connects again, and says what is wrong
            log.warning("could not connect to the broker yet (%s)", exc)

    def run(self) -> None:
        self.warm_up()
        while not self._stop.is_set():
            try:
                handout = self.dispatch_once()
                if len(handout.items) == DISPATCH_BATCH:
                    continue  # more are due
                sleep = handout.sleep_seconds(self.settings.scheduler_max_sleep_seconds)
                if sleep > 0:
                    self.notifier.wait(sleep)
            except Exception:
                log.exception("dispatch failed; retrying in 1s")
                self._stop.wait(1.0)


def task_id_of(run_id: int) -> str:
    """The Celery task id of a run's message: the same for every publish of the run, so one revoke
    covers a message published again after a lost dispatch."""
    return f"run-{run_id}"


def revoke(settings: Settings, run_id: int) -> None:
    """Best effort, one connection attempt: tell the workers to drop the queued message of a
    cancelled run. The run already ended in the store, so a worker that gets the message anyway
    fails to claim it and does nothing."""
    with contextlib.suppress(Exception):
        app = make_celery(settings)
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            app.control.revoke(task_id_of(run_id), connection=connection)


def run_worker(
    settings: Settings,
    *,
    queues: list[str] | None,
    concurrency: int | None,
    services: ServicesFactory | None = None,
) -> None:
    """``upkeep worker`` in Celery mode: a Celery worker in a child process, started again when it
    dies, plus an instance heartbeat in the store. ``services`` makes the runs' ``ctx.services``.

    Celery gives up ("Unrecoverable error") on some broker reconnects: kombu's Redis transport
    can lose its connection parameters while the broker restarts. The store keeps every run, so
    a fresh Celery worker picks up where the dead one stopped.
    """
    from upkeep.clock import utcnow
    from upkeep.engine.children import keep_running
    from upkeep.engine.pending import PendingResults
    from upkeep.engine.scheduler import record_instance

    store = Store(settings.resolved_database_url)
    store.check_connection()
    queue_list = queues or ["default"]
    instance = f"worker:{lifecycle.HOSTNAME}:{os.getpid()}"
    stop = threading.Event()

    kept = PendingResults(store, settings.resolved_data_dir, retry_max=settings.heartbeat_seconds)

    def beat() -> None:
        while not stop.wait(settings.heartbeat_seconds):
            with contextlib.suppress(Exception):
                record_instance(store, instance, "worker", utcnow(), queues=queue_list)
            # results a pool process kept and could not record before it ended (a deadline kill)
            kept.adopt()
            kept.flush()

    record_instance(store, instance, "worker", utcnow(), queues=queue_list)
    threading.Thread(target=beat, daemon=True).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        keep_running(  # on stop, SIGTERM is Celery's warm shutdown: running tasks finish
            _celery_worker_main,
            (settings.model_dump_json(), queue_list, concurrency or settings.worker_processes, os.getpid(), services),
            name="upkeep-celery-worker",
            what="the Celery worker",
            stop=stop,
        )
    finally:
        stop.set()
        store.dispose()


def _celery_worker_main(
    settings_json: str,
    queue_list: list[str],
    concurrency: int,
    parent_pid: int,
    services: ServicesFactory | None = None,
) -> None:
    from upkeep.engine.registry import REGISTRY
    from upkeep.engine.worker import die_with_parent

    global _pool_settings, _pool_services
    die_with_parent(parent_pid)
    settings = _pool_settings = Settings.model_validate_json(settings_json)
    _pool_services = services
    app = make_celery(settings)
    REGISTRY.ensure_loaded()  # before the pool forks: children share the imports, the first run waits for none
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            f"--queues={','.join(queue_list)}",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=upkeep-{os.getpid()}@{lifecycle.HOSTNAME}",
        ]
    )
