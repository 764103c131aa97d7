"""Alerter and /metrics cost with 10,000 tasks and 1,000,000 runs on SQLite (issue 3, items 4-5).

Measured:
1. ``/metrics`` scrape (``upkeep.metrics.render``: persistent counters + per-task gauges + queue
   depth), against the baseline of computing ``upkeep_runs_total`` from the run history
   (``GROUP BY task_name, status, outcome`` over every run) in the same store.
2. An idle alerter evaluation (nothing finished since the cursor).
3. An evaluation that processes a burst of 10,000 finished runs (one per task; 1 % of the tasks
   failing with a notify channel), counters included, per run.
4. The engine's overdue check (``Upkeep.overdue_tasks``) over 10,000 tasks, which the alerter runs
   every ``overdue_every`` seconds and whose result ``/metrics`` reuses.
5. An evaluation of one health.check run reporting 1,000 inventory targets, each alerting on its
   own (5 % critical, 10 of those behind a down database, 10 during a maintenance run), per
   target, against the burst's cost per run measured in the same store.

Environment: UPKEEP_BENCH_TASKS (10000), UPKEEP_BENCH_RUNS (1000000). Data under /tmp, removed after.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TASKS = int(os.environ.get("UPKEEP_BENCH_TASKS", "10000"))
RUNS = int(os.environ.get("UPKEEP_BENCH_RUNS", "1000000"))


def _timed(fn, repeat: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _populate(store, now: datetime) -> None:
    import sqlalchemy as sa

    from upkeep.store.models import Run, ScheduledTask

    rng = random.Random(7)
    tasks = []
    for i in range(TASKS):
        tasks.append(
            dict(
                id=i + 1,
                name=f"task-{i:05d}",
                task_type="debug.noop" if i % 100 else "debug.fail",
                schedule="@every 1h",
                schedule_anchor=now,
                notify={"channels": ["hook"]} if i % 100 == 0 else {},
                next_run_at=now + timedelta(minutes=rng.randint(1, 60)),
                created_at=now - timedelta(days=30),
                updated_at=now,
                last_success_at=now - timedelta(minutes=rng.randint(1, 600)),
            )
        )
    with store.write() as s:
        s.execute(sa.insert(ScheduledTask.__table__), tasks)
    statuses = ["completed"] * 90 + ["failed"] * 6 + ["timed_out"] * 2 + ["cancelled"] * 2
    chunk = 50_000
    for start in range(0, RUNS, chunk):
        rows = []
        for n in range(start, min(RUNS, start + chunk)):
            task = n % TASKS
            finished = now - timedelta(days=30) + timedelta(seconds=n * (29 * 86400 / RUNS))
            status = statuses[n % 100]
            rows.append(
                dict(
                    task_id=task + 1,
                    task_name=f"task-{task:05d}",
                    task_type="debug.noop",
                    origin="scheduled",
                    scheduled_for=finished - timedelta(seconds=2),
                    due_at=finished - timedelta(seconds=2),
                    status=status,
                    outcome="ok" if status == "completed" else None,
                    attempt=1,
                    config={},
                    dry_run=False,
                    confirm=False,
                    queue="default",
                    max_retries=0,
                    locks=[],
                    created_at=finished,
                    started_at=finished - timedelta(seconds=1.5),
                    finished_at=finished,
                    event_count=0,
                )
            )
        with store.write() as s:
            s.execute(sa.insert(Run.__table__), rows)


def _burst(store, now: datetime) -> None:
    """One finished run per task, just now (1 % failing on tasks that notify)."""
    import sqlalchemy as sa

    from upkeep.store.models import Run

    rows = []
    for task in range(TASKS):
        failing = task % 100 == 0
        rows.append(
            dict(
                task_id=task + 1,
                task_name=f"task-{task:05d}",
                task_type="debug.noop",
                origin="manual",
                due_at=now,
                status="failed" if failing else "completed",
                outcome=None if failing else "ok",
                attempt=1,
                config={},
                dry_run=False,
                confirm=False,
                queue="default",
                max_retries=0,
                locks=[],
                created_at=now,
                started_at=now - timedelta(seconds=3),
                finished_at=now,
                event_count=0,
                error="failing on purpose" if failing else None,
            )
        )
    with store.write() as s:
        s.execute(sa.insert(Run.__table__), rows)


TARGETS = 1000


def _health_run(store, now: datetime) -> int:
    """Targets in the inventory, a health.check task and a maintenance task, and one finished check
    of every target (5 % critical: 10 with a down parent, 10 during the maintenance run)."""

    from upkeep.store.models import Run, ScheduledTask
    from upkeep.store.records import CONFIG_DOMAIN, Records

    services = {f"svc{i:04d}": {"type": "http", "url": f"http://127.0.0.1:9/{i}"} for i in range(TARGETS)}
    for i in range(10):
        services[f"svc{i:04d}"]["depends_on"] = ["databases.main"]
    Records(store, CONFIG_DOMAIN).put("targets", {"services": services, "databases": {"main": {"url": "x"}}})
    critical = {f"svc{i:04d}" for i in range(0, TARGETS, 20)} | {f"svc{i:04d}" for i in range(10)}
    rows = [
        {
            "name": n,
            "kind": "http",
            "status": "critical" if n in critical else "ok",
            "detail": "HTTP 503",
            "target": f"services.{n}",
        }
        for n in services
    ] + [{"name": "main", "kind": "postgres", "status": "critical", "detail": "down", "target": "databases.main"}]
    with store.write() as s:
        health = ScheduledTask(
            name="health", task_type="health.check", notify={"channels": ["hook"]}, created_at=now, updated_at=now
        )
        deploy = ScheduledTask(
            name="deploy",
            task_type="debug.noop",
            created_at=now,
            updated_at=now,
            affects={"services": [f"svc{i:04d}" for i in range(20, 220, 20)]},
        )
        s.add_all([health, deploy])
        s.flush()
        s.add(
            Run(
                task_id=deploy.id,
                task_name="deploy",
                task_type="debug.noop",
                status="running",
                due_at=now,
                created_at=now,
                started_at=now - timedelta(seconds=30),
            )
        )
        s.add(
            Run(
                task_id=health.id,
                task_name="health",
                task_type="health.check",
                status="completed",
                outcome="critical",
                due_at=now,
                created_at=now,
                started_at=now - timedelta(seconds=1),
                finished_at=now,
                result={"targets": rows},
            )
        )
    return len(critical)


def main() -> None:
    import sqlalchemy as sa

    from upkeep import metrics
    from upkeep.app import Upkeep
    from upkeep.notify.alerter import Alerter
    from upkeep.settings import Settings
    from upkeep.store.db import Store
    from upkeep.store.models import Run
    from upkeep.store.records import CONFIG_DOMAIN, Records

    workdir = Path(tempfile.mkdtemp(prefix="upkeep-bench-alerts-", dir="/tmp"))
    try:
        settings = Settings(config=workdir / "upkeep.yaml")
        store = Store(settings.resolved_database_url)
        store.upgrade()
        now = datetime.now(UTC)
        started = time.perf_counter()
        _populate(store, now - timedelta(minutes=5))
        print(f"store: {TASKS} tasks, {RUNS} runs written in {time.perf_counter() - started:.1f}s")
        # the webhook points at a closed port: delivery fails fast and stays in the outbox, and the
        # outbox's warning about each failed delivery would bury the figures
        logging.getLogger("upkeep.notify.outbox").setLevel(logging.ERROR)
        Records(store, CONFIG_DOMAIN).put("channels", {"hook": {"url": "json://127.0.0.1:9/hook", "timeout": 2}})
        alerter = Alerter(store, settings)
        alerter.evaluate_once(now, check_overdue=True)  # the cursor starts; the overdue snapshot too

        def baseline():
            with store.read() as s:
                return s.execute(
                    sa.select(Run.task_name, Run.status, Run.outcome, sa.func.count()).group_by(
                        Run.task_name, Run.status, Run.outcome
                    )
                ).all()

        base_time, groups = _timed(baseline, 3)
        scrape_time, body = _timed(lambda: metrics.render(store, settings), 5)
        print(f"baseline GROUP BY over {RUNS} runs: {base_time * 1000:.0f} ms ({len(groups)} groups)")
        print(
            f"/metrics scrape: {scrape_time * 1000:.0f} ms, {len(body) / 1e6:.1f} MB, "
            f"{base_time / scrape_time:.1f}x faster than the baseline"
        )

        idle, _ = _timed(lambda: alerter.evaluate_once(now, check_overdue=False), 5)
        print(f"idle alerter evaluation: {idle * 1000:.1f} ms")

        _burst(store, datetime.now(UTC))
        started = time.perf_counter()
        notes = alerter.evaluate_once(datetime.now(UTC), check_overdue=False)
        burst = time.perf_counter() - started
        print(
            f"evaluation of a burst of {TASKS} finished runs: {burst * 1000:.0f} ms "
            f"({burst / TASKS * 1e6:.0f} us/run), {len(notes)} notifications attempted"
        )
        after_idle, _ = _timed(lambda: alerter.evaluate_once(datetime.now(UTC), check_overdue=False), 3)
        print(f"evaluation right after the burst (its runs within the cursor lookback): {after_idle * 1000:.0f} ms")
        scrape_after, _ = _timed(lambda: metrics.render(store, settings), 3)
        print(f"/metrics scrape after the burst: {scrape_after * 1000:.0f} ms")

        failing = _health_run(store, datetime.now(UTC))
        started = time.perf_counter()
        notes = alerter.evaluate_once(datetime.now(UTC), check_overdue=False)
        targets = time.perf_counter() - started
        per_target, per_run = targets / (TARGETS + 1), burst / TASKS
        print(
            f"evaluation of one health.check run of {TARGETS + 1} targets ({failing + 1} failing): "
            f"{targets * 1000:.0f} ms ({per_target * 1e6:.0f} us/target, {per_target / per_run:.1f}x a run "
            f"of the burst), {sum(n.status == 'held' for n in notes)} held, "
            f"{sum(n.status != 'held' for n in notes)} notifications attempted"
        )

        overdue_time, overdue = _timed(lambda: Upkeep(settings, store).overdue_tasks(now), 2)
        print(f"overdue check over {TASKS} tasks: {overdue_time * 1000:.0f} ms ({len(overdue)} overdue)")
        store.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
