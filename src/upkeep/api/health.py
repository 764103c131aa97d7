"""What ``/healthz`` judges: this process's scheduler ticks, and the store takes writes.

``/readyz`` asks whether the database answers; ``/healthz`` whether the instance does its job.
A store that answers reads but refuses writes (a full disk) passes the first and fails the second,
and so does a scheduler whose every tick fails. The write probe is a real write (one record,
overwritten), made at most every ``WRITE_PROBE_SECONDS``: answers in between reuse its verdict.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upkeep.app.terms import Records, Store

WRITE_PROBE_SECONDS = 10.0


class Health:
    def __init__(self, store: Store):
        self.store = store
        self.scheduler: Any = None  # the Scheduler of this process (set by `upkeep serve`), if any
        self._lock = threading.Lock()
        self._probed_at = -float("inf")
        self._write_problem: str | None = None

    def problems(self) -> list[str]:
        """What is wrong, one line each, naming the part (scheduler, store); empty when healthy."""
        found = []
        if self.scheduler is not None and (problem := self.scheduler.health_problem()):
            found.append(problem)
        if problem := self._write_check():
            found.append(f"store: refuses writes: {problem}")
        return found

    def _write_check(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._probed_at < WRITE_PROBE_SECONDS:
                return self._write_problem
            try:
                Records(self.store, "_health").put("write_probe", {"at": datetime.now(UTC).isoformat()})
                self._write_problem = None
            except sa.exc.DBAPIError as exc:
                self._write_problem = " ".join(str(exc.orig or exc).split())[:300]
            self._probed_at = time.monotonic()
            return self._write_problem
