"""Scheduler fire latency and run throughput (issues 2 and 18), against APScheduler 3.11 in the same run,
upkeep with its default settings.

1. ``upkeep serve`` as a user starts it, in a directory made by ``upkeep init`` whose store holds
   10,000 enabled tasks ``@every 60s`` with slots spread over the minute, a no-op handler, SQLite
   with the full run and event history kept: p50/p99 fire latency (started - scheduled, read from
   the store afterwards) and the PSS of the daemon's process tree, sampled from outside it.
   APScheduler 3.11 with its SQLite job store and the same 10,000 interval jobs: p50/p99 latency
   (submitted - scheduled) and RSS.
2. No-op runs with full records, default settings (workers start on demand, their start timed):
   runs/s on SQLite and PostgreSQL (UPKEEP_BENCH_PG_URL, or a throwaway cluster).

Environment: UPKEEP_BENCH_TASKS (10000), UPKEEP_BENCH_SECONDS (75), UPKEEP_BENCH_RUNS (3000),
UPKEEP_BENCH_LATENCY_CSV (a file: each fired run's slot, seconds after the first, and its latency in
ms, to see when the slow ones came).
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.bench_startup import UPKEEP, _env, _free_port, _tree_pss, _wait_listening, stop_daemon

TASKS = int(os.environ.get("UPKEEP_BENCH_TASKS", "10000"))
SECONDS = float(os.environ.get("UPKEEP_BENCH_SECONDS", "75"))
RUNS = int(os.environ.get("UPKEEP_BENCH_RUNS", "3000"))
ROOT = Path(__file__).resolve().parent.parent
# the first slot comes this long after the tasks are written: ``upkeep serve`` starts (and applies
# upkeep.yaml, recovers, starts its parts) before it
LEAD_SECONDS = 30.0


def _child(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout.strip().splitlines()[-1]


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max of ``values`` (zeros when there are too few)."""
    if len(values) <= 100:
        return 0.0, 0.0, max(values, default=0.0)
    q = statistics.quantiles(values, n=100)
    return q[49], q[98], max(values)


def _write_tasks(workdir: Path, first: datetime) -> None:
    import sqlalchemy as sa

    from benchmarks._tasks import spread_tasks
    from upkeep.settings import Settings
    from upkeep.store.db import Store
    from upkeep.store.models import ScheduledTask

    store = Store(Settings(config=workdir / "upkeep.yaml").resolved_database_url)
    with store.write() as s:
        s.execute(sa.insert(ScheduledTask), spread_tasks(TASKS, first))
    store.dispose()


def _fired(workdir: Path, first: datetime) -> dict:
    """Fire latencies of the runs of slots in the measured span, from the store."""
    import sqlalchemy as sa

    from upkeep.settings import Settings
    from upkeep.store.db import Store
    from upkeep.store.models import Run

    store = Store(Settings(config=workdir / "upkeep.yaml").resolved_database_url)
    span = (Run.scheduled_for >= first) & (Run.scheduled_for < first + timedelta(seconds=SECONDS))
    with store.read() as s:
        rows = s.execute(sa.select(Run.scheduled_for, Run.started_at, Run.status).where(span)).all()
        events = s.execute(sa.text("select count(*) from run_events")).scalar()
    store.dispose()
    fired = sorted(((a - first).total_seconds(), (b - a).total_seconds() * 1000) for a, b, _ in rows if b is not None)
    if os.environ.get("UPKEEP_BENCH_LATENCY_CSV"):
        with open(os.environ["UPKEEP_BENCH_LATENCY_CSV"], "w", newline="") as f:
            csv.writer(f).writerows((f"{at:.3f}", f"{ms:.1f}") for at, ms in fired)
    p50, p99, top = _quantiles(sorted(ms for _, ms in fired))
    return {
        "slots": len(rows),
        "fired": len(fired),
        "skipped": sum(1 for r in rows if r.status == "skipped"),
        "p50": p50,
        "p99": p99,
        "max": top,
        "events": events,
    }


