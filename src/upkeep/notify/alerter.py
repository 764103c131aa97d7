"""The alerter: a loop in the scheduler process (and ``upkeep serve``) that turns finished runs into
alerts, pings and metric counters.

It never hooks into workers: runs end in worker processes, possibly on other hosts, and the alerter
reads them from the store. Each evaluation, committed as one transaction:

1. reads the runs that finished since its cursor (records domain ``_alerts``, key ``cursor``: the
   last ``finished_at`` processed plus the ids processed within ``CURSOR_LOOKBACK`` before it, so a
   run whose commit lands late or whose worker clock lags a little is still seen, exactly once);
2. applies the rules of ``upkeep.notify.rules`` per (task, channel) against ``alert_state``;
   silenced messages are recorded as suppressed, the others go to the outbox. A health check's
   inventory targets are evaluated each on its own (``upkeep.notify.targets``: maintenance and
   dependencies hold their failures). Every problem message belongs to an alert
   (``upkeep.notify.alerts``): the first opens it, a recovery resolves it and sends one resolution
   to every channel it reached;
3. queues Healthchecks-style pings (``upkeep.notify.pings``) for runs that started or ended;
4. adds the runs to the persistent metric counters (``upkeep.metrics.record_runs``);
5. every ``overdue_every`` seconds, checks the engine's overdue tasks (alert once per episode),
   and open checklists: their automatic items, reminders, one overdue alert each
   (``upkeep.notify.checklists``);
6. sends the due escalation steps of open (unacknowledged, unresolved) alerts.

After the commit it sends the pings and delivers the outbox. On PostgreSQL several alerters (one per
scheduler) take turns through an advisory lock, so each run is evaluated once. On SQLite, whose
write lock is the whole database's, the runs, their tasks, pings and counters (1, 3, 4) are read in
a read transaction first; the write transaction applies the rules and writes only if the cursor is
still the one read (``evaluate_once``).

A run without a task (``upkeep run TYPE``), a procedure's step, and a dry run never alert or ping.

Start it with ``Alerter(store, settings).start()`` and stop it with ``.stop()``. The daemons run it
through ``upkeep.notify.offload``, which moves it to a child process while many runs finish.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep import metrics
from upkeep.clock import utcnow
from upkeep.engine.background import Background
from upkeep.notify import checklists, heartbeats, rules
from upkeep.notify.channels import load_channels
from upkeep.notify.evaluation import TASK_COLUMNS, Evaluation, Routing
from upkeep.notify.outbox import ALERTS_DOMAIN, Notification, add_history, deliver
from upkeep.notify.pings import Ping, end_kind, send_pings
from upkeep.notify.silences import active_silences
from upkeep.settings import base_url
from upkeep.store import records as _records
from upkeep.store.db import Store
from upkeep.store.models import FAILED, RUNNING, TIMED_OUT, AlertState, Run, ScheduledTask
from upkeep.store.runs import overdue_tasks

log = logging.getLogger(__name__)

CURSOR_LOOKBACK = 120.0  # seconds: commit lag and clock skew between hosts the cursor tolerates
INITIAL_LOOKBACK = 3600.0  # seconds of history a brand-new alerter considers
MAX_CATCH_UP = 24 * 3600.0  # an alerter down longer than this skips older runs
BATCH = 1000  # runs read per query
MAX_RUNS_PER_EVALUATION = 20_000
ADVISORY_LOCK_ID = 0x75706B616C  # "upkal": one alerter evaluates at a time on PostgreSQL

RUN_COLUMNS = (
    Run.id,
    Run.task_id,
    Run.task_name,
    Run.task_type,
    Run.origin,
    Run.status,
    Run.outcome,
    Run.attempt,
    Run.max_retries,
    Run.dry_run,
    Run.started_at,
    Run.finished_at,
    Run.error,
    Run.summary,
    Run.scheduled_for,
)


@dataclass
class _Cursor:
    at: datetime
    seen: dict[int, float]  # run id -> finished_at epoch, ids processed within the lookback
    pinged: set[int]  # runs whose start was pinged and whose end was not yet
    turn: int = 0  # evaluations committed: two never store the same cursor

    @classmethod
    def load(cls, value: dict | None, wall: datetime) -> _Cursor:
        if not value:
            return cls(wall - timedelta(seconds=INITIAL_LOOKBACK), {}, set())
        seen = {int(k): float(v) for k, v in value.get("seen", [])}  # (id, epoch) pairs: the earlier form
        for second, ranges in value.get("seen_ranges", []):
            for first, last in zip(ranges[::2], ranges[1::2], strict=True):
                seen.update(dict.fromkeys(range(first, last + 1), float(second)))
        pinged = {int(i) for i in value.get("pinged", [])}
        return cls(datetime.fromisoformat(value["at"]), seen, pinged, int(value.get("turn", 0)))

    def dump(self) -> dict:
        """The seen ids grouped by the second their runs finished in, rounded up (so an id is kept
        at least as long as its exact time would keep it), as ranges of consecutive ids: at 10,000
        runs a minute the lookback holds 20,000 ids, which as (id, epoch) pairs took about 0.1 s to
        encode and decode in every evaluation, inside its write transaction."""
        by_second: dict[int, list[int]] = {}
        for run_id, finished in self.seen.items():
            by_second.setdefault(math.ceil(finished), []).append(run_id)
        ranges = [[second, _id_ranges(sorted(ids))] for second, ids in sorted(by_second.items())]
        return {"at": self.at.isoformat(), "seen_ranges": ranges, "pinged": sorted(self.pinged), "turn": self.turn}


@dataclass
class _Read:
    """What an evaluation read before its write transaction (on SQLite, in a read snapshot)."""

    stored_cursor: dict | None  # as read: the write transaction compares it before it writes
    tasks: dict[int, Any]  # by id: the tasks of the runs, and the overdue ones
    evaluated: list[tuple[Any, Any]]  # (task, run) of the runs the rules must see, in finish order
    retrying: set[int]  # failed runs that have a retry
    pings: list[Ping]  # to send after the commit
    counters: _records.EncodedPuts  # the metric counter records, the runs added
    cursor: _records.EncodedPuts  # the cursor past the runs read, and the time and process of this evaluation


def _core(s: Session, query: sa.Select) -> sa.CursorResult:
    """``query`` (columns, not entities) on the session's connection: the rows are the same, without
    the ORM's per-row work, which was a third of an evaluation's read at 833 runs."""
    return s.connection().execute(query)


def _id_ranges(ids: list[int]) -> list[int]:
    """Sorted ids as first, last, first, last, ... of their runs of consecutive ids."""
    out: list[int] = []
    for run_id in ids:
        if out and run_id == out[-1] + 1:
            out[-1] = run_id
        else:
            out += [run_id, run_id]
    return out


class Alerter(Background):
    """Evaluates the notify rules of every task against the runs that finished since its cursor."""

    def __init__(
        self,
        store: Store,
        settings: Any,
        *,
        interval: float = 5.0,
        overdue_every: float = 60.0,
        quiet_exit: tuple[int, float] | None = None,
    ):
        self.store = store
        self.settings = settings
        self.interval = interval
        self.overdue_every = overdue_every
        self.quiet_exit = quiet_exit
        self.link_base = base_url(settings)
        super().__init__()
        self._unknown_warned: set[tuple[str, str]] = set()
        self._next_overdue = 0.0  # monotonic time of the next evaluation that checks overdue tasks
        self.runs_read = 0  # finished runs the last evaluation read

    # --- the loop ---------------------------------------------------------------------------

    thread_name = "alerter"

    def start(self) -> None:
        self._stop.clear()  # an alerter may be started again after a stop
        super().start()

    def run(self) -> None:
        """Evaluate every ``interval`` until stopped. With ``quiet_exit`` (runs, seconds), also
        return once every evaluation for ``seconds`` has read fewer than ``runs`` finished runs."""
        busy_at = time.monotonic()
        while not self._stop.is_set():
            if self.quiet_exit is not None:
                runs, seconds = self.quiet_exit
                if self.tick() >= runs:
                    busy_at = time.monotonic()
                elif time.monotonic() - busy_at >= seconds:
                    return
            else:
                self.tick()
            self._stop.wait(self.interval)

    def tick(self) -> int:
        """One evaluation of the loop, which checks the overdue tasks every ``overdue_every``
        seconds: the finished runs it read (0 when it failed, which it logs)."""
        try:
            check = time.monotonic() >= self._next_overdue
            if check:
                self._next_overdue = time.monotonic() + self.overdue_every
            self.evaluate_once(utcnow(), check_overdue=check)
        except Exception:
            log.exception("alert evaluation failed; retrying in %gs", self.interval)
            return 0
        return self.runs_read

    def backlog(self, limit: int) -> int:
        """How many runs have finished since the cursor, counted up to ``limit``: one indexed
        query, for deciding where to evaluate before an evaluation reads them."""
        with self.store.read() as s:
            stored = _records.get(s, ALERTS_DOMAIN, "cursor")
            since = datetime.fromisoformat(stored["at"]) if stored else utcnow() - timedelta(seconds=INITIAL_LOOKBACK)
            recent = sa.select(Run.id).where(Run.finished_at > since).limit(limit).subquery()
            return int(s.execute(sa.select(sa.func.count()).select_from(recent)).scalar_one())

    # --- one evaluation ---------------------------------------------------------------------

    def evaluate_once(self, now: datetime | None = None, *, check_overdue: bool = True) -> list[Notification]:
        """Process runs finished since the cursor (and overdue tasks); returns the notifications
        suppressed, sent or failed in this evaluation. ``now`` is the time the rules use (repeat
        intervals, silences, overdue); the cursor follows the runs' own timestamps."""
        now = now or utcnow()
        overdue = self._overdue(now) if check_overdue else None
        routing = Routing(self, load_channels(self.store))
        suppressed: list[Notification] = []
        if self.store.is_postgres:
            # one transaction: a long one blocks no other writer there (row locks), and alerters
            # take turns through the advisory lock
            with self.store.write() as s:
                if not self._lock(s):
                    return []
                read = self._read(s, routing, overdue)
                self._write(s, read, now, routing, overdue, suppressed)
        else:
            # SQLite has one write lock for the whole database, which the scheduler's ticks and the
            # executor's hand-overs wait for: the runs are read in a snapshot, and only the rules
            # and the writes hold the lock (the measurements: benchmarks/README.md)
            with self.store.read() as s:
                read = self._read(s, routing, overdue)
            with self.store.write() as s:
                if _records.get(s, ALERTS_DOMAIN, "cursor") != read.stored_cursor:
                    # another alerter (or an evaluation retried) committed since the snapshot: it
                    # evaluated these runs; the next evaluation starts from its cursor
                    log.info("the alert cursor moved during this evaluation; leaving its runs to the next")
                    return []
                self._write(s, read, now, routing, overdue, suppressed)
        send_pings(read.pings)
        delivered = deliver(self.store, routing.channels, now)
        return suppressed + delivered

    def _read(self, s: Session, routing: Routing, overdue: dict[str, str] | None) -> _Read:
        """What an evaluation needs from the runs: everything but the rules' own state."""
        stored = _records.get(s, ALERTS_DOMAIN, "cursor", lock=True)
        cursor = _Cursor.load(stored, utcnow())
        finished = self._finished_runs(s, cursor)
        tasks = self._tasks(s, {r.task_id for r in finished if r.task_id is not None}, overdue)
        retrying = self._retried(s, finished)
        pings: list[Ping] = []
        evaluated: list[Any] = []
        for run in finished:
            task = tasks.get(run.task_id) if run.task_id is not None else None
            if task is None or run.origin == "procedure" or run.dry_run:
                continue
            pings.extend(self._run_pings(task, run, cursor, run.id in retrying))
            if routing.concerns(task):
                evaluated.append((task, run))
        pings.extend(self._start_pings(s, cursor))
        counters = _records.EncodedPuts(s, metrics.METRICS_DOMAIN, metrics.counters_after(s, finished))
        cursor.turn += 1  # every evaluation that commits changes the stored cursor (see evaluate_once)
        last = {"at": utcnow().isoformat(), "pid": os.getpid()}
        mine = {"cursor": cursor.dump(), "last_evaluation": last}
        cursor_puts = _records.EncodedPuts(s, ALERTS_DOMAIN, mine)
        self.runs_read = len(finished)
        return _Read(stored, tasks, evaluated, retrying, pings, counters, cursor_puts)

    def _write(
        self,
        s: Session,
        read: _Read,
        now: datetime,
        routing: Routing,
        overdue: dict[str, str] | None,
        suppressed: list[Notification],
    ) -> None:
        """The rules against ``alert_state``, and every write of the evaluation, in its write transaction."""
        names = {task.name for task, _ in read.evaluated}
        if overdue is not None:  # the overdue tasks, and those whose overdue alert may end
            names |= {t.name for t in read.tasks.values()}
        states = self._states(s, names)
        silences = active_silences(s, now)
        evaluation = Evaluation(
            self, s, now, routing.channels, silences, states, suppressed, loaded=names, routing=routing
        )
        for task, run in read.evaluated:
            evaluation.run_finished(task, run, retrying=run.id in read.retrying)
        if overdue is not None:
            evaluation.overdue(read.tasks, overdue)
            _records.put(s, ALERTS_DOMAIN, "overdue", {"at": now.isoformat(), "tasks": sorted(overdue)})
            checklists.evaluate(evaluation)
        heartbeats.evaluate(self, s, now, routing.channels, silences, suppressed, prune=overdue is not None)
        evaluation.escalate()
        read.counters.write(s)
        evaluation.save()
        add_history(s, suppressed)
        read.cursor.write(s)

    def _lock(self, s: Session) -> bool:
        if not self.store.is_postgres:
            return True  # SQLite: the write transaction (BEGIN IMMEDIATE) serialises alerters
        return bool(s.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({ADVISORY_LOCK_ID})")).scalar())

    def _overdue(self, now: datetime) -> dict[str, str]:
        try:
            with self.store.read() as s:
                found = overdue_tasks(s, now)
        except Exception:
            log.exception("overdue check failed")
            return {}
        return {t["name"]: t["reason"] for t in found}

    def _finished_runs(self, s: Session, cursor: _Cursor) -> list[Any]:
        wall = utcnow()
        floor = max(cursor.at - timedelta(seconds=CURSOR_LOOKBACK), wall - timedelta(seconds=MAX_CATCH_UP))
        out: list[Any] = []
        while len(out) < MAX_RUNS_PER_EVALUATION:
            limit = BATCH + len(cursor.seen)
            # ids only: the runs of the lookback, already seen, are most of them (20,000 at 10,000
            # runs a minute), and reading their finish times cost more than the evaluation
            # (the driver's rows: a SQLAlchemy result costs about 3 microseconds a row, 60 ms here)
            query = sa.select(Run.id).where(Run.finished_at >= floor).order_by(Run.finished_at, Run.id).limit(limit)
            with s.connection().execute(query) as result:
                ids = [row[0] for row in result.cursor.fetchall()]
            fresh = self._load_runs(s, [i for i in ids if i not in cursor.seen])
            for run in fresh:
                cursor.seen[run.id] = run.finished_at.timestamp()
                cursor.at = max(cursor.at, run.finished_at)
            out.extend(fresh)
            if len(ids) < limit or not fresh:
                break
            floor = s.execute(sa.select(Run.finished_at).where(Run.id == ids[-1])).scalar_one()
        horizon = (cursor.at - timedelta(seconds=CURSOR_LOOKBACK)).timestamp()
        cursor.seen = {k: v for k, v in cursor.seen.items() if v >= horizon}
        return out

    @staticmethod
    def _load_runs(s: Session, ids: list[int]) -> list[Any]:
        """The columns the rules need, for ``ids``, ordered by finished_at (ids are read first, so
        runs already processed within the lookback are not loaded again)."""
        rows: list[Any] = []
        for i in range(0, len(ids), 500):
            rows.extend(_core(s, sa.select(*RUN_COLUMNS).where(Run.id.in_(ids[i : i + 500]))).all())
        rows.sort(key=lambda r: (r.finished_at, r.id))
        return rows

    @staticmethod
    def _tasks(s: Session, ids: set[int], overdue: dict[str, str] | None) -> dict[int, Any]:
        """The tasks involved (the columns the rules and messages need), by id."""
        found: dict[int, Any] = {}
        id_list = sorted(ids)
        for i in range(0, len(id_list), 500):
            chunk = id_list[i : i + 500]
            for task in _core(s, sa.select(*TASK_COLUMNS).where(ScheduledTask.id.in_(chunk))):
                found[task.id] = task
        names = set(overdue or {})
        names |= set(_core(s, sa.select(AlertState.task_name).where(AlertState.state == rules.OVERDUE)).scalars())
        names -= {t.name for t in found.values()}
        name_list = sorted(names)
        for i in range(0, len(name_list), 500):
            chunk = name_list[i : i + 500]
            for task in _core(s, sa.select(*TASK_COLUMNS).where(ScheduledTask.name.in_(chunk))):
                found[task.id] = task
        return found

    @staticmethod
    def _states(s: Session, names: set[str]) -> dict[tuple[str, str], AlertState]:
        out: dict[tuple[str, str], AlertState] = {}
        name_list = sorted(names)
        for i in range(0, len(name_list), 500):
            chunk = name_list[i : i + 500]
            for row in s.execute(sa.select(AlertState).where(AlertState.task_name.in_(chunk))).scalars():
                out[(row.task_name, row.channel)] = row
        return out

    @staticmethod
    def _retried(s: Session, finished: list[Any]) -> set[int]:
        """Failed runs for which a retry exists (created in the same transaction that ended them)."""
        failed = [r for r in finished if r.status in (FAILED, TIMED_OUT) and r.task_id is not None]
        if not failed:
            return set()
        ids = [r.id for r in failed]
        since = min(r.finished_at for r in failed)
        task_ids = sorted({r.task_id for r in failed})
        return set(
            _core(
                s,
                sa.select(Run.retry_of).where(
                    Run.task_id.in_(task_ids), Run.created_at >= since, Run.retry_of.in_(ids)
                ),
            ).scalars()
        )

    # --- pings ------------------------------------------------------------------------------

    @staticmethod
    def _run_pings(task: Any, run: Any, cursor: _Cursor, retrying: bool) -> list[Ping]:
        if not task.ping_url:
            return []
        out = []
        if run.started_at is not None and run.id not in cursor.pinged:
            out.append(Ping(task.ping_url, "start", run.id))
        cursor.pinged.discard(run.id)
        kind = None if retrying else end_kind(run.status, run.outcome)
        if kind and (run.started_at is not None or run.status != "cancelled"):
            out.append(Ping(task.ping_url, kind, run.id, run.error or run.summary or run.status))
        return out

    @staticmethod
    def _start_pings(s: Session, cursor: _Cursor) -> list[Ping]:
        rows = _core(
            s,
            sa.select(Run.id, ScheduledTask.ping_url)
            .join(ScheduledTask, ScheduledTask.id == Run.task_id)
            .where(
                Run.status == RUNNING,
                ScheduledTask.ping_url.is_not(None),
                Run.dry_run.is_(False),
                Run.origin != "procedure",
            ),
        ).all()
        running = {r.id for r in rows}
        out = [Ping(url, "start", run_id) for run_id, url in rows if run_id not in cursor.pinged]
        # forget runs that ended without our seeing them end (deleted, or beyond the catch-up horizon)
        cursor.pinged = {i for i in cursor.pinged if i in running or i in cursor.seen} | running
        return out


def evaluate(store: Store, settings: Any, now: datetime | None = None) -> list[Notification]:
    """One evaluation without a background thread (``upkeep notify evaluate``, tests)."""
    return Alerter(store, settings).evaluate_once(now or datetime.now(UTC))
