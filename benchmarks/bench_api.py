"""API and UI at scale: 10,000 tasks and 1,000,000 runs in a SQLite store.

Targets (issues 3 and 17): task list page p95 < 50 ms (a page of 50, with each task's last 20
outcomes), dashboard render with its charts < 300 ms median, /backups and /targets < 200 ms median,
a run event reaches the SSE stream within 200 ms of being written.

Baselines measured in the same run:
- task list: the bare SQL query for the same page of 50 rows (the floor any page is built on), and
  the whole task views the API lists against the columns the page reads (``app.pages.task_rows``);
- dashboard: the service layer's ``stats()`` (whose overdue check asks one query per task), against
  the set-based ``Queries.dashboard()`` the page uses;
- SSE: the stream's poll interval (the latency floor of a polling stream).

The store is generated once into /tmp/upkeep-bench-api (kept between runs: generating takes a
minute; delete the directory to regenerate) with SQLAlchemy Core executemany in big batches.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import shutil
import statistics
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from benchmarks._goals import check

BENCH_DIR = Path(os.environ.get("UPKEEP_BENCH_API_DIR", "/tmp/upkeep-bench-api"))
TASKS = 10_000
RUNS = 1_000_000
BATCH = 50_000
DAYS = 90
TYPES = ["debug.noop", "debug.sleep", "debug.fail"]


def _generate(db_path: Path) -> None:
    from upkeep.store.db import Store
    from upkeep.store.models import Run, ScheduledTask

    store = Store(f"sqlite:///{db_path}")
    store.upgrade()
    rng = random.Random(42)
    now = datetime.now(UTC).replace(microsecond=0)
    tasks = []
    for i in range(TASKS):
        enabled = rng.random() < 0.9
        last_status = rng.choices(["completed", "failed", "timed_out", None], [90, 6, 1, 3])[0]
        tasks.append(
            {
                "id": i + 1,
                "name": f"task-{i:05d}",
                "description": "",
                "task_type": TYPES[i % len(TYPES)],
                "schedule": f"{i % 60} */{1 + i % 6} * * *",
                "timezone": "UTC",
                "enabled": enabled,
                "config": {},
                "tiers": ["daily"] if i % 10 == 0 else [],
                "concurrency": "forbid",
                "misfire": "skip",
                "misfire_grace_seconds": 60,
                "locks": [],
                "windows": [],
                "max_retries": 0,
                "retry_backoff_seconds": 30.0,
                "retry_backoff_max_seconds": 3600.0,
                "jitter_seconds": 0.0,
                "queue": "default",
                "notify": {},
                "managed_by": "api",
                "next_run_at": (now + timedelta(minutes=rng.randint(1, 360))) if enabled else None,
                "last_status": last_status,
                "last_outcome": "ok" if last_status == "completed" else None,
                "last_run_at": now - timedelta(minutes=rng.randint(1, 600)) if last_status else None,
                "consecutive_failures": 1 if last_status in ("failed", "timed_out") else 0,
                "created_at": now - timedelta(days=DAYS),
                "updated_at": now - timedelta(days=1),
            }
        )
    with store.write() as s:
        s.execute(sa.insert(ScheduledTask), tasks)
    statuses = ["completed", "failed", "timed_out", "cancelled"]
    weights = [92, 5, 1, 2]
    span = DAYS * 86400
    run_id = 0
    for start in range(0, RUNS, BATCH):
        rows = []
        for _ in range(min(BATCH, RUNS - start)):
            run_id += 1
            created = now - timedelta(seconds=span * (1 - run_id / RUNS))
            status = rng.choices(statuses, weights)[0]
            task_id = rng.randint(1, TASKS)
            rows.append(
                {
                    "id": run_id,
                    "task_id": task_id,
                    "task_name": f"task-{task_id - 1:05d}",
                    "task_type": TYPES[(task_id - 1) % len(TYPES)],
                    "origin": "scheduled",
                    "scheduled_for": created,
                    "due_at": created,
                    "status": status,
                    "outcome": rng.choices(["ok", "warning", "critical"], [90, 7, 3])[0]
                    if status == "completed"
                    else None,
                    "attempt": 1,
                    "config": {},
                    "dry_run": False,
                    "confirm": False,
                    "queue": "default",
                    "max_retries": 0,
                    "locks": [],
                    "created_at": created,
                    "started_at": created,
                    "finished_at": created + timedelta(seconds=rng.uniform(0.05, 30)),
                    "summary": "ok" if status == "completed" else None,
                    "error": "failing on purpose" if status == "failed" else None,
                    "event_count": 0,
                }
            )
        with store.write() as s:
            s.execute(sa.insert(Run), rows)
    store.dispose()


SOURCES, BACKUPS_PER_SOURCE, SERVICES = 20, 60, 200


def _seed_backups_and_targets(store) -> None:
    """A backup catalog (20 sources x 60 backups, one a day) and an inventory of 200 checked
    services, so /backups and /targets show real amounts."""
    from upkeep.store.models import Record
    from upkeep.store.records import CONFIG_DOMAIN, Records

    now = datetime.now(UTC).replace(microsecond=0)
    with store.write() as s:  # the catalog as of this run only
        s.execute(sa.delete(Record).where(Record.domain == "backup"))
    catalog = {}
    for src in range(SOURCES):
        for n in range(BACKUPS_PER_SOURCE):
            made = now - timedelta(hours=24 * n + src)
            backup_id = made.strftime("%Y%m%dT%H%M%SZ")
            catalog[f"db{src:02d}/{backup_id}"] = {
                "id": backup_id,
                "source": f"db{src:02d}",
                "type": "postgres",
                "created_at": made.isoformat(),
                "status": "verified" if n % 3 else "created",
                "verified_at": made.isoformat(),
                "path": f"/srv/backups/db{src:02d}/{backup_id}.dump",
                "manifest": {"size": 10_000_000 + n * 1000, "sha256": "0" * 64},
            }
    Records(store, "backup").put_many(catalog)
    services = {f"svc{i:03d}": {"type": "tcp", "port": 1000 + i} for i in range(SERVICES)}
    Records(store, CONFIG_DOMAIN).put("targets", {"services": services})
    checks = {
        f"services.svc{i:03d}": {
            "status": "critical" if i % 17 == 0 else "ok",
            "detail": "connect refused" if i % 17 == 0 else "connected in 1 ms",
            "checked_at": now.isoformat(),
            "since": (now - timedelta(hours=i)).isoformat(),
            "task": "health",
            "run_id": i + 1,
        }
        for i in range(SERVICES)
    }
    Records(store, "_targets").put_many(checks)


def ensure_store() -> Path:
    db_path = BENCH_DIR / "upkeep.db"
    marker = BENCH_DIR / f"ready-{TASKS}-{RUNS}"
    if not marker.exists():
        shutil.rmtree(BENCH_DIR, ignore_errors=True)
        BENCH_DIR.mkdir(parents=True)
        started = time.perf_counter()
        _generate(db_path)
        marker.write_text("ok")
        print(f"generated {TASKS} tasks and {RUNS} runs in {time.perf_counter() - started:.1f} s")
    else:
        from upkeep.store.db import Store

        store = Store(f"sqlite:///{db_path}")
        store.upgrade()  # picks up new migrations (indexes) on a reused store
        store.dispose()
    return db_path


def _times(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def main() -> None:
    warnings.simplefilter("ignore")
    from upkeep.api.app import create_app
    from upkeep.auth import create_key
    from upkeep.settings import Settings
    from upkeep.store.db import Store

    db_path = ensure_store()
    work = Path(tempfile.mkdtemp(prefix="upkeep-bench-api-"))
    store = Store(f"sqlite:///{db_path}")
    _seed_backups_and_targets(store)
    try:
        settings = Settings(config=work / "upkeep.yaml", database_url=store.url)
        app = create_app(settings, store=store)
        _view, token = create_key(store, name=f"bench-{os.getpid()}-{time.time_ns()}", role="admin")
        headers = {"Authorization": f"Bearer {token}"}
        with serving(app) as base, httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            _measure_pages(client, store, app)
            _sse_latency(app, store, base, headers)
    finally:
        store.dispose()
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def serving(app):
    """The app behind a real uvicorn server on a free port (what a browser or curl sees)."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


