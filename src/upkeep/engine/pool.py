"""The embedded executor: a pool of worker processes that can be killed and replaced.

Each worker process starts its own session (its process group id is its pid) and asks the kernel
to kill it when the supervisor dies. A handler's subprocesses stay in that group, so killing the
group at a run's deadline (or after a cancel's grace period) removes the whole process tree,
even for a pure-Python handler that ignores its deadline. The group id is recorded on the run, so
recovery after a crash can kill what is left of a dead attempt before retrying it.

The supervisor does the store work of plain runs in batches: one transaction records every result
that arrived in one wake-up and claims a due run for every idle worker (with that worker's pid and
process group), and its ``Watcher`` (``engine.watch``) beats the heartbeats of all busy runs in
one UPDATE and enforces their cancels and deadlines. A worker then only calls
the handler. Runs with mutex locks or a cancel request are claimed by the worker
itself (``lifecycle.claim``), which owns the lock logic. This is what lets one SQLite writer keep up
with thousands of runs a minute (``make bench scheduler``).

Workers start when they are needed: when a run is due (or a task's next slot is WARM_AHEAD_SECONDS
away) and no worker is free, one for each run due within BURST_SECONDS of the first, up to
``worker_processes``. A worker idle for ``worker_idle_seconds`` exits, unless it is one of the
``workers_warm`` kept; when the last one has gone, so does the fork server. An idle daemon holds
no worker process at all.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import sqlalchemy as sa

from upkeep.engine import lifecycle
from upkeep.engine.background import Background
from upkeep.engine.children import START_LOCK, stop_resource_tracker_if_unused
from upkeep.engine.context import ServicesFactory, kill_process_group, kill_tree
from upkeep.engine.lifecycle.sql import SqlLifecycle
from upkeep.engine.pending import PendingResults, is_outage
from upkeep.engine.readiness import EXITED, WOKEN, Readiness
from upkeep.engine.wakeup import Notifier
from upkeep.engine.watch import Watcher
from upkeep.engine.worker import worker_main
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.run_tables import runs as RUNS
from upkeep.store.states import FAILED, PENDING
from upkeep.store.tables import scheduled_tasks

log = logging.getLogger(__name__)

# a worker is started this long before a task's next slot, so the run starts on time although
# the fork server and the worker start from nothing after an idle spell
WARM_AHEAD_SECONDS = 10.0
# runs due within this long of each other are taken to overlap: the pool starts a worker for each
# of them at once (a burst, or thousands of slots a minute), up to its size
BURST_SECONDS = 1.0


@functools.cache
def _work_ahead_queries(by_queue: bool) -> tuple[sa.Select, sa.Select]:
    """The due times of the first pending runs, and the first next slots of enabled tasks (built
    once: building a statement costs more than running it)."""
    runs, tasks = RUNS, scheduled_tasks
    pending = sa.select(runs.c.due_at).where(runs.c.status == PENDING)
    slots = sa.select(tasks.c.next_run_at).where(tasks.c.enabled.is_(True), tasks.c.next_run_at.is_not(None))
    if by_queue:
        pending = pending.where(runs.c.queue.in_(sa.bindparam("queues", expanding=True)))
        slots = slots.where(tasks.c.queue.in_(sa.bindparam("queues", expanding=True)))
    limit = sa.bindparam("limit")
    return pending.order_by(runs.c.due_at).limit(limit), slots.order_by(tasks.c.next_run_at).limit(limit)


_fork_server_lock = START_LOCK  # also the resource tracker's: ``engine.children``
# worker processes of this process's fork server, over all executors: a set of processes rather
# than a count, so a worker ended twice or never reported gone cannot keep the server or stop it early
_fork_server_workers: set[multiprocessing.process.BaseProcess] = set()


def _fork_server_worker_gone(process: multiprocessing.process.BaseProcess) -> None:
    with _fork_server_lock:
        _fork_server_workers.discard(process)


def _stop_fork_server_if_unused() -> None:
    """Stop the fork server when none of its workers is alive. Its workers die with it
    (``die_with_parent``), hence the set over all executors."""
    with _fork_server_lock:
        _fork_server_workers.difference_update([p for p in _fork_server_workers if not p.is_alive()])
        if not _fork_server_workers:
            from multiprocessing import forkserver

            # the next worker starts a new one (``ensure_running``); CPython has no public stop
            forkserver._forkserver._stop()
            stop_resource_tracker_if_unused()


def _worker_context():
    """Worker processes fork from a server process that imported the engine once (``forkserver``
    with preload): they share those pages instead of importing them each. Each worker imports the
    modules of the handlers it runs (``Registry.resolve``)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["upkeep.engine.worker_preload"])
    return context


