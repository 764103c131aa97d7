"""Distributed mode (issue 6): no-op run throughput with 3 Celery workers, and p99 fire latency with
10,000 tasks on PostgreSQL, next to the embedded mode's figures measured in the same run.

Everything runs on throwaway servers started here (PostgreSQL via initdb/pg_ctl, redis-server).
Environment: UPKEEP_BENCH_RUNS (2000), UPKEEP_BENCH_TASKS (10000), UPKEEP_BENCH_SECONDS (70).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks._goals import check

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("UPKEEP_BENCH_RUNS", "2000"))
TASKS = int(os.environ.get("UPKEEP_BENCH_TASKS", "10000"))
SECONDS = float(os.environ.get("UPKEEP_BENCH_SECONDS", "70"))
WARM_UP = 20  # seconds of slots left out of the steady-state figure (printed next to the whole window's)


def _servers():
    sys.path.insert(0, str(ROOT / "tests"))
    from support.servers import start_postgres, start_redis

    return start_postgres(), start_redis()


def _env(workdir: str, database_url: str, broker_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path]),
        "UPKEEP_CONFIG": str(Path(workdir) / "upkeep.yaml"),
        "UPKEEP_DATABASE_URL": database_url,
    }
    if broker_url:
        env.update(UPKEEP_EXECUTOR="celery", UPKEEP_BROKER_URL=broker_url)
    return env


def _start(env: dict[str, str], workdir: str, name: str, *args: str) -> subprocess.Popen:
    log = open(Path(workdir) / f"{name}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "upkeep.cli.main", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _check_running(procs: list[subprocess.Popen], workdir: str) -> None:
    """Fail at once, with the reason, when a process of the benchmark has exited: the runs it
    waits for would never finish."""
    for proc in procs:
        if proc.poll() is not None:
            _stop(procs)
            logs = "".join(p.read_text()[-1000:] for p in Path(workdir).glob("*.log"))
            raise RuntimeError(f"{' '.join(proc.args[3:])} exited with {proc.returncode}: {logs}")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _throughput(store, env, workdir, *, celery: bool) -> float:
    import sqlalchemy as sa

    from upkeep.engine.wakeup import broadcast
    from upkeep.settings import Settings
    from upkeep.store.models import Run

    procs = [_start(env, workdir, "scheduler", "scheduler")]
    workers = ["--concurrency", "1"] if celery else ["--concurrency", "3"]
    procs += [_start(env, workdir, f"worker{i}", "worker", *workers) for i in range(3 if celery else 1)]
    time.sleep(8)
    _check_running(procs, workdir)
    now = datetime.now(UTC)
    with store.write() as s:
        s.execute(
            sa.insert(Run),
            [
                dict(
                    task_type="debug.noop",
                    origin="manual",
                    status="pending",
                    due_at=now,
                    created_at=now,
                    config={},
                    locks=[],
                    event_count=0,
                )
                for _ in range(RUNS)
            ],
        )
    begin = time.monotonic()
    broadcast(store, Settings(config=Path(workdir) / "upkeep.yaml").resolved_data_dir)
    while True:
        with store.read() as s:
            left = s.execute(
                sa.select(sa.func.count(Run.id)).where(Run.status.in_(("pending", "submitted", "running")))
            ).scalar()
        if left == 0 or time.monotonic() - begin > 600:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - begin
    _stop(procs)
    return RUNS / elapsed


BARE_CELERY_APP = """
import redis
from celery import Celery

app = Celery("bare", broker="{broker}")
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True,
                worker_hijack_root_logger=False, worker_send_task_events=False)
counter = redis.Redis.from_url("{counter}")


@app.task(name="bare.noop")
def noop():
    counter.incr("done")
