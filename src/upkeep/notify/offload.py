"""The alerter of ``upkeep serve`` and ``upkeep scheduler``: in the daemon's own process while few
runs finish, in a child process of its own while many do.

An evaluation is Python work on every run finished since the last one: about 0.1 s of it every
5 s at 10,000 runs a minute. In the daemon's process it holds the interpreter lock away from the
scheduler and the executor, whose many short store round trips each wait for it, and their runs
start late in a burst at every evaluation (the measurements: benchmarks/README.md). A child process
costs a whole interpreter, which an idle daemon should not hold. So the daemon evaluates in its own
thread, and when ``busy_runs`` runs or more have finished since the last evaluation (a count
before it evaluates, so the first heavy evaluation is not one of the thread's) or an evaluation
has read as many, it starts a child process that evaluates instead, and exits once its
evaluations have read fewer for ``quiet_seconds``; the thread then evaluates again. A child that
dies hands back the same way.

The alert cursor makes the hand-over safe either way: an evaluation writes only if the cursor is
still the one it read (SQLite), or holds the advisory lock (PostgreSQL), so no run is evaluated
twice or skipped however the two overlap.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from upkeep.engine.background import Background
from upkeep.engine.children import START_LOCK, stop_resource_tracker_if_unused
from upkeep.engine.detached import die_with_parent
from upkeep.notify.alerter import Alerter
from upkeep.store.db import Store

log = logging.getLogger(__name__)

BUSY_RUNS = 100  # finished runs in one evaluation (1,200 a minute at the 5 s interval): evaluate apart
QUIET_SECONDS = 60.0  # the child exits after this long of evaluations with fewer


class OffloadingAlerter(Background):
    """The alerter loop in this process's thread, handing its evaluations to a child process while
    they are heavy. ``children``: how many child processes it has started."""

    thread_name = "alerter"
    join_seconds = 11.0  # the child's stop, and a second

    def __init__(
        self,
        store: Store,
        settings: Any,
        *,
        interval: float = 5.0,
        busy_runs: int = BUSY_RUNS,
        quiet_seconds: float = QUIET_SECONDS,
    ):
        super().__init__()
        self.settings = settings
        self.alerter = Alerter(store, settings, interval=interval)
        self.interval, self.busy_runs, self.quiet_seconds = interval, busy_runs, quiet_seconds
        self.children = 0

    def run(self) -> None:
        # after a child failed, this thread evaluates once whatever the backlog: a child that cannot
        # start or keeps dying must not stop alerts
        child_failed = False
        while not self._stop.is_set():
            if (not child_failed and self._backlogged()) or self.alerter.tick() >= self.busy_runs:
                child_failed = not self._evaluate_in_child()
            else:
                child_failed = False
            self._stop.wait(self.interval)

    def _backlogged(self) -> bool:
        try:
            return self.alerter.backlog(self.busy_runs) >= self.busy_runs
        except Exception:
            return False  # the evaluation logs what is wrong with the store

    def _evaluate_in_child(self) -> bool:
        """Start the child (spawned: a fork of this threaded process could inherit a held lock) and
        wait until it exits or this loop is stopped; False if it failed."""
        args = (self.settings.model_dump_json(), os.getpid(), self.interval, self.busy_runs, self.quiet_seconds)
        child = multiprocessing.get_context("spawn").Process(target=_child_main, args=args, name="upkeep-alerter")
        with START_LOCK:
            child.start()
        self.children += 1
        log.info("many runs are finishing: the alerter evaluates in process %s until they slow down", child.pid)
        while child.is_alive() and not self._stop.is_set():
            child.join(0.5)
        if child.is_alive():
            child.terminate()  # the child finishes the evaluation it is in, then exits
            child.join(self.join_seconds - 1)
            return True
        stop_resource_tracker_if_unused()  # spawning the child started it
        if child.exitcode:
            log.error("the alerter process exited with code %s; evaluating in this process", child.exitcode)
            return False
        log.info("runs have slowed down: the alerter evaluates in this process again")
        return True


def _child_main(settings_json: str, parent_pid: int, interval: float, busy_runs: int, quiet_seconds: float) -> None:
    from upkeep.settings import Settings

    die_with_parent(parent_pid)
    settings = Settings.model_validate_json(settings_json)
    store = Store(settings.resolved_database_url)
    alerter = Alerter(store, settings, interval=interval, quiet_exit=(busy_runs, quiet_seconds))
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped.set())
    alerter.start()
    while alerter.running and not stopped.wait(0.5):
        pass
    alerter.stop()
    store.dispose()
