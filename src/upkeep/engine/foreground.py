"""``upkeep run``'s executor: the embedded pool with one worker process, driven by the caller."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing

from upkeep.engine import lifecycle
from upkeep.engine.context import ServicesFactory
from upkeep.engine.early import take as take_early_worker
from upkeep.engine.execute import run_secrets
from upkeep.engine.pool import EmbeddedExecutor, Slot
from upkeep.settings import Settings
from upkeep.store.db import Store


class ForegroundRunner(EmbeddedExecutor):
    """Execute runs in a killable worker process while the caller watches (``upkeep run``).

    The embedded executor with one worker and no loop of its own: ``execute`` hands the worker
    one run and does what the loop would (results, the watcher, a lost worker) until it ends. One
    worker process serves every ``execute`` call (a tier runs its tasks one after another); it is
    replaced only when a deadline or a cancel killed it. ``close()`` ends it.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        preload: tuple[str, ...] = (),
        *,
        services: ServicesFactory | None = None,
    ):
        # forked from this process, which has imported what the run needs (the handler's module
        # alone, see ``Registry.resolve``): no fork server importing every handler first
        super().__init__(settings, store, size=1, context=multiprocessing.get_context("fork"), services=services)
        self._preload = tuple(preload)
        # the early worker that started the handler from the command line (``engine.speculate``),
        # until its first run; and until it is told what to serve, which it is only if its
        # speculation is not that run's (or for a run after it)
        self._speculating: Slot | None = None
        self._unstarted: Slot | None = None

    def _spawn(self) -> Slot:
        """The worker forked when the command started (``engine.early``), if there is one, told
        what to serve (unless it speculates); else a worker forked now."""
        early = take_early_worker()
        if early is not None:
            slot = Slot(process=early.process, conn=early.conn)
            if early.speculating:
                slot.ready = True
                self._speculating = self._unstarted = slot
                return slot
            try:
                self._start(slot)
                return slot
            except OSError:  # it died since: end it, fork another
                early.conn.close()
                early.process.kill()
                early.process.join()
        return super()._spawn()

    def _start(self, slot: Slot) -> None:
        self._unstarted = None
        slot.ready = False
        slot.conn.send(("start", self._settings_json, self.services, self._preload))

    def prepare(self) -> None:
        """Start the worker process now (or adopt the one the command forked when it started,
        ``engine.early``), without waiting for it: it imports ``preload`` while the caller creates
        the run (two cores, two things at once); ``execute`` waits until it is ready."""
        if not self._slots:
            self._slots = [self._spawn()]

    def __enter__(self) -> ForegroundRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ready_slot(self) -> Slot:
        if not self._slots:
            self._slots = [self._spawn()]
        slot = self._slots[0]
        if slot is self._unstarted and slot is not self._speculating:
            with contextlib.suppress(OSError):  # it died: said below
                self._start(slot)
        while not slot.ready:
            if slot.conn.poll(0.05):
                try:
                    slot.ready = slot.conn.recv()[0] == "ready"
                except (EOFError, OSError):
                    slot.ready = False
            if not slot.ready and not slot.process.is_alive():
                self._kill(slot)
                self._slots = []
                raise RuntimeError(f"the worker process could not start (exit code {slot.process.exitcode})")
        return slot

    def execute(self, run_id: int, on_tick=None, poll: float = 0.2) -> None:
        slot = self._ready_slot()
        claimed = None
        if slot is self._speculating:
            self._speculating = None
            # claimed here, as the pool claims for its workers: the worker has no store to claim with
            claimed = lifecycle.claim(self.store, run_id, slot.identity)
            if claimed is None:  # someone else has it, or a lock is busy: the caller reads it again
                return  # and the worker serves what comes next as any (``_ready_slot``)
            self._occupy(slot, run_id, claimed.deadline_at)
            self._send(slot, ("speculated", dataclasses.asdict(claimed), run_secrets(self.store)))
        else:
            self._assign(slot, run_id)
        while slot.busy:
            if slot.conn.poll(poll):
                try:
                    message = slot.conn.recv()
                except (EOFError, OSError):
                    message = ("lost",)
                if message[0] == "done":
                    self._free(slot)
                elif message[0] == "ended":  # a claimed run's end, to record here
                    ending = message[2]
                    if isinstance(ending, dict):  # the speculation's (the worker has no lifecycle)
                        ending = lifecycle.Finish(message[1], **ending)
                    self.pending.add(ending)
                    self.pending.flush(now=True)
                    self._free(slot)
                elif message[0] == "unmatched":  # the run executes as any
                    try:
                        self._start(slot)
                    except OSError:
                        self._worker_lost(slot, "worker process exited before taking the run")
                    else:
                        self._send(slot, ("claimed", claimed))
                elif message[0] == "ready":
                    slot.ready = True
                elif message[0] == "lost":
                    self._worker_lost(slot, f"worker process exited with {slot.process.exitcode}")
            elif not slot.process.is_alive():
                self._worker_lost(slot, f"worker process exited with {slot.process.exitcode}")
            else:
                self.watcher.check()
            slot = self._slots[0]
            if on_tick:
                on_tick()

    def close(self) -> None:
        for slot in self._slots:
            if slot.ready and not slot.busy:
                with contextlib.suppress(Exception):
                    slot.conn.send(None)
                slot.process.join(3)
            if slot.process.is_alive():
                self._kill(slot)
        self._slots = []
        self.notifier.close()
