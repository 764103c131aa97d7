"""Read-only queries for pages that need aggregated data (dashboard, charts, session keys).

The application layer (``upkeep.app``) owns every change and the per-object views; this
module only reads, with set-based queries that stay fast with 10,000 tasks and millions of runs.
``overdue`` is ``upkeep.store.runs.overdue_tasks``, which alerts and metrics use too.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.clock import Clock
from upkeep.store.db import Store
from upkeep.store.models import FAILED_STATUSES, FINISHED_STATUSES, ApiKey, Run, ScheduledTask
from upkeep.store.runs import overdue_tasks

PAST_DAY_TTL = timedelta(minutes=10)  # how long the counts of a whole past day are reused
# The newest failed runs, from the partial index ix_runs_failed (its condition written as it is, so
# the planner may use it). SQLite's planner, without statistics, prefers (status, due_at) and then
# sorts every failure: it is told which index to read.
_FAILED = "status IN ('failed', 'timed_out')"
_LATEST_FAILED = {
    False: sa.text(f"SELECT id FROM runs WHERE {_FAILED} ORDER BY id DESC LIMIT :n"),
    True: sa.text(f"SELECT id FROM runs INDEXED BY ix_runs_failed WHERE {_FAILED} ORDER BY id DESC LIMIT :n"),
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_by_id(store: Store, key_id: int) -> dict[str, Any] | None:
    """An API key's id, name, role, prefix and revocation time (never its hash)."""
    with store.read() as s:
        row = s.execute(
            sa.select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.prefix, ApiKey.revoked_at).where(ApiKey.id == key_id)
        ).first()
    if row is None:
        return None
    return {"id": row.id, "name": row.name, "role": row.role, "prefix": row.prefix, "revoked_at": row.revoked_at}


