"""The dashboard's set-based queries agree with the service layer's definitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from upkeep.app import Upkeep
from upkeep.clock import FakeClock
from upkeep.queries import Queries
from upkeep.settings import Settings
from upkeep.store.models import Run, ScheduledTask


def test_overdue_matches_the_engine_definition_and_dashboard_counts_the_window(sqlite_store, tmp_path):
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    clock = FakeClock(start)
    svc = Upkeep(Settings(config=tmp_path / "upkeep.yaml"), sqlite_store, clock=clock)
    svc.create_task({"name": "fresh", "type": "debug.noop", "schedule": "0 * * * *"}, actor="t")
    svc.create_task({"name": "behind", "type": "debug.noop", "schedule": "*/5 * * * *"}, actor="t")
    svc.create_task({"name": "never-ok", "type": "debug.noop", "expect_success_within": "1h"}, actor="t")
    svc.create_task(
        {"name": "stuck", "type": "debug.noop", "schedule": "@every 1h", "misfire_grace_seconds": 600}, actor="t"
    )
    svc.create_task({"name": "off", "type": "debug.noop", "schedule": "*/5 * * * *", "enabled": False}, actor="t")
    later = start + timedelta(hours=3)
    with sqlite_store.write() as s:
        stuck_id = s.execute(sa.select(ScheduledTask.id).where(ScheduledTask.name == "stuck")).scalar_one()
        s.execute(
            sa.update(ScheduledTask)
            .where(ScheduledTask.name.in_(("fresh", "stuck")))
            .values(next_run_at=later + timedelta(minutes=30))
        )
        s.add(
            Run(
                task_id=stuck_id,
                task_name="stuck",
                task_type="debug.noop",
                status="pending",
                origin="manual",
                due_at=later - timedelta(minutes=20),
                created_at=later - timedelta(minutes=20),
            )
        )
        s.add(
            Run(
                task_id=stuck_id,
                task_name="stuck",
                task_type="debug.noop",
                status="failed",
                origin="manual",
                due_at=later - timedelta(days=2),
                created_at=later - timedelta(days=2),
            )
        )
        s.add(
            Run(
                task_id=stuck_id,
                task_name="stuck",
                task_type="debug.noop",
                status="completed",
                outcome="ok",
                origin="manual",
                due_at=later - timedelta(days=9),
                created_at=later - timedelta(days=9),
            )
        )
    clock.advance(3 * 3600)
    queries = Queries(sqlite_store, clock)
    overdue = {t["name"]: t["reason"] for t in svc.overdue_tasks()}
    assert set(overdue) == {"behind", "never-ok", "stuck"}  # not fresh (next slot ahead), not off (disabled)
    assert "not started" in overdue["behind"] and "no success since" in overdue["never-ok"]
    assert "has not started" in overdue["stuck"]
    assert queries.overdue() == svc.overdue_tasks()
    board = queries.dashboard(days=7)
    stats = svc.stats(days=7)
    assert board["by_status"] == stats["by_status"] == {"pending": 1, "failed": 1}
    assert board["success_rate"] == stats["success_rate"] == 0.0
    assert (board["tasks"], board["enabled"]) == (stats["tasks"], stats["enabled"]) == (5, 4)
    assert [r["task_name"] for r in board["recent_failures"]] == ["stuck"]
    assert [t["name"] for t in board["next_runs"]][:1] == ["behind"]
