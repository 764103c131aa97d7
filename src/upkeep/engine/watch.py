"""The one watcher of running runs: heartbeat, cancel requests and deadlines.

An executor tells it which runs it is executing and what to do to them; ``check()`` then beats
their heartbeats (one UPDATE for all), looks for cancel requests (one SELECT for all, passing each
on once to the handler's cancel flag), and ends a run whose deadline passed or whose cancel grace
period is over (the executor kills the process tree; the lifecycle records the end). The
embedded supervisor, the foreground runner and each Celery pool process call the same ``check``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from upkeep.store.states import CANCELLED, TIMED_OUT

CANCEL_CHECK_SECONDS = 0.25  # how often cancel requests of watched runs are looked for
TIMED_OUT_ERROR = "timed out: the deadline passed and the run's process tree was killed"
CANCELLED_ERROR = "cancelled: the run's process tree was killed"

# what an executor does to end a run the watcher gave up on: kill its process tree and record
# ``lifecycle.finish(run_id, status, error=error)``, in the order its process allows
EndRun = Callable[[int, str, str], None]


@dataclass
class Watched:
    run_id: int
    deadline: datetime | None
    on_cancel: Callable[[], None]
    cancel_seen: bool = False


class Watcher:
    """The runs one executor is executing, and the rules of watching them.

    ``runs`` is the lifecycle they live in: ``lifecycle.sql.SqlLifecycle`` on a store, or
    ``lifecycle.memory.MemoryLifecycle`` in tests.
    """

    def __init__(
        self,
        runs,
        *,
        heartbeat_seconds: float,
        cancel_grace_seconds: float,
        end: EndRun | None,
        cancel_check_seconds: float = CANCEL_CHECK_SECONDS,
    ):
        self.lifecycle = runs
        self.heartbeat_seconds = heartbeat_seconds
        self.cancel_check_seconds = cancel_check_seconds
        self.grace = timedelta(seconds=cancel_grace_seconds)
        self.end = end  # None: cooperative only (nothing here can kill the handler)
        self.runs: dict[int, Watched] = {}
        self._next_beat = 0.0
        self._next_cancel_check = 0.0

    def watch(self, run_id: int, deadline: datetime | None, on_cancel: Callable[[], None]) -> None:
        self.runs[run_id] = Watched(run_id, deadline, on_cancel)

    def forget(self, run_id: int) -> None:
        self.runs.pop(run_id, None)

    def check(self) -> None:
        """Deadlines, then heartbeats, then cancel requests (each at most as often as it needs)."""
        if not self.runs:
            return
        now = datetime.now(UTC)
        if self.end is not None:
            for watched in [w for w in self.runs.values() if w.deadline is not None and now >= w.deadline]:
                self._end(watched.run_id, TIMED_OUT, TIMED_OUT_ERROR)
        clock = time.monotonic()
        if self.runs and clock >= self._next_beat:
            self._next_beat = clock + self.heartbeat_seconds
            self.lifecycle.heartbeat_many(list(self.runs))
        if self.runs and clock >= self._next_cancel_check:
            self._next_cancel_check = clock + self.cancel_check_seconds
            for run_id, requested_at in self.lifecycle.cancel_requests(list(self.runs)).items():
                watched = self.runs.get(run_id)
                if watched is None:
                    continue
                if not watched.cancel_seen:
                    watched.cancel_seen = True
                    watched.on_cancel()  # the handler's cooperative check sees it
                if self.end is not None and now >= requested_at + self.grace:
                    self._end(run_id, CANCELLED, CANCELLED_ERROR)

    def _end(self, run_id: int, status: str, error: str) -> None:
        self.forget(run_id)
        self.end(run_id, status, error)

    def seconds_to_next_check(self) -> float | None:
        """How long the executor may sleep before ``check`` has something to do (None: no run)."""
        if not self.runs:
            return None
        now = datetime.now(UTC)
        waits = [self.cancel_check_seconds, max(0.0, self._next_beat - time.monotonic())]
        waits += [(w.deadline - now).total_seconds() for w in self.runs.values() if w.deadline is not None]
        return max(0.0, min(waits))


class WatchThread(threading.Thread):
    """A ``Watcher`` checked by a thread of its own, for an executor with no loop to call it."""

    POLL_SECONDS = 0.2

    def __init__(self, watcher: Watcher, *, also: Callable[[], None] | None = None, name: str = "upkeep-watch"):
        super().__init__(daemon=True, name=name)
        self.watcher = watcher
        self.lock = threading.Lock()  # held by a check: nothing is ended after its run was forgotten
        self.also = also
        self._stop_event = threading.Event()

    def run(self) -> None:
        import logging

        while not self._stop_event.wait(self.POLL_SECONDS):
            if self.also is not None:
                self.also()
            with self.lock:
                try:
                    self.watcher.check()
                except Exception:  # the store may blip; the next check tries again
                    logging.getLogger(__name__).warning("watching runs failed", exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
