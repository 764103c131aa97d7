"""What the lifecycle's operations take and give back, shared by both implementations."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOSTNAME = socket.gethostname()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    pgid: int

    @classmethod
    def current(cls) -> WorkerIdentity:
        return cls(host=HOSTNAME, pid=os.getpid(), pgid=os.getpgid(0))

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True)
class Dispatched:
    id: int
    queue: str
    timeout_seconds: float | None


# how soon a dispatcher looks again at due work another one holds (SKIP LOCKED), instead of spinning
HELD_ELSEWHERE_SECONDS = 0.02


def seconds_until(next_due: datetime | None, as_of: datetime, *, cap: float, now: datetime) -> float:
    """How long to sleep before looking for due work again, after a look at ``as_of`` that found
    the next item due at ``next_due``. Due already at ``as_of`` yet left: another scheduler or
    dispatcher holds it and will take it, so look again shortly rather than spin. Due since: now."""
    if next_due is None:
        return cap
    if next_due <= as_of:
        return min(cap, HELD_ELSEWHERE_SECONDS)
    return min(cap, max(0.0, (next_due - now).total_seconds()))


@dataclass
class Handout:
    """What one transaction handed out at ``as_of``, and when the next pending run is due
    (``None``: none is pending)."""

    items: list
    next_due: datetime | None
    as_of: datetime

    def sleep_seconds(self, cap: float) -> float:
        return seconds_until(self.next_due, self.as_of, cap=cap, now=_now())


@dataclass
class ClaimedRun:
    id: int
    task_id: int | None
    task_name: str | None
    task_type: str
    requested_type: str | None
    config: dict[str, Any]
    dry_run: bool
    confirm: bool
    attempt: int
    timeout_seconds: float | None
    started_at: datetime
    deadline_at: datetime | None
    parent_run_id: int | None


class LockBusy(Exception):
    def __init__(self, lock: str, holder: int):
        super().__init__(f"lock {lock} is held by run {holder}")
        self.lock = lock
        self.holder = holder


@dataclass(frozen=True)
class Finish:
    """One run's end, for ``finish_many``."""

    run_id: int
    status: str
    outcome: str | None = None
    result: dict | None = None
    summary: str | None = None
    error: str | None = None
    finished_at: datetime | None = None  # when the handler ended (the time of recording if not given)
    # events the handler logged while the store did not answer: dicts of ts (ISO), level, event,
    # message, data; written before the end
    events: tuple = ()
