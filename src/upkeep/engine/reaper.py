"""The reaper: the one place that recovers runs whose worker died.

Staleness is judged by heartbeat, never by start time: a run is stale after
``stale_after_missed_heartbeats`` missed heartbeats. A ``waiting`` run has no worker and is never
judged. On the run's own host, a run whose worker
process is gone is recovered at once. Recovery kills what is left of the dead attempt's process
group (on this host), then fails the run, which schedules a retry when attempts remain.
Submitted runs whose dispatcher died go back to pending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psutil
import sqlalchemy as sa

from upkeep.engine import lifecycle
from upkeep.engine.context import kill_process_group
from upkeep.store.db import Store
from upkeep.store.models import RUNNING, SUBMITTED, Run

log = logging.getLogger(__name__)


def process_alive(pid: int | None, started_before: datetime | None = None) -> bool:
    """Whether ``pid`` is alive and (when given) was started before ``started_before``."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_before is not None:
            return datetime.fromtimestamp(proc.create_time(), UTC) <= started_before + timedelta(seconds=1)
        return True
    except psutil.NoSuchProcess:
        return False


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

    def find_stale(self, now: datetime | None = None) -> list[Run]:
        now = now or datetime.now(UTC)
        stale_before = now - timedelta(seconds=self.settings.stale_after_seconds)
        with self.store.read() as s:
            running = list(s.execute(sa.select(Run).where(Run.status == RUNNING)).scalars())
        out = []
        for run in running:
            beat = run.heartbeat_at or run.started_at
            if (
                beat is not None
                and beat < stale_before
                or run.worker_host == lifecycle.HOSTNAME
                and not process_alive(run.worker_pid, run.started_at)
            ):
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

    def reap(self, *, dry_run: bool = False, now: datetime | None = None) -> ReapReport:
        now = now or datetime.now(UTC)
        report = ReapReport()
        for run in self.find_stale(now):
            beat = run.heartbeat_at or run.started_at
            reason = (
                f"worker {run.worker} lost: no heartbeat since {beat.isoformat() if beat else 'start'}"
                if run.worker_host != lifecycle.HOSTNAME or process_alive(run.worker_pid)
                else f"worker {run.worker} is gone (process {run.worker_pid} no longer exists)"
            )
            item = {"run_id": run.id, "task": run.task_name, "attempt": run.attempt, "reason": reason}
            if not dry_run:
                killed = 0
                if run.worker_host == lifecycle.HOSTNAME and run.worker_pgid:
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
