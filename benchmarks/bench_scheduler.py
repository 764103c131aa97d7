"""Scheduler fire latency and run throughput (issue 2), against APScheduler 3.11 in the same run.

1. 10,000 enabled tasks ``@every 60s`` with slots spread over the minute, a no-op handler,
   embedded on SQLite with the full run and event history kept: p50/p99 fire latency
   (started - scheduled) and RSS. APScheduler 3.11 with its SQLite job store and the same 10,000
   interval jobs: p50/p99 latency (submitted - scheduled) and RSS.
2. No-op runs with full records: runs/s on SQLite (and PostgreSQL when UPKEEP_BENCH_PG_URL is set).

Environment: UPKEEP_BENCH_TASKS (10000), UPKEEP_BENCH_SECONDS (75), UPKEEP_BENCH_RUNS (3000).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TASKS = int(os.environ.get("UPKEEP_BENCH_TASKS", "10000"))
SECONDS = float(os.environ.get("UPKEEP_BENCH_SECONDS", "75"))
RUNS = int(os.environ.get("UPKEEP_BENCH_RUNS", "3000"))
ROOT = Path(__file__).resolve().parent.parent


def _child(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout.strip().splitlines()[-1]


UPKEEP_LATENCY = """
import json, os, sys, time, statistics, psutil
from datetime import UTC, datetime, timedelta
import sqlalchemy as sa
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import Run, ScheduledTask
from upkeep.engine.scheduler import Scheduler
from upkeep.engine.pool import EmbeddedExecutor
from benchmarks._tasks import spread_tasks

def main():
    workdir, tasks, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    settings = Settings(config=os.path.join(workdir, "upkeep.yaml"), worker_processes=4)
    store = Store(settings.resolved_database_url); store.upgrade()
    executor = EmbeddedExecutor(settings, store)
    executor.start()
    assert executor.wait_ready(60)  # as `upkeep serve` does: measure firing, not worker start-up
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    rows = spread_tasks(tasks, now)
    with store.write() as s:
        s.execute(sa.insert(ScheduledTask), rows)
    scheduler = Scheduler(store, settings)
    scheduler.start()
    begin = time.monotonic()
    rss_peak = 0
    me = psutil.Process()
    while time.monotonic() - begin < seconds:
        time.sleep(1)
        rss_peak = max(rss_peak, me.memory_info().rss)
    workers_rss = sum(c.memory_info().rss for c in me.children(recursive=True))
    # RSS counts pages the workers share with their fork server once per process; PSS splits them
    tree_pss = sum(p.memory_full_info().pss for p in [me, *me.children(recursive=True)])
    scheduler.stop(); executor.stop()
    with store.read() as s:
        rows = s.execute(sa.select(Run.scheduled_for, Run.started_at, Run.status, Run.event_count)
                         .where(Run.scheduled_for.is_not(None))).all()
    lat = sorted((b - a).total_seconds() * 1000 for a, b, st, _ in rows if b is not None)
    skipped = sum(1 for r in rows if r[2] == "skipped")
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [0] * 99
    print(json.dumps({"fired": len(lat), "skipped": skipped, "p50": q[49], "p99": q[98], "max": lat[-1] if lat else 0,
                      "events": sum(r[3] for r in rows), "rss_mb": rss_peak / 2**20,
                      "workers_rss_mb": workers_rss / 2**20, "tree_pss_mb": tree_pss / 2**20}))

if __name__ == "__main__":
    main()
"""

APSCHEDULER_LATENCY = """
import json, os, sys, time, statistics, psutil
from datetime import datetime, timedelta, timezone
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.events import EVENT_JOB_SUBMITTED

def noop():
    pass

def main():
    workdir, tasks, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    lat = []
    def on_submit(event):
        now = datetime.now(timezone.utc)
        for t in event.scheduled_run_times:
            lat.append((now - t).total_seconds() * 1000)
    sched = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{workdir}/aps.db")},
                                executors={"default": {"type": "threadpool", "max_workers": 10}},
                                job_defaults={"misfire_grace_time": 60, "coalesce": True}, timezone="UTC")
    sched.add_listener(on_submit, EVENT_JOB_SUBMITTED)
    sched.start(paused=True)
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=5)
    for i in range(tasks):
        sched.add_job(noop, "interval", seconds=60, id=f"t{i}",
                      start_date=start + timedelta(milliseconds=i * 60000 / tasks))
    sched.resume()
    begin = time.monotonic(); rss = 0
    while time.monotonic() - begin < seconds:
        time.sleep(1); rss = max(rss, psutil.Process().memory_info().rss)
    sched.shutdown(wait=True)
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [0] * 99
    print(json.dumps({"fired": len(lat), "p50": q[49], "p99": q[98], "max": lat[-1] if lat else 0,
                      "rss_mb": rss / 2**20}))

if __name__ == "__main__":
    main()