def serve_latency(workdir: Path) -> dict:
    """``upkeep serve`` with default settings over 10,000 tasks: fire latency from the store."""
    env = _env(workdir)
    subprocess.run([UPKEEP, "init"], env=env, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD_SECONDS)
    _write_tasks(workdir, first)
    port = _free_port()
    with open(workdir / "serve.log", "w") as log:
        serve = subprocess.Popen([UPKEEP, "serve", "--port", str(port)], env=env, cwd=workdir, stdout=log, stderr=log)
        try:
            _wait_listening(port, serve)
            listening = datetime.now(UTC)
            end = first + timedelta(seconds=SECONDS)
            pss_peak, processes = 0.0, 0
            while datetime.now(UTC) < end + timedelta(seconds=1):  # the last slots' runs start
                time.sleep(1)
                pss, count = _tree_pss(serve.pid)
                if pss > pss_peak:
                    pss_peak, processes = pss, count
        finally:
            stop_daemon(serve)
    out = _fired(workdir, first)
    out.update(pss_mb=pss_peak, processes=processes, late_start=max(0.0, (listening - first).total_seconds()))
    return out


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
    workdir, count, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # default settings: the workers start on demand when the runs arrive, and their start is timed
    settings = Settings(config=os.path.join(workdir, "upkeep.yaml"), database_url=url or None)
    store = Store(settings.resolved_database_url); store.upgrade()
    executor = EmbeddedExecutor(settings, store); executor.start()
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

    from benchmarks._goals import check
    from benchmarks._installed import compile_upkeep

    print(compile_upkeep())
    print(f"scheduler fire latency: {TASKS} tasks @every 60s, {SECONDS:.0f}s of slots each", flush=True)
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        ours = serve_latency(Path(workdir))
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        aps = json.loads(_child(APSCHEDULER_LATENCY, workdir, str(TASKS), str(SECONDS)))
    if ours["late_start"]:
        print(f"  (upkeep serve listened {ours['late_start']:.1f} s after the first slot: raise LEAD_SECONDS)")
    print(
        f"  upkeep serve, default settings (SQLite, full history): fired {ours['fired']} of {ours['slots']} slots "
        f"(skipped {ours['skipped']}), p50 {ours['p50']:.1f} ms, p99 {ours['p99']:.1f} ms, max {ours['max']:.1f} ms, "
        f"{ours['events']} events; peak PSS {ours['pss_mb']:.0f} MB over {ours['processes']} processes"
    )
    print(
        f"  APScheduler 3.11 (SQLite job store, no history): fired {aps['fired']}, p50 {aps['p50']:.1f} ms, "
        f"p99 {aps['p99']:.1f} ms, max {aps['max']:.1f} ms; RSS {aps['rss_mb']:.0f} MB"
    )
    what = f"upkeep serve p99 fire latency, {TASKS} tasks, defaults"
    verdict = check(what, f"{ours['p99']:.1f} ms", "<= 10 ms", ours["p99"] <= 10)
    print(
        f"  p99 ratio upkeep/APScheduler: {ours['p99'] / max(aps['p99'], 0.001):.4f}x "
        f"(goal: upkeep p99 <= 10 ms: {verdict})"
    )
    print(f"no-op run throughput, {RUNS} runs, default settings (workers start on demand), full records:", flush=True)
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
        sqlite = json.loads(_child(THROUGHPUT, workdir, str(RUNS), ""))
    rate = sqlite["per_second"]
    verdict = check("no-op runs/s, SQLite, defaults", f"{rate:.0f} runs/s", ">= 300 runs/s", rate >= 300)
    print(
        f"  SQLite: {rate:.0f} runs/s ({sqlite['runs']} runs, {sqlite['events']} events "
        f"in {sqlite['seconds']:.1f}s; target >= 300 runs/s: {verdict})"
    )
    pg_url = os.environ.get("UPKEEP_BENCH_PG_URL") or _throwaway_pg_url()
    if pg_url:
        with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
            pg = json.loads(_child(THROUGHPUT, workdir, str(RUNS), pg_url))
        print(f"  PostgreSQL: {pg['per_second']:.0f} runs/s ({pg['runs']} runs in {pg['seconds']:.1f}s)")
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
