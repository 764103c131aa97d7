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


def test_the_dashboards_window_counts_whole_days_once_and_both_partial_ends_exactly(sqlite_store):
    """Runs every 5 hours over 10 days: the 7-day counts (whole past days reused from the per-day
    counts, the first day's part and today counted live) equal a plain count of the window, at
    several moments of the day, including just before and after midnight and after a run of a
    past day changed status (reused counts are recounted after PAST_DAY_TTL)."""
    start = datetime(2024, 5, 1, 0, 7, tzinfo=UTC)
    statuses = ["completed", "failed", "cancelled", "timed_out"]
    with sqlite_store.write() as s:
        for i in range(10 * 24 // 5):
            at = start + timedelta(hours=5 * i, minutes=i)
            s.add(Run(task_name="t", task_type="debug.noop", status=statuses[i % 4], origin="manual", due_at=at))
            s.flush()
            s.execute(sa.update(Run).where(Run.due_at == at).values(created_at=at))

    def plain(now: datetime) -> dict[str, int]:
        with sqlite_store.read() as s:
            rows = s.execute(
                sa.select(Run.status, sa.func.count())
                .where(Run.created_at >= now - timedelta(days=7))
                .group_by(Run.status)
            ).all()
        return dict(rows)

    clock = FakeClock(start + timedelta(days=10, hours=1))  # after the last run: none in the future
    queries = Queries(sqlite_store, clock)
    for step in (0, 5 * 3600, 64370, 20, 11 * 3600):  # 01:07, 06:07, 23:59:50, 00:00:10, 11:00:10
        clock.advance(step)
        assert queries.dashboard(days=7)["by_status"] == plain(clock.now()), clock.now()
    with sqlite_store.write() as s:  # a run three days back ends differently
        s.execute(
            sa.update(Run)
            .where(Run.created_at < clock.now() - timedelta(days=3), Run.created_at > clock.now() - timedelta(days=4))
            .values(status="completed")
        )
    clock.advance(11 * 60)
    assert queries.dashboard(days=7)["by_status"] == plain(clock.now())


def test_recent_failures_are_the_newest_failed_and_timed_out_runs_on_both_stores(store):
    statuses = ["completed", "failed", "timed_out", "cancelled", "completed"]
    now = datetime.now(UTC)
    with store.write() as s:
        for i in range(40):
            s.add(Run(task_name="t", task_type="debug.noop", status=statuses[i % 5], origin="manual", due_at=now))
    with store.read() as s:
        expected = list(
            s.execute(
                sa.select(Run.id).where(Run.status.in_(("failed", "timed_out"))).order_by(Run.id.desc()).limit(10)
            ).scalars()
        )
    board = Queries(store, FakeClock(now)).dashboard(days=7)
    assert [r["id"] for r in board["recent_failures"]] == expected and len(expected) == 10
    assert {r["status"] for r in board["recent_failures"]} == {"failed", "timed_out"}
