"""The reaper: the one place that recovers runs whose worker died.

On the run's own host, a run whose worker process is gone is recovered at once (``upkeep serve``
and ``upkeep worker`` do it at start, before any new work). Anywhere else a run is judged lost
by heartbeat, never by start time, and only on evidence (a ``waiting`` run has no worker
and is never judged):

- its heartbeat is older than ``stale_after_missed_heartbeats`` heartbeats;
- this reaper has itself been connected to the store for a whole stale window: after an outage
  every worker gets that long to beat again or record the result it kept (``pending``), so an
  outage never makes a live run look dead;
- no live worker vouches for it: a worker's instance heartbeat lists every run it executes or
  holds the result of, and on this host a kept result's file vouches too. A worker process
  that is alive but vouches for nothing has lost track of the run (its supervisor died, or a
  claim's reply was lost in an outage): the run is recovered like any other.

Recovery kills what is left of the dead attempt's process group (on this host), then fails the
run, which schedules a retry when attempts remain. Submitted runs whose dispatcher died go back
to pending.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from upkeep.engine import lifecycle
from upkeep.engine.context import kill_process_group, process_alive
from upkeep.engine.pending import held_on_host
from upkeep.store.db import Store
from upkeep.store.models import RUNNING, SUBMITTED, Instance, Run

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    recovered: list[dict] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"recovered": self.recovered, "requeued": self.requeued}


class Reaper:
    def __init__(self, store: Store, settings):
        self.store = store
        self.settings = settings
        self.submitted_timeout = timedelta(seconds=settings.requeue_submitted_after_seconds)
        self._connected_since: float | None = None  # monotonic; None while the store does not answer

    def disconnected(self) -> None:
        """The store did not answer its owner (a scheduler tick failed): the window starts again."""
        self._connected_since = None

    def connected_long_enough(self) -> bool:
        """Whether this reaper has been connected to the store for a whole stale window."""
        since = self._connected_since
        return since is not None and time.monotonic() - since >= self.settings.stale_after_seconds

    def find_stale(self, now: datetime | None = None, *, judge_heartbeats: bool | None = None) -> list[Run]:
        """Running runs to recover: on this host those whose worker process is gone; with
        ``judge_heartbeats`` (by default once connected for a stale window) also those with a
        stale heartbeat that no live worker vouches for."""
        now = now or datetime.now(UTC)
        stale_before = now - timedelta(seconds=self.settings.stale_after_seconds)
        try:
            with self.store.read() as s:
                running = list(s.execute(sa.select(Run).where(Run.status == RUNNING)).scalars())
                vouched = _vouched_for(s, stale_before) if running else set()
                listed_by_dead = _listed_by_dead_local_workers(s) if running else {}
        except Exception:
            self._connected_since = None
            raise
        if self._connected_since is None:
            self._connected_since = time.monotonic()
        if judge_heartbeats is None:
            judge_heartbeats = self.connected_long_enough()
        kept_here = held_on_host(self.settings.resolved_data_dir) if running else set()
        out = []
        # listed by a dead worker while running this attempt (not an earlier one, requeued since)
        orphaned = {r.id for r in running if r.started_at and listed_by_dead.get(r.id, r.started_at) > r.started_at}
        for run in running:
            if run.id in kept_here or (run.id in vouched and run.id not in orphaned):
                continue  # a result kept on this host is on its way; a live worker vouches
            if run.worker_host == lifecycle.HOSTNAME and (
                run.id in orphaned or not process_alive(run.worker_pid, run.started_at)
            ):
                out.append(run)  # this host knows: gone (or its supervisor gone) is lost now
                continue
            beat = run.heartbeat_at or run.started_at
            if judge_heartbeats and beat is not None and beat < stale_before:
                out.append(run)
        return out

    def find_lost_submitted(self, now: datetime | None = None) -> list[Run]:
        now = now or datetime.now(UTC)
        with self.store.read() as s:
            submitted = list(s.execute(sa.select(Run).where(Run.status == SUBMITTED)).scalars())
        out = []
        for run in submitted:
            host, _, pid = (run.worker or "").rpartition(":")
            local_dead = host == lifecycle.HOSTNAME and pid.isdigit() and not process_alive(int(pid))
            too_old = run.submitted_at is not None and now - run.submitted_at > self.submitted_timeout
            if local_dead or too_old:
                out.append(run)
        return out

    def reap(
        self, *, dry_run: bool = False, now: datetime | None = None, judge_heartbeats: bool | None = None
    ) -> ReapReport:
        now = now or datetime.now(UTC)
        report = ReapReport()
        for run in self.find_stale(now, judge_heartbeats=judge_heartbeats):
            beat = run.heartbeat_at or run.started_at
            gone = run.worker_host == lifecycle.HOSTNAME and not process_alive(run.worker_pid, run.started_at)
            reason = (
                f"worker {run.worker} is gone (process {run.worker_pid} no longer exists)"
                if gone
                else f"worker {run.worker} lost: no heartbeat since {beat.isoformat() if beat else 'start'}"
            )
            item = {"run_id": run.id, "task": run.task_name, "attempt": run.attempt, "reason": reason}
            if not dry_run:
                killed = 0
                if run.worker_host == lifecycle.HOSTNAME and run.worker_pgid:  # what is left of the attempt
                    killed = kill_process_group(run.worker_pgid)
                item["killed_processes"] = killed
                lifecycle.recover(self.store, run.id, reason)
                log.warning("recovered run %s: %s (killed %d leftover processes)", run.id, reason, killed)
            report.recovered.append(item)
        for run in self.find_lost_submitted(now):
            if not dry_run:
                lifecycle.requeue(self.store, run.id)
            report.requeued.append(run.id)
        return report


def _vouched_for(s, seen_since: datetime) -> set[int]:
    """Runs a worker's instance heartbeat, fresh since ``seen_since``, lists as its own."""
    infos = s.execute(sa.select(Instance.info).where(Instance.last_seen_at >= seen_since)).scalars()
    return {int(run_id) for info in infos if isinstance(info, dict) for run_id in info.get("runs") or ()}


def _listed_by_dead_local_workers(s) -> dict[int, datetime]:
    """Runs that a worker on this host listed as its own before it died (``upkeep serve`` killed
    under its pool: the pool process may linger a moment, but nothing will record its result),
    with when it last listed them."""
    query = sa.select(Instance.pid, Instance.info, Instance.last_seen_at).where(Instance.host == lifecycle.HOSTNAME)
    return {
        int(run_id): seen
        for pid, info, seen in s.execute(query).all()
        if isinstance(info, dict) and info.get("runs") and not process_alive(pid)
        for run_id in info["runs"]
    }
