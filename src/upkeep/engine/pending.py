"""Results the store has not taken yet: kept in memory and in private files until it answers.

A worker that cannot record how a run ended (the store is down, its disk is full) must not lose
it: the reaper would judge the run lost and retry it, and the task would run twice. Each pending
result is one file, ``<data_dir>/pending/<run_id>.json`` (0600 in a 0700 directory), written
when the first attempt to record it fails and removed once recorded, so a worker that restarts (or
another upkeep process on the host, once the writer is gone) still records it. It is recorded
with the time the handler really ended. The first terminal write of a run stands: a result
arriving after the run was recovered is recorded as a ``late_result`` event on that run.

Events a handler logs while the store is unreachable are kept the same way and written with the
result, before its ``finished`` event (``BufferingJournal``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from upkeep.engine import lifecycle
from upkeep.engine.journal import StoreJournal
from upkeep.store.db import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

DIRECTORY = "pending"
MAX_RETRY_SECONDS = 5.0

# run ids whose result this process holds (an instance heartbeat lists them: evidence for the reaper)
HELD: set[int] = set()
_HELD_LOCK = threading.Lock()


_FINISH_FIELDS = frozenset(f.name for f in dataclasses.fields(lifecycle.Finish))


def held_here() -> set[int]:
    """The run ids whose result this process holds."""
    with _HELD_LOCK:
        return set(HELD)


def is_outage(exc: BaseException) -> bool:
    """The store did not answer (down, unreachable, disk full, locked), as opposed to a refusal."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def until_store_answers(operation: Callable[[], T], *, what: str, retry_max: float = MAX_RETRY_SECONDS) -> T:
    """Run ``operation`` until it does not fail for an outage (other errors propagate)."""
    delay, warned = 0.2, False
    while True:
        try:
            return operation()
        except Exception as exc:
            if not is_outage(exc):
                raise
            if not warned:
                log.warning("the store does not answer (%s); %s when it does", _first_line(exc), what)
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, retry_max)


def pending_dir(data_dir: Path) -> Path:
    return Path(data_dir) / DIRECTORY


def held_on_host(data_dir: Path) -> set[int]:
    """Run ids whose result some process on this host keeps in a pending file."""
    with contextlib.suppress(OSError):
        return {int(p.stem) for p in pending_dir(data_dir).glob("*.json") if p.stem.isdigit()}
    return set()