"""

THROUGHPUT = """
import json, os, sys, time
from datetime import UTC, datetime
import sqlalchemy as sa
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import Run
from upkeep.engine.pool import EmbeddedExecutor
from upkeep.engine.wakeup import broadcast

def main():
    workdir, count, url, warm = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "warm"
    # cold: default settings, workers start on demand when the runs arrive (their start is timed);
    # warm: the four workers started and ready before the clock starts (the engine's own rate)
    settings = Settings(config=os.path.join(workdir, "upkeep.yaml"), database_url=url or None, worker_processes=4,
                        workers_warm=4 if warm else 0)
    store = Store(settings.resolved_database_url); store.upgrade()
    executor = EmbeddedExecutor(settings, store); executor.start()
    if warm and not executor.wait_ready(120):
        raise SystemExit("workers did not start in 120 s")
    now = datetime.now(UTC)
    with store.write() as s:
        s.execute(sa.insert(Run), [dict(task_type="debug.noop", origin="manual", status="pending", due_at=now,
                                        created_at=now, config={}, locks=[], event_count=0) for _ in range(count)])
    begin = time.monotonic()
    broadcast(store, settings.resolved_data_dir)
    while True:
        with store.read() as s:
            active = Run.status.in_(("pending", "submitted", "running"))
            left = s.execute(sa.select(sa.func.count(Run.id)).where(active)).scalar()
        if left == 0:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - begin
    executor.stop()
    with store.read() as s:
        done = s.execute(sa.select(sa.func.count(Run.id)).where(Run.status == "completed")).scalar()
        events = s.execute(sa.text("select count(*) from run_events")).scalar()
    print(json.dumps({"runs": done, "seconds": elapsed, "per_second": done / elapsed, "events": events}))

if __name__ == "__main__":
    main()
"""


def main() -> None:
    import json

    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        print(f"scheduler fire latency: {TASKS} tasks @every 60s, {SECONDS:.0f}s of wall time each", flush=True)
        ours = json.loads(_child(UPKEEP_LATENCY, workdir, str(TASKS), str(SECONDS)))
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        aps = json.loads(_child(APSCHEDULER_LATENCY, workdir, str(TASKS), str(SECONDS)))
    print(
        f"  upkeep (SQLite, full history): fired {ours['fired']} (skipped {ours['skipped']}), "
        f"p50 {ours['p50']:.1f} ms, p99 {ours['p99']:.1f} ms, max {ours['max']:.1f} ms, "
        f"{ours['events']} events; RSS {ours['rss_mb']:.0f} MB (+ workers {ours['workers_rss_mb']:.0f} MB; "
        f"PSS of all processes {ours['tree_pss_mb']:.0f} MB)"
    )
    print(
        f"  APScheduler 3.11 (SQLite job store, no history): fired {aps['fired']}, p50 {aps['p50']:.1f} ms, "
        f"p99 {aps['p99']:.1f} ms, max {aps['max']:.1f} ms; RSS {aps['rss_mb']:.0f} MB"
    )
    print(
        f"  p99 ratio upkeep/APScheduler: {ours['p99'] / max(aps['p99'], 0.001):.4f}x "
        f"(target: upkeep p99 <= 50 ms, RSS <= 200 MB)"
    )
    print(f"no-op run throughput, {RUNS} runs, 4 worker processes, full records:", flush=True)
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        sqlite = json.loads(_child(THROUGHPUT, workdir, str(RUNS), "", "warm"))
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        cold = json.loads(_child(THROUGHPUT, workdir, str(RUNS), "", "cold"))
    print(
        f"  SQLite, workers ready: {sqlite['per_second']:.0f} runs/s ({sqlite['runs']} runs, {sqlite['events']} events "
        f"in {sqlite['seconds']:.1f}s; target >= 300 runs/s)"
    )
    print(
        f"  SQLite, default settings (workers start on demand, their start timed): {cold['per_second']:.0f} runs/s "
        f"({cold['runs']} runs in {cold['seconds']:.1f}s)"
    )
    pg_url = os.environ.get("UPKEEP_BENCH_PG_URL") or _throwaway_pg_url()
    if pg_url:
        with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
            pg = json.loads(_child(THROUGHPUT, workdir, str(RUNS), pg_url, "warm"))
        print(f"  PostgreSQL, workers ready: {pg['per_second']:.0f} runs/s ({pg['runs']} runs in {pg['seconds']:.1f}s)")
        _stop_pg()


_PG = None


def _throwaway_pg_url() -> str | None:
    global _PG
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from support.servers import start_postgres

        _PG = start_postgres()
        return _PG.url(_PG.create_database("bench"))
    except BaseException as exc:  # pytest.skip raises BaseException subclasses
        print(f"  PostgreSQL: not measured ({exc})")
        return None


def _stop_pg() -> None:
    if _PG is not None:
        _PG.remove()
