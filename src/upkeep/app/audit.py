"""The audit log and the figures: reading the log, recording an event that changes nothing stored
(a sign-in, a sign-out), overdue tasks and the run statistics of the dashboard and ``upkeep stats``.

Every change is audited by the use case that makes it, in its own transaction (``Base.audit``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.app.base import Base
from upkeep.app.views import audit_view
from upkeep.errors import UserError
from upkeep.store.models import ACTIVE_STATUSES, COMPLETED, AuditEntry, Run, ScheduledTask
from upkeep.store.runs import count_by_status


class AuditCases(Base):
    """The audit log, overdue tasks and statistics."""

    def list_audit(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        object_type: str | None = None,
        object_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        query = sa.select(AuditEntry)
        if object_type:
            query = query.where(AuditEntry.object_type == object_type)
        if object_id:
            query = query.where(AuditEntry.object_id == object_id)
        with self.store.read() as s:
            total = s.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            rows = s.execute(query.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)).scalars()
            return [audit_view(a) for a in rows], total

    def record_audit(self, actor: str, action: str, kind: str, ref: Any, **change: Any) -> None:
        """An event that changes nothing else stored (a sign-in, a sign-out), in its own transaction."""
        with self.store.write() as s:
            self.audit(s, actor, action, kind, ref, **change)

    def overdue_tasks(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Tasks with no run started within a slot + grace, or no success within expect_success_within.

        One definition for the CLI, the API, alerts and metrics: ``Queries.overdue``.
        """
        from upkeep.queries import Queries

        return Queries(self.store, self.clock).overdue(now)

    def stats(self, days: int = 7) -> dict[str, Any]:
        if days < 1 or days > 366:
            raise UserError("days must be between 1 and 366", field="days")
        since = self.clock.now() - timedelta(days=days)
        with self.store.read() as s:
            total_tasks = s.execute(sa.select(sa.func.count(ScheduledTask.id))).scalar_one()
            enabled = s.execute(
                sa.select(sa.func.count(ScheduledTask.id)).where(ScheduledTask.enabled.is_(True))
            ).scalar_one()
            by_status = count_by_status(s, created_since=since)
            by_outcome = dict(
                s.execute(
                    sa.select(Run.outcome, sa.func.count(Run.id))
                    .where(Run.created_at >= since, Run.status == COMPLETED)
                    .group_by(Run.outcome)
                ).all()
            )
            failing = (
                s.execute(
                    sa.select(ScheduledTask.name)
                    .where(
                        ScheduledTask.last_status.in_(("failed", "timed_out"))
                        | (ScheduledTask.last_outcome == "critical")
                    )
                    .order_by(ScheduledTask.name)
                )
                .scalars()
                .all()
            )
            active = s.execute(sa.select(sa.func.count(Run.id)).where(Run.status.in_(ACTIVE_STATUSES))).scalar_one()
        finished = sum(v for k, v in by_status.items() if k in ("completed", "failed", "timed_out", "cancelled"))
        ok = by_status.get("completed", 0)
        return {
            "days": days,
            "tasks": total_tasks,
            "enabled": enabled,
            "runs": sum(by_status.values()),
            "by_status": by_status,
            "by_outcome": {str(k): v for k, v in by_outcome.items()},
            "success_rate": round(ok / finished, 4) if finished else None,
            "failing_now": list(failing),
            "active_runs": active,
            "overdue": self.overdue_tasks(),
        }