"""


def _bare_celery(broker_url: str, workdir: str) -> float:
    """The floor: tasks/s of a Celery task that only increments a Redis counter, with upkeep's
    Celery settings (acks_late, prefetch 1) and the same 3 single-process workers."""
    import redis as redis_lib

    counter = broker_url.rsplit("/", 1)[0] + "/14"
    Path(workdir, "bare_app.py").write_text(BARE_CELERY_APP.format(broker=broker_url, counter=counter))
    env = {**os.environ, "PYTHONPATH": workdir}
    argv = [sys.executable, "-m", "celery", "-A", "bare_app", "worker", "--pool=prefork", "--concurrency=1"]
    argv += ["--without-gossip", "--without-mingle", "--loglevel=WARNING"]
    log = open(Path(workdir) / "bare.log", "ab")  # noqa: SIM115
    procs = [
        subprocess.Popen([*argv, "-n", f"bare{i}@%h"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        for i in range(3)
    ]
    sys.path.insert(0, workdir)
    try:
        from bare_app import app

        done = redis_lib.Redis.from_url(counter)
        done.delete("done")
        time.sleep(8)
        begin = time.monotonic()
        for _ in range(RUNS):
            app.send_task("bare.noop")
        while int(done.get("done") or 0) < RUNS and time.monotonic() - begin < 300:
            time.sleep(0.02)
        return RUNS / (time.monotonic() - begin)
    finally:
        sys.path.remove(workdir)
        _stop(procs)


def _latency(store, env, workdir, *, celery: bool) -> dict:
    import sqlalchemy as sa

    from benchmarks._tasks import spread_tasks
    from upkeep.store.models import Run, ScheduledTask

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
    rows = spread_tasks(TASKS, start)
    with store.write() as s:
        s.execute(sa.insert(ScheduledTask), rows)
    procs = [_start(env, workdir, "scheduler", "scheduler")]
    procs += [_start(env, workdir, f"worker{i}", "worker", "--concurrency", "2") for i in range(3 if celery else 1)]
    time.sleep(15)
    _check_running(procs, workdir)
    time.sleep(SECONDS)
    _stop(procs)
    with store.read() as s:
        pairs = s.execute(
            sa.select(Run.scheduled_for, Run.started_at).where(Run.origin == "scheduled", Run.started_at.is_not(None))
        ).all()
    lat = sorted((b - a).total_seconds() * 1000 for a, b in pairs)
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [float("nan")] * 99
    steady_from = start + timedelta(seconds=WARM_UP)
    steady = [(b - a).total_seconds() * 1000 for a, b in pairs if a >= steady_from]
    qs = statistics.quantiles(steady, n=100) if len(steady) > 100 else [float("nan")] * 99
    return {"fired": len(lat), "p50": q[49], "p99": q[98], "steady_p99": qs[98]}


def main() -> None:
    from upkeep.store.db import Store

    pg, redis = _servers()
    try:
        results = {}
        for mode, celery in (("embedded on PostgreSQL", False), ("Celery over Redis, PostgreSQL", True)):
            for what in ("throughput", "latency"):
                database = pg.create_database()
                url = pg.url(database)
                store = Store(url)
                store.upgrade()
                with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
                    # upkeep refuses to start without a config file; an empty one adds no task
                    (Path(workdir) / "upkeep.yaml").write_text("# the benchmark's instance\n")
                    env = _env(workdir, url, redis.url if celery else None)
                    if what == "throughput":
                        results[(mode, what)] = _throughput(store, env, workdir, celery=celery)
                        print(f"{mode}: {results[(mode, what)]:.0f} no-op runs/s ({RUNS} runs)", flush=True)
                    else:
                        res = _latency(store, env, workdir, celery=celery)
                        results[(mode, what)] = res
                        verdict = check(
                            f"{mode}: p99 fire latency, {TASKS} tasks",
                            f"{res['p99']:.1f} ms",
                            "<= 100 ms",
                            res["p99"] <= 100,
                        )
                        print(
                            f"{mode}: {TASKS} tasks @every 60s: fired {res['fired']}, p50 {res['p50']:.1f} ms, "
                            f"p99 {res['p99']:.1f} ms (target p99 <= 100 ms: {verdict}); "
                            f"slots after the first {WARM_UP} s: "
                            f"p99 {res['steady_p99']:.1f} ms",
                            flush=True,
                        )
                store.dispose()
                pg.drop_database(database)
        emb, cel = (
            results[("embedded on PostgreSQL", "throughput")],
            results[("Celery over Redis, PostgreSQL", "throughput")],
        )
        print(f"throughput ratio Celery/embedded: {cel / emb:.2f}x")
        with tempfile.TemporaryDirectory(prefix="upkeep-bench-") as workdir:
            bare = _bare_celery(redis.url, workdir)
        print(
            f"baseline: bare Celery no-op task (no store), same settings and workers: {bare:.0f} tasks/s; "
            f"upkeep's Celery runs reach {cel / bare:.2f}x of it"
        )
    finally:
        redis.remove()
        pg.remove()