class PendingResults:
    """Results waiting for the store, for one process. ``add`` keeps one, ``flush`` records what
    it can (never raises: a store that does not answer is tried again after a growing pause).

    A result is kept as the ``lifecycle.Finish`` it arrived as (frozen: nothing changes it after it
    is handed over) and turned into text only when it goes to disk: every result of the embedded
    executor passes here, and the no-op run rate depends on it."""

    def __init__(self, store: Store, data_dir: Path, *, retry_max: float = MAX_RETRY_SECONDS):
        self.store = store
        self.directory = pending_dir(data_dir)
        self.retry_max = retry_max
        self._items: dict[int, lifecycle.Finish] = {}
        self._saved: set[int] = set()  # run ids whose result is in a file
        self._next_try = 0.0
        self.delay = 0.0
        self._warned = False

    def __bool__(self) -> bool:
        return bool(self._items)

    def run_ids(self) -> list[int]:
        return list(self._items)

    def add(self, ending: lifecycle.Finish) -> None:
        if ending.finished_at is None:
            ending = dataclasses.replace(ending, finished_at=datetime.now(UTC))
        self._items[ending.run_id] = ending
        with _HELD_LOCK:
            HELD.add(ending.run_id)

    def adopt(self) -> int:
        """Take over the pending results of processes on this host that are gone (a crash, a
        restart); returns how many."""
        from upkeep.engine.context import process_alive

        taken = 0
        with contextlib.suppress(OSError):
            for path in sorted(self.directory.glob("*.json")):
                try:
                    item = json.loads(path.read_text())
                except (OSError, ValueError):
                    log.warning("unreadable pending result %s left as it is", path)
                    continue
                owner = item.get("owner") or {}
                mine = owner.get("pid") == os.getpid()
                if owner.get("host") != lifecycle.HOSTNAME or (not mine and process_alive(owner.get("pid"))):
                    continue
                if item["run_id"] not in self._items:
                    ending = _from_file(item)
                    self._items[ending.run_id] = ending
                    self._saved.add(ending.run_id)
                    with _HELD_LOCK:
                        HELD.add(ending.run_id)
                    self._save(ending)  # ours now
                    taken += 1
        if taken:
            log.warning("took over %d result(s) a stopped worker could not record", taken)
        return taken

    def flush(self, *, now: bool = False) -> bool:
        """Record every pending result; True when none is left. Unless ``now``, waits out the
        pause after a failed attempt."""
        if not self._items:
            return True
        items = list(self._items.values()) if now else self.due()
        if not items:
            return False
        try:
            record(self.store, items)
        except Exception as exc:
            if not is_outage(exc):
                items = self._record_one_by_one(items, exc)
                if not items:
                    return True
            for item in items:  # on disk from the first failure: a restart must not lose it
                if item.run_id not in self._saved:
                    self._saved.add(item.run_id)
                    self._save(item)
            self.delay = min(max(self.delay * 2, 0.2), self.retry_max)
            self._next_try = time.monotonic() + self.delay
            if is_outage(exc) and not self._warned:
                self._warned = True
                log.warning(
                    "could not record the result of run(s) %s: %s; kept until the store answers",
                    [i.run_id for i in items],
                    _first_line(exc),
                )
            return False
        self.recorded(items)
        return True

    def due(self) -> list[lifecycle.Finish]:
        """The results to record now: all of them, unless the pause after a failed attempt lasts."""
        if not self._items or time.monotonic() < self._next_try:
            return []
        return list(self._items.values())

    def recorded(self, items: list[lifecycle.Finish]) -> None:
        """``items`` were recorded (by ``flush``, or by the caller's transaction): forget them."""
        self.delay, self._warned = 0.0, False
        self._forget(items)

    def _forget(self, items: list[lifecycle.Finish]) -> None:
        run_ids = [item.run_id for item in items]
        for run_id in run_ids:
            self._items.pop(run_id, None)
        with _HELD_LOCK:
            HELD.difference_update(run_ids)
        for run_id in self._saved.intersection(run_ids):
            self._saved.discard(run_id)
            with contextlib.suppress(OSError):
                (self.directory / f"{run_id}.json").unlink()

    def _record_one_by_one(self, items: list[lifecycle.Finish], exc: Exception) -> list[lifecycle.Finish]:
        """The store answered but refused the batch: record each result on its own, so one that
        cannot be stored (say, a value the column refuses) holds up no other; that one ends its
        run as failed, saying why. Returns the items still pending (an outage came back)."""
        left = []
        for item in items:
            try:
                record(self.store, [item])
            except Exception as one:
                if is_outage(one):
                    left.append(item)
                    continue
                log.error("the result of run %s cannot be stored (%s); the run fails instead", item.run_id, one)
                item = dataclasses.replace(
                    item,
                    status="failed",
                    outcome=None,
                    result=None,
                    summary=None,
                    error=f"the handler's result could not be stored: {_first_line(one)}"[:2000],
                    events=(),
                )
                self._items[item.run_id] = item
                try:
                    record(self.store, [item])
                except Exception:
                    left.append(item)
                    continue
            self._forget([item])
        if left:
            log.warning("could not record %d result(s) (%s); kept, trying again", len(left), _first_line(exc))
        return left

    def _save(self, item: lifecycle.Finish) -> None:
        from upkeep.private import PRIVATE

        path = self.directory / f"{item.run_id}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        text = {name: getattr(item, name) for name in _FINISH_FIELDS}
        text["finished_at"] = item.finished_at.isoformat() if item.finished_at else None
        text["owner"] = {"host": lifecycle.HOSTNAME, "pid": os.getpid()}
        try:
            PRIVATE.mkdir(self.directory)
            PRIVATE.write(temporary, json.dumps(text, default=str))
            os.replace(temporary, path)
        except OSError as exc:  # a full disk: the result is still kept in memory
            log.warning("could not keep the result of run %s on disk (%s); kept in memory", item.run_id, exc)
            with contextlib.suppress(OSError):
                temporary.unlink()


def _from_file(item: dict[str, Any]) -> lifecycle.Finish:
    """A kept result read back from its file (its end time and events written as text)."""
    values = {k: v for k, v in item.items() if k in _FINISH_FIELDS}
    if values.get("finished_at"):
        values["finished_at"] = datetime.fromisoformat(values["finished_at"])
    values["events"] = tuple(values.get("events") or ())
    return lifecycle.Finish(**values)


def record(store: Store, items: list[lifecycle.Finish]) -> None:
    """Record kept results in one transaction (the lifecycle's ``finish_many``: each at the time
    its handler ended, after its kept events; a run that already ended keeps that end)."""
    lifecycle.finish_many(store, items)


def record_or_keep(
    store: Store, data_dir: Path, ending: lifecycle.Finish, *, retry_max: float = MAX_RETRY_SECONDS
) -> None:
    """Record one run's end, waiting for the store as long as it takes; the result is on disk
    meanwhile, so a worker restarted while waiting still records it."""
    pending = PendingResults(store, data_dir, retry_max=retry_max)
    pending.add(ending)
    while not pending.flush(now=True):
        time.sleep(pending.delay)


class BufferingJournal(StoreJournal):
    """The run journal of a handler, which keeps working while the store does not answer: events
    are kept to be written with the result, progress and heartbeats are skipped (the next ones
    replace them), a cancel request is looked for again at the next check."""

    def __init__(self, store: Store):
        super().__init__(store)
        self.backlog: list[dict[str, Any]] = []

    def event(self, run_id: int, level: str, event: str, message: str, data: dict | None) -> None:
        if not self.backlog:
            try:
                super().event(run_id, level, event, message, data)
                return
            except Exception as exc:
                if not is_outage(exc):
                    raise
        self.backlog.append(
            {"ts": datetime.now(UTC).isoformat(), "level": level, "event": event, "message": message, "data": data}
        )

    def progress(self, run_id: int, fraction: float | None, message: str | None) -> None:
        with _outage_ignored():
            super().progress(run_id, fraction, message)

    def heartbeat(self, run_id: int) -> None:
        with _outage_ignored():
            super().heartbeat(run_id)

    def cancel_requested(self, run_id: int) -> bool:
        try:
            return super().cancel_requested(run_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return False


@contextlib.contextmanager
def _outage_ignored():
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