@dataclass
class Slot:
    process: multiprocessing.Process
    conn: Connection
    ready: bool = False
    run_id: int | None = None
    idle_since: float = 0.0  # monotonic time it became ready or free

    @property
    def identity(self) -> lifecycle.WorkerIdentity:
        pid = self.process.pid or 0
        return lifecycle.WorkerIdentity(host=lifecycle.HOSTNAME, pid=pid, pgid=pid)  # a worker leads its own group

    def free(self) -> None:
        self.run_id = None
        self.idle_since = time.monotonic()

    @property
    def busy(self) -> bool:
        return self.run_id is not None


class EmbeddedExecutor(Background):
    """Dispatches due pending runs to a pool of worker processes, enforcing deadlines and cancels."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        size: int | None = None,
        queues: list[str] | None = None,
        notifier: Notifier | None = None,
        context: multiprocessing.context.BaseContext | None = None,
        services: ServicesFactory | None = None,
    ):
        """``services`` makes each worker's ``ctx.services`` (``upkeep.app.run_services.RunServices``)."""
        self.settings = settings
        self.store = store
        self.services = services
        self.size = size or settings.worker_processes
        self.warm = min(settings.workers_warm, self.size)
        self.queues = queues
        self.notifier = notifier or Notifier(store, settings.resolved_data_dir)
        self.label = f"{lifecycle.HOSTNAME}:{os.getpid()}"
        self._ctx = context or _worker_context()
        self._slots: list[Slot] = []
        super().__init__()
        self._settings_json = settings.model_dump_json()
        self._preload: tuple[str, ...] = ()
        self._quiet_until: float | None = None  # monotonic time until which no work is near
        self._retire_at: float | None = None  # monotonic time the next free worker's idle spell ends
        self._readiness = Readiness()
        self._next_wait = 0.0  # how long the next step waits for the workers (``_step``)
        self.watcher = Watcher(
            SqlLifecycle(store),
            heartbeat_seconds=settings.heartbeat_seconds,
            cancel_grace_seconds=settings.cancel_grace_seconds,
            end=self._end_run,
        )
        # results the store did not take yet (it is down, its disk is full): recorded when it answers
        self.pending = PendingResults(store, settings.resolved_data_dir, retry_max=settings.heartbeat_seconds)
        self.instance_id = f"worker:{lifecycle.HOSTNAME}:{os.getpid()}"
        self._next_vouch = 0.0

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop and the ``workers_warm`` workers; the others start when runs are due."""
        for _ in range(self.warm):
            self._slots.append(self._spawn())
        super().start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every worker process started so far is ready; False on timeout."""
        deadline = time.monotonic() + timeout
        while not all(slot.ready for slot in self._slots):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    thread_name = "executor"

    def wake(self) -> None:
        self.notifier.wake()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        for slot in self._slots:
            if slot.busy:
                self._kill(slot)
            else:
                with contextlib.suppress(Exception):
                    slot.conn.send(None)
        for slot in self._slots:
            slot.process.join(2)
            if slot.process.is_alive():
                self._kill(slot)
            else:
                self._gone(slot)
        self._slots = []
        self._readiness.close()
        if self._forked_by_server:
            _stop_fork_server_if_unused()

    def _spawn(self) -> Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self._settings_json, self.services, self._preload),
            name="upkeep-worker",
            daemon=False,
        )
        if self._forked_by_server:
            # under the lock: another executor's idle check must not stop the server between
            # this worker's fork and its counting (the worker dies with the server)
            with _fork_server_lock:
                process.start()
                _fork_server_workers.add(process)
        else:
            process.start()
        child.close()
        return Slot(process=process, conn=parent)

    @property
    def _forked_by_server(self) -> bool:
        return self._ctx.get_start_method() == "forkserver"

    def _gone(self, slot: Slot) -> None:
        """``slot``'s process has ended for good."""
        slot.conn.close()
        if self._forked_by_server:
            _fork_server_worker_gone(slot.process)

    def _kill(self, slot: Slot) -> None:
        pid = slot.process.pid
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            kill_tree(pid)
            kill_process_group(pid)
        slot.process.join(5)
        self._gone(slot)

    def _replace(self, slot: Slot, then=None) -> None:
        """Kill a slot's process tree, call ``then()`` (record how the run ended), start a new worker."""
        if slot.run_id is not None:
            self.watcher.forget(slot.run_id)
        self._kill(slot)
        if then is not None:
            then()
        if not slot.ready:
            # it died before it was ready: do not respawn in a tight loop
            log.error(
                "worker process %s exited during start-up (exit code %s); retrying in 2s",
                slot.process.pid,
                slot.process.exitcode,
            )
            self._stop.wait(2.0)
        index = self._slots.index(slot)
        self._slots[index] = self._spawn()

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                log.exception("executor step failed; retrying in 1s")
                self._stop.wait(1.0)
        self.pending.flush(now=True)  # the results of the last wake-up (kept on disk if the store is down)

    def _step(self) -> None:
        # wait first: a step that failed (the store is down) still takes what the workers sent
        # before it tries again, and the results go first: whatever fails later in this step, they
        # are recorded or kept on disk (``_record_and_start`` and ``flush`` save them)
        wait, self._next_wait = self._next_wait, 0.0
        self._receive(timeout=wait)
        idle = [s for s in self._slots if s.ready and not s.busy]
        until_due = None
        if idle:
            handout = self._record_and_start(idle)
            for slot, item in zip(idle, handout.items, strict=False):
                self._hand(slot, item)
            if len(handout.items) < len(idle):  # idle workers remain: sleep until the next run is due
                until_due = handout.sleep_seconds(self.settings.scheduler_max_sleep_seconds)
        self.pending.flush()  # what no hand-over recorded: no worker was idle, or after a failed attempt
        self.watcher.check()
        self._vouch()
        self._size_pool()
        self._next_wait = self._sleep_time(until_due)

    def _record_and_start(self, idle: list[Slot]) -> lifecycle.Handout:
        """Record the results that came in and hand due runs to the idle workers in one transaction
        (a worker's result frees it for the next run: one transaction per hand-over, not two)."""
        workers = [s.identity for s in idle]
        finishing = self.pending.due()
        try:
            handout = lifecycle.start_due_runs(
                self.store, workers, queues=self.queues, dispatcher=self.label, finishing=finishing
            )
        except Exception:
            if not finishing:
                raise
            # the results on their own: kept, and on disk, if the store does not take them
            self.pending.flush(now=True)
            return lifecycle.start_due_runs(self.store, workers, queues=self.queues, dispatcher=self.label)
        self.pending.recorded(finishing)
        return handout

    # --- workers on demand ------------------------------------------------------------------

    def _size_pool(self) -> None:
        """Start workers when work is near and none is free; retire workers idle too long."""
        if self._stop.is_set():
            return  # ``stop`` is ending the workers: a step still running must not start more
        now = time.monotonic()
        free = [s for s in self._slots if not s.busy]  # ready or starting
        room = len(self._slots) < self.size and not free
        expired = [s for s in free if s.ready and now - s.idle_since >= self.settings.worker_idle_seconds]
        # the loop wakes then (``_sleep_time``): taken here, with the same ``now``, so a worker whose
        # spell ends between this look and the loop's sleep is not slept past (it would have been,
        # for up to ``scheduler_max_sleep_seconds``); one kept for near work is not waited for again
        self._retire_at = min(
            (s.idle_since + self.settings.worker_idle_seconds for s in free if s.ready and s not in expired),
            default=None,
        )
        surplus = len(self._slots) - self.warm
        if not room and not (expired and surplus > 0):
            if self._quiet_until is not None and now >= self._quiet_until:
                self._quiet_until = None  # out of date, and no reason to look now
            return
        if self._quiet_until is None or now >= self._quiet_until:
            until_work, near = self._work_ahead()
            if until_work is not None and until_work <= WARM_AHEAD_SECONDS:
                self._quiet_until = None
                if room:
                    # a burst of runs, or a schedule with many slots close together, starts its
                    # workers together and before the slots, not one each time the others are
                    # busy: a worker started at its run's slot delays that run, and its start's
                    # CPU the others
                    for _ in range(min(self.size - len(self._slots), near)):
                        self._slots.append(self._spawn())
                return  # keep the idle workers for it
            # nothing near: look again when it is (a new run wakes the loop before, see ``_receive``)
            self._quiet_until = now + min(
                self.settings.scheduler_max_sleep_seconds,
                until_work - WARM_AHEAD_SECONDS if until_work is not None else float("inf"),
            )
        for slot in sorted(expired, key=lambda s: s.idle_since)[: max(0, surplus)]:
            self._retire(slot)
        if self._forked_by_server and not self._slots:
            # after the last retirement, and whatever else ended the last worker (a kill, a lost
            # worker not replaced): an idle pool holds no process
            _stop_fork_server_if_unused()

    def _work_ahead(self) -> tuple[float | None, int]:
        """Seconds until the earliest pending run of our queues is due or an enabled task's next slot
        comes (0 when already due; None when neither is in sight), and how many runs are due within
        BURST_SECONDS of that (pending runs and slots, counted up to the pool's size)."""
        queues = {"queues": list(self.queues)} if self.queues else {}
        pending, slots = _work_ahead_queries(bool(self.queues))
        now = datetime.now(UTC)
        with self.store.read_connection() as c:
            times = [*c.execute(pending, {"limit": self.size, **queues}).scalars()]
            times += c.execute(slots, {"limit": self.size, **queues}).scalars()
        if not times:
            return None, 0
        first = max(min(times), now)
        burst = sum(1 for t in times if t <= first + timedelta(seconds=BURST_SECONDS))
        return (first - now).total_seconds(), min(self.size, burst)

    def _retire(self, slot: Slot) -> None:
        """End an idle worker: it exits when it reads None (``worker_main``)."""
        self._slots.remove(slot)
        with contextlib.suppress(Exception):
            slot.conn.send(None)
        slot.process.join(5)
        if slot.process.is_alive():
            self._kill(slot)
        else:
            self._gone(slot)

    def _hand(self, slot: Slot, item: lifecycle.ClaimedRun | lifecycle.Dispatched) -> None:
        if isinstance(item, lifecycle.ClaimedRun):
            self._occupy(slot, item.id, item.deadline_at)
            self._send(slot, ("claimed", item))
        else:
            self._assign(slot, item.id, item.timeout_seconds)

    def _occupy(self, slot: Slot, run_id: int, deadline: datetime | None) -> None:
        slot.run_id = run_id
        self.watcher.watch(run_id, deadline, on_cancel=lambda: self._send(slot, ("cancel", run_id)))

    def _free(self, slot: Slot) -> None:
        if slot.run_id is not None:
            self.watcher.forget(slot.run_id)
        slot.free()

    def _vouch(self) -> None:
        """This worker's instance heartbeat lists every run it executes or holds the result of:
        the reaper's evidence that these runs are not lost."""
        if time.monotonic() < self._next_vouch:
            return
        self._next_vouch = time.monotonic() + self.settings.heartbeat_seconds
        from upkeep.engine.scheduler import record_instance

        held = sorted({s.run_id for s in self._slots if s.busy} | set(self.pending.run_ids()))
        record_instance(
            self.store, self.instance_id, "worker", datetime.now(UTC), queues=self.queues, info={"runs": held}
        )

    def _end(self, run_id: int, status: str, error: str) -> None:
        """Record an end the supervisor decided (kept if the store does not answer)."""
        self.pending.add(lifecycle.Finish(run_id, status, error=error, finished_at=datetime.now(UTC)))
        self.pending.flush(now=True)

    def _end_run(self, run_id: int, status: str, error: str) -> None:
        """The watcher gave up on a run (deadline, cancel grace): kill its tree, then record the end."""
        slot = next((s for s in self._slots if s.run_id == run_id), None)
        record = lambda: self._end(run_id, status, error)  # noqa: E731
        if slot is None:
            record()
        else:
            self._replace(slot, then=record)

    def _send(self, slot: Slot, message: tuple) -> None:
        try:
            slot.conn.send(message)
        except (BrokenPipeError, OSError):
            self._worker_lost(slot, "worker process exited before taking the run")

    def _assign(self, slot: Slot, run_id: int, timeout: float | None = None) -> None:
        """Send a run the worker claims itself (mutex locks, a cancel request, ``upkeep run``)."""
        if timeout is None:
            with self.store.read_connection() as s:
                timeout = s.execute(sa.select(RUNS.c.timeout_seconds).where(RUNS.c.id == run_id)).scalar()
        # the deadline counts from here, a little before the worker's claim starts the run's own
        self._occupy(slot, run_id, datetime.now(UTC) + timedelta(seconds=timeout) if timeout else None)
        self._send(slot, ("run", run_id))

    def _sleep_time(self, until_due: float | None) -> float:
        candidates = [self.settings.scheduler_max_sleep_seconds]
        if until_due is not None:
            candidates.append(until_due)
        watched = self.watcher.seconds_to_next_check()
        if watched is not None:
            candidates.append(watched)
        if any(not slot.ready for slot in self._slots):
            candidates.append(0.1)
        if self._retire_at is not None and len(self._slots) > self.warm:  # look at retiring it once it idled
            candidates.append(self._retire_at - time.monotonic())
        if self._quiet_until is not None and len(self._slots) < self.size:  # a worker to start then?
            candidates.append(self._quiet_until - time.monotonic())
        return max(0.0, min(candidates))

    def _receive(self, timeout: float) -> None:
        ready = self._readiness.wait(self._slots, self.notifier.fileno(), timeout)
        endings: list[lifecycle.Finish] = []
        exited: list[Slot] = []
        for kind, slot in ready:
            if kind == WOKEN:
                self.notifier.drain()
                self._quiet_until = None  # runs may have been made: look at the pool's size again
            elif kind == EXITED:
                exited.append(slot)
            else:
                try:
                    message = slot.conn.recv()
                except (EOFError, OSError):
                    continue
                if message[0] == "ready":
                    slot.ready = True
                    slot.idle_since = time.monotonic()
                elif message[0] in ("ended", "done"):
                    if message[0] == "ended":
                        endings.append(message[2])
                    self._free(slot)
        for ending in endings:  # recorded with the next hand-over (``_record_and_start``)
            self.pending.add(ending)
        lost = [slot for slot in exited if not slot.process.is_alive()]
        if lost:
            self.pending.flush(now=True)  # a result that came in before its worker died is its run's end
        for slot in lost:
            self._worker_lost(slot, f"worker process {slot.process.pid} exited with {slot.process.exitcode}")

    def _worker_lost(self, slot: Slot, reason: str) -> None:
        if slot.run_id is not None:
            try:
                lifecycle.recover(self.store, slot.run_id, reason)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._end(slot.run_id, FAILED, reason)  # recorded when the store answers
        self._replace(slot)