class Queries:
    def __init__(self, store: Store, clock: Clock | None = None):
        self.store = store
        self.clock = clock or Clock()
        # runs per day and outcome of whole past days: (day, counts, counted at)
        self._days: dict[str, tuple[dict[tuple[str, str | None], int], datetime]] = {}
        self._days_lock = threading.Lock()

    # --- tasks --------------------------------------------------------------------------------

    def raw_task(self, ref: str | int) -> dict[str, Any] | None:
        """Id, name, type and the UNREDACTED config of a task, for merging a partial update.

        Never return this to a client: it is only used to compute what the service will validate.
        """
        text = str(ref)
        query = sa.select(ScheduledTask.id, ScheduledTask.name, ScheduledTask.task_type, ScheduledTask.config)
        if text.isdigit():
            query = query.where(sa.or_(ScheduledTask.id == int(text), ScheduledTask.name == text))
        else:
            query = query.where(ScheduledTask.name == text)
        with self.store.read() as s:
            row = s.execute(query).first()
        if row is None:
            return None
        return {"id": row.id, "name": row.name, "type": row.task_type, "config": dict(row.config or {})}

    def task_history(self, task_id: int, limit: int = 40) -> list[dict[str, Any]]:
        """The task's latest runs, oldest first: id, status, outcome, duration (for the chart)."""
        with self.store.read() as s:
            rows = s.execute(
                sa.select(Run.id, Run.status, Run.outcome, Run.created_at, Run.started_at, Run.finished_at)
                .where(Run.task_id == task_id)
                .order_by(Run.id.desc())
                .limit(limit)
            ).all()
        out = []
        for r in reversed(rows):
            duration = (r.finished_at - r.started_at).total_seconds() if r.started_at and r.finished_at else None
            out.append(
                {
                    "id": r.id,
                    "status": r.status,
                    "outcome": r.outcome,
                    "created_at": _iso(r.created_at),
                    "duration_seconds": duration,
                }
            )
        return out

    def recent_outcomes(self, task_ids: list[int], limit: int = 20) -> dict[int, list[dict[str, Any]]]:
        """Each task's last ``limit`` runs (status, outcome), oldest first. One statement of one
        small search per task in the (task_id, created_at, status, outcome) index, which holds
        all it reads: a task with a million runs costs the same as one with twenty."""
        out: dict[int, list[dict[str, Any]]] = {task_id: [] for task_id in task_ids}
        if not task_ids:
            return out
        # Plain SQL: building 50 SQLAlchemy subqueries costs 50x more than running them.
        one = "SELECT * FROM (SELECT task_id, id, status, outcome FROM runs WHERE task_id = :t{i} "
        one += "ORDER BY created_at DESC LIMIT :limit) AS r{i}"
        statement = sa.text(" UNION ALL ".join(one.format(i=i) for i in range(len(task_ids))))
        params = {f"t{i}": task_id for i, task_id in enumerate(task_ids)}
        with self.store.read() as s:
            rows = s.execute(statement, {**params, "limit": limit}).all()
        for task_id, _id, status, outcome in sorted(rows, key=lambda r: r[1]):  # ids follow creation
            out[task_id].append({"status": status, "outcome": outcome})
        return out

    def runs_per_day(self, days: int = 30) -> list[dict[str, Any]]:
        """Runs created per UTC day over the last ``days`` days (today included), counted by
        (status, outcome): ``[{"day": "YYYY-MM-DD", "counts": {(status, outcome): n}}]``, oldest
        first, empty days included. A past day's counts are kept for ``PAST_DAY_TTL``: runs of a
        past day rarely change (one finishing after midnight), and recounting 30 days of a busy
        store on every dashboard refresh would cost more than the rest of the page."""
        now = self.clock.now().astimezone(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        with self.store.read() as s:
            out = [
                {"day": (today - timedelta(days=back)).date().isoformat(), "counts": self._day(s, today, back, now)}
                for back in range(days - 1, -1, -1)
            ]
        with self._days_lock:  # forget days that left the range
            for key in [k for k in self._days if k < out[0]["day"]]:
                del self._days[key]
        return out

    def _day(self, s, today: datetime, back: int, now: datetime) -> dict[tuple[str, str | None], int]:
        """The (status, outcome) counts of the runs created on the UTC day ``back`` days before
        ``today``: counted now for today, reused for ``PAST_DAY_TTL`` for a past day."""
        start = today - timedelta(days=back)
        key = start.date().isoformat()
        cached = self._days.get(key) if back else None
        if cached is None or now - cached[1] > PAST_DAY_TTL:
            rows = s.execute(
                sa.select(Run.status, Run.outcome, sa.func.count())
                .where(Run.created_at >= start, Run.created_at < start + timedelta(days=1))
                .group_by(Run.status, Run.outcome)
            ).all()
            cached = ({(r[0], r[1]): r[2] for r in rows}, now)
            if back:
                with self._days_lock:
                    self._days[key] = cached
        return cached[0]

    def _runs_by_status(self, s, since: datetime, now: datetime) -> dict[str, int]:
        """Runs created since ``since``, by status: the whole days between from the per-day
        counts (``_day``), only the part of ``since``'s day and today counted now."""
        # Grouping by an expression (not the bare column) keeps SQLite's planner on the
        # (created_at, status) index: grouping by the column makes it walk the whole
        # (status, due_at) index instead, 15x slower with a million runs.
        status_key = Run.status.concat("").label("status")
        now = now.astimezone(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        first_whole = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        if first_whole > today:  # less than a day back: all of it is counted now
            first_whole = today = since
        counts: dict[str, int] = {}
        partial = (Run.created_at >= since) & (Run.created_at < first_whole)
        for status, n in s.execute(sa.select(status_key, sa.func.count()).where(partial).group_by(status_key)):
            counts[status] = counts.get(status, 0) + n
        whole_days = (today - first_whole).days
        for back in range(whole_days, -1, -1):  # back 0: today, counted now
            for (status, _outcome), n in self._day(s, today, back, now).items():
                counts[status] = counts.get(status, 0) + n
        return counts

    # --- overdue (same definition as Upkeep.overdue_tasks) ------------------------------------

    def overdue(self, now: datetime | None = None) -> list[dict[str, Any]]:
        with self.store.read() as s:
            return overdue_tasks(s, now or self.clock.now())

    # --- dashboard ----------------------------------------------------------------------------

    def dashboard(self, days: int = 7, *, limit: int = 10) -> dict[str, Any]:
        now = self.clock.now()
        since = now - timedelta(days=days)
        t = ScheduledTask
        with self.store.read() as s:
            total = s.execute(sa.select(sa.func.count(t.id))).scalar_one()
            enabled = s.execute(sa.select(sa.func.count(t.id)).where(t.enabled.is_(True))).scalar_one()
            by_status = self._runs_by_status(s, since, now)
            failing_filter = t.last_status.in_(FAILED_STATUSES) | (t.last_outcome == "critical")
            failing_count = s.execute(sa.select(sa.func.count(t.id)).where(failing_filter)).scalar_one()
            failing = [
                dict(r._mapping)
                for r in s.execute(
                    sa.select(t.id, t.name, t.last_status, t.last_outcome, t.last_run_id, t.consecutive_failures)
                    .where(failing_filter)
                    .order_by(t.name)
                    .limit(limit * 2)
                )
            ]
            next_runs = [
                {**dict(r._mapping), "next_run_at": _iso(r.next_run_at)}
                for r in s.execute(
                    sa.select(t.id, t.name, t.task_type, t.timezone, t.next_run_at)
                    .where(t.enabled.is_(True), t.next_run_at.is_not(None))
                    .order_by(t.next_run_at)
                    .limit(limit)
                )
            ]
            # ids first, from the partial index of failed runs alone; then only those rows
            failed_ids = list(s.execute(_LATEST_FAILED[s.get_bind().dialect.name == "sqlite"], {"n": limit}).scalars())
            recent_failures = [
                {**dict(r._mapping), "created_at": _iso(r.created_at), "finished_at": _iso(r.finished_at)}
                for r in s.execute(
                    sa.select(
                        Run.id,
                        Run.task_name,
                        Run.task_type,
                        Run.status,
                        Run.outcome,
                        Run.error,
                        Run.summary,
                        Run.created_at,
                        Run.finished_at,
                    )
                    .where(Run.id.in_(failed_ids))
                    .order_by(Run.id.desc())
                )
            ]
            active = s.execute(
                sa.select(sa.func.count()).where(Run.status.in_(("pending", "submitted", "running")))
            ).scalar_one()
        finished = sum(v for k, v in by_status.items() if k in FINISHED_STATUSES)
        ok = by_status.get("completed", 0)
        overdue = self.overdue(now)
        return {
            "days": days,
            "tasks": total,
            "enabled": enabled,
            "runs": sum(by_status.values()),
            "by_status": by_status,
            "success_rate": round(ok / finished, 4) if finished else None,
            "failing_count": failing_count,
            "failing": failing,
            "overdue": overdue,
            "next_runs": next_runs,
            "recent_failures": recent_failures,
            "active_runs": active,
        }