def _measure_pages(client, store, app) -> None:
    from upkeep.app.pages import task_rows
    from upkeep.store.models import ScheduledTask

    rng = random.Random(1)
    offsets = [rng.randrange(0, TASKS - 50) for _ in range(200)]

    def bare(i: int) -> None:
        with store.read() as s:
            s.execute(sa.select(ScheduledTask).order_by(ScheduledTask.name).offset(offsets[i]).limit(50)).all()

    def get(path: str) -> None:
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)

    def page(i: int) -> None:
        get(f"/tasks?offset={offsets[i]}")

    def api_page(i: int) -> None:
        get(f"/api/v1/scheduled-tasks?limit=50&offset={offsets[i]}")

    def health(_i: int) -> None:
        get("/healthz")

    for warm in (bare, page, api_page, health):
        _times(warm, 5)
    bare_ms, health_ms = _times(bare, 100), _times(health, 100)
    page_ms, api_ms = _times(page, 100), _times(api_page, 100)
    verdict = check("task list page p95 (HTML, 10k tasks)", f"{p95(page_ms):.1f} ms", "< 50 ms", p95(page_ms) < 50)
    print(
        f"task list page (HTML, 50 of {TASKS}): p50 {statistics.median(page_ms):.1f} ms, "
        f"p95 {p95(page_ms):.1f} ms (target < 50 ms: {verdict})"
    )
    print(f"task list API (JSON, 50):           p50 {statistics.median(api_ms):.1f} ms, p95 {p95(api_ms):.1f} ms")
    print(
        f"baselines: bare SQL page of 50 p95 {p95(bare_ms):.2f} ms, GET /healthz p95 {p95(health_ms):.2f} ms; "
        f"page/bare p95 ratio {p95(page_ms) / p95(bare_ms):.1f}x"
    )

    def rows(i: int) -> None:  # what the page reads: the columns it shows
        task_rows(store, app.state.upkeep.registry, limit=50, offset=offsets[i])

    def views(i: int) -> None:  # what it read before: whole tasks, as the API shows them
        app.state.upkeep.list_tasks(limit=50, offset=offsets[i])

    rows_ms, views_ms = _times(rows, 100), _times(views, 100)
    print(
        f"task list rows: the page's columns p95 {p95(rows_ms):.1f} ms, baseline whole task views "
        f"p95 {p95(views_ms):.1f} ms ({p95(views_ms) / p95(rows_ms):.1f}x)"
    )

    def dashboard(_i: int) -> None:
        get("/")

    def service_stats(_i: int) -> None:
        from upkeep.app import Upkeep
        from upkeep.settings import Settings

        Upkeep(Settings(), store).stats(days=7)

    [first_ms] = _times(dashboard, 1)  # counts 30 days of runs for the chart; later views reuse past days
    dash_ms = _times(dashboard, 10)
    stats_ms = _times(service_stats, 3)
    dash = statistics.median(dash_ms)
    verdict = check("dashboard median (1M runs)", f"{dash:.0f} ms", "< 300 ms", dash < 300)
    print(
        f"dashboard render ({RUNS} runs):        median {dash:.0f} ms, "
        f"max {max(dash_ms):.0f} ms, first view {first_ms:.0f} ms (target < 300 ms median: {verdict})"
    )
    print(
        f"baseline service stats() (per-task overdue queries): median {statistics.median(stats_ms):.0f} ms; "
        f"ratio {statistics.median(stats_ms) / statistics.median(dash_ms):.1f}x slower than the page"
    )
    for path in ("/backups", "/targets"):
        _times(lambda _i, path=path: get(path), 2)
        page_ms = _times(lambda _i, path=path: get(path), 20)
        median = statistics.median(page_ms)
        verdict = check(f"{path} page median", f"{median:.1f} ms", "< 200 ms", median < 200)
        print(
            f"{path} page:                       median {median:.1f} ms, "
            f"p95 {p95(page_ms):.1f} ms (target < 200 ms median: {verdict}; GET /healthz p95 {p95(health_ms):.2f} ms)"
        )


def _sse_latency(app, store, base: str, headers: dict) -> None:
    from upkeep.api import sse
    from upkeep.engine import lifecycle as run_ops
    from upkeep.engine.lifecycle import append_event

    svc = app.state.upkeep
    run = svc.trigger("task-00000", actor="bench")
    run_ops.claim(store, run["id"], run_ops.WorkerIdentity.current())
    arrivals: queue.Queue = queue.Queue()

    def read() -> None:
        url = f"{base}/api/v1/runs/{run['id']}/events/stream"
        with httpx.Client(timeout=30) as c, c.stream("GET", url, headers=headers) as response:
            for line in response.iter_lines():
                if line.startswith("id:"):
                    arrivals.put((int(line[3:]), time.perf_counter()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    latencies = []
    for i in range(30):
        written = time.perf_counter()
        with store.write() as s:
            seq = append_event(s, run["id"], "info", "bench", f"event {i}", None)
        while True:
            got, at = arrivals.get(timeout=5)
            if got == seq:
                break
        latencies.append((at - written) * 1000)
        time.sleep(random.uniform(0.01, 0.12))
    run_ops.finish(store, run["id"], "completed", outcome="ok")
    reader.join(5)
    verdict = check("SSE event latency, max of 30", f"{max(latencies):.0f} ms", "< 200 ms", max(latencies) < 200)
    print(
        f"SSE event latency (write -> client): median {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms (target < 200 ms: {verdict}); "
        f"baseline poll interval {sse.POLL_SECONDS * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
