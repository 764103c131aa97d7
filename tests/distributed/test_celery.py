"""Distributed mode on real brokers (Redis, RabbitMQ) and a throwaway PostgreSQL, with real
`upkeep scheduler` and `upkeep worker` processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.processes import UpkeepProcesses
from support.servers import start_postgres, start_rabbitmq, start_redis
from upkeep.app import Upkeep
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import ACTIVE_STATUSES, Run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]


@pytest.fixture(scope="module")
def rabbitmq():
    server = start_rabbitmq()
    yield server
    server.remove()


class Cluster(UpkeepProcesses):
    """Scheduler and worker processes sharing one store and one broker."""

    def __init__(self, tmp_path: Path, database_url: str, broker_url: str):
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "UPKEEP_CONFIG": str(tmp_path / "upkeep.yaml"),
            "UPKEEP_DATABASE_URL": database_url,
            "UPKEEP_EXECUTOR": "celery",
            "UPKEEP_BROKER_URL": broker_url,
            "UPKEEP_HEARTBEAT_SECONDS": "1",
            "UPKEEP_REQUEUE_SUBMITTED_AFTER_SECONDS": "8",
            "UPKEEP_SCHEDULER_MAX_SLEEP_SECONDS": "2",
        }
        self.settings = Settings(
            config=tmp_path / "upkeep.yaml", database_url=database_url, executor="celery", broker_url=broker_url
        )
        self.store = Store(database_url)
        self.store.upgrade()
        self.service = Upkeep(self.settings, self.store)
        super().__init__()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.store.dispose()

    def runs(self, **filters) -> list[Run]:
        with self.store.read() as s:
            query = sa.select(Run).order_by(Run.id)
            for key, value in filters.items():
                query = query.where(getattr(Run, key) == value)
            return list(s.execute(query).scalars())

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in self.tmp_path.glob("*.log"))
        active = [
            f"run {r.id} {r.origin} {r.status} due {r.due_at:%H:%M:%S.%f} submitted {r.submitted_at} by {r.worker}"
            for r in self.runs()
            if r.status in ("pending", "submitted", "running")
        ]
        raise AssertionError(f"timed out waiting for {what}; still active:\n" + "\n".join(active[:20]) + f"\n{logs}")

    def stop_firing(self, names: list[str]) -> datetime:
        """Disable the tasks (no new slots); schedulers keep dispatching and reaping the backlog."""
        until = datetime.now(UTC)
        for name in names:
            self.service.set_enabled(name, False, actor="test")
        return until

    def active(self) -> int:
        with self.store.read() as s:
            return s.execute(sa.select(sa.func.count(Run.id)).where(Run.status.in_(ACTIVE_STATUSES))).scalar()


@pytest.fixture
def pg_url(pg_database):
    return pg_database


def assert_every_slot_exactly_once(cluster: Cluster, names: list[str], until: datetime) -> None:
    by_task: dict[str, list[datetime]] = defaultdict(list)
    for run in cluster.runs(origin="scheduled"):
        by_task[run.task_name].append(run.scheduled_for)
    assert sorted(by_task) == sorted(names)
    for name in names:
        slots = sorted(by_task[name])
        assert len(slots) == len(set(slots)), f"{name}: a slot ran twice"
        steps = {(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)}
        assert steps == {1.0}, f"{name}: missing slots (steps {sorted(steps)[:5]})"
        assert slots[-1] >= until - timedelta(seconds=3), f"{name}: stopped firing at {slots[-1]}"
    assert cluster.active() == 0, "runs left non-terminal"


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_two_schedulers_three_workers_every_slot_exactly_once(broker, request, tmp_path, pg_url):
    server = request.getfixturevalue("redis_server" if broker == "redis" else "rabbitmq")
    cluster = Cluster(tmp_path, pg_url, server.url)
    names = [f"t{i:03d}" for i in range(100)]
    try:
        for name in names:
            cluster.service.create_task({"name": name, "type": "debug.noop", "schedule": "@every 1s"}, actor="test")
        for i in range(3):
            cluster.start(f"worker{i}", "worker", "--concurrency", "2")
        for i in range(2):
            cluster.start(f"scheduler{i}", "scheduler")
        time.sleep(30)
        until = cluster.stop_firing(names)
        cluster.wait_until(lambda: cluster.active() == 0, 90, "the backlog to drain")
        assert_every_slot_exactly_once(cluster, names, until)
        done = [r for r in cluster.runs(origin="scheduled") if r.status == "completed"]
        assert len(done) >= 200, f"only {len(done)} runs completed"  # most slots may be skipped (forbid) on 2 cores
        assert len({r.worker_pid for r in done}) >= 3, "the work was not shared between workers"
    finally:
        cluster.stop_all()


def test_a_killed_workers_run_is_recovered_by_heartbeat_and_retried(tmp_path, pg_url, redis_server):
    cluster = Cluster(tmp_path, pg_url, redis_server.url)
    try:
        cluster.service.create_task(
            {
                "name": "long",
                "type": "debug.sleep",
                "config": {"seconds": 6},
                "max_retries": 2,
                "retry_backoff_seconds": 1,
            },
            actor="test",
        )
        victim = cluster.start("victim", "worker", "--concurrency", "1")
        cluster.start("scheduler", "scheduler")
        first = cluster.service.trigger("long", actor="test")["id"]
        cluster.wait_until(lambda: cluster.service.get_run(first)["status"] == "running", 60, "the run to start")
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its pool processes, like a host crash
        victim.wait()
        cluster.procs.pop("victim")
        cluster.start("rescuer", "worker", "--concurrency", "1")
        cluster.wait_until(lambda: cluster.service.get_run(first)["status"] == "failed", 60, "the reaper")
        error = cluster.service.get_run(first)["error"]
        assert "heartbeat" in error or "gone" in error
        retry = [r for r in cluster.runs(task_name="long") if r.retry_of == first]
        assert len(retry) == 1
        cluster.wait_until(lambda: cluster.service.get_run(retry[0].id)["status"] == "completed", 60, "the retry")
        assert cluster.active() == 0
    finally:
        cluster.stop_all()


def test_broker_and_postgres_restarts_lose_and_duplicate_nothing(tmp_path):
    pg = start_postgres()
    redis = start_redis()
    cluster = Cluster(tmp_path, pg.url(pg.create_database("upkeep")), redis.url)
    names = [f"r{i:02d}" for i in range(20)]
    try:
        for name in names:
            cluster.service.create_task(
                {"name": name, "type": "debug.noop", "schedule": "@every 1s", "misfire_grace_seconds": 120},
                actor="test",
            )
        cluster.start("worker0", "worker", "--concurrency", "2")
        cluster.start("worker1", "worker", "--concurrency", "2")
        cluster.start("scheduler0", "scheduler")
        cluster.start("scheduler1", "scheduler")
        time.sleep(8)
        redis.restart()
        time.sleep(8)
        cluster.store.dispose()
        pg.restart()
        time.sleep(10)
        until = cluster.stop_firing(names)
        cluster.wait_until(lambda: cluster.active() == 0, 90, "the backlog to drain after the restarts")
        assert_every_slot_exactly_once(cluster, names, until)
        last = max(r.finished_at for r in cluster.runs(status="completed"))
        assert last > until - timedelta(seconds=5), "workers did not reconnect"
    finally:
        cluster.stop_all()
        redis.remove()
        pg.remove()


def test_a_run_routed_to_a_queue_runs_only_on_the_worker_consuming_it(tmp_path, pg_url, redis_server):
    cluster = Cluster(tmp_path, pg_url, redis_server.url)
    try:
        cluster.service.create_task({"name": "rotate-a", "type": "debug.noop", "queue": "host-a"}, actor="test")
        cluster.service.create_task({"name": "anywhere", "type": "debug.noop"}, actor="test")
        host_a = cluster.start("host-a", "worker", "--queues", "host-a", "--concurrency", "1")
        other = cluster.start("other", "worker", "--queues", "default", "--concurrency", "1")
        cluster.start("scheduler", "scheduler")
        ids = [cluster.service.trigger("rotate-a", actor="test")["id"] for _ in range(6)]
        ids += [cluster.service.trigger("anywhere", actor="test")["id"] for _ in range(6)]
        cluster.wait_until(lambda: cluster.active() == 0, 60, "all runs")
        runs_ = {r.id: r for r in cluster.runs()}
        import psutil

        a_pids = {p.pid for p in psutil.Process(host_a.pid).children(recursive=True)} | {host_a.pid}
        other_pids = {p.pid for p in psutil.Process(other.pid).children(recursive=True)} | {other.pid}
        for run_id in ids[:6]:
            assert runs_[run_id].status == "completed" and runs_[run_id].worker_pid in a_pids
        for run_id in ids[6:]:
            assert runs_[run_id].status == "completed" and runs_[run_id].worker_pid in other_pids
    finally:
        cluster.stop_all()


def test_a_celery_worker_that_dies_is_started_again(tmp_path, pg_url, redis_server):
    """Celery exits on some broker reconnect errors; ``upkeep worker`` starts a new one."""
    import psutil

    cluster = Cluster(tmp_path, pg_url, redis_server.url)
    try:
        cluster.service.create_task({"name": "noop", "type": "debug.noop"}, actor="test")
        worker = cluster.start("worker", "worker", "--concurrency", "1")
        cluster.start("scheduler", "scheduler")
        first = cluster.service.trigger("noop", actor="test")["id"]
        cluster.wait_until(lambda: cluster.active() == 0, 60, "the first run")

        def celery_mains() -> list[psutil.Process]:
            return [p for p in psutil.Process(worker.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]

        (dead,) = celery_mains()
        assert dead.children(), "the child of upkeep worker is Celery's main process, with its pool"
        dead_tree = {dead.pid} | {p.pid for p in dead.children(recursive=True)}
        dead.kill()
        second = cluster.service.trigger("noop", actor="test")["id"]
        cluster.wait_until(lambda: cluster.active() == 0, 60, "the run after the Celery worker died")
        by_id = {r.id: r for r in cluster.runs()}
        assert by_id[first].status == by_id[second].status == "completed"
        assert by_id[second].worker_pid not in dead_tree
        assert worker.poll() is None, "upkeep worker itself keeps running"
        assert [p.pid for p in celery_mains()] != [dead.pid]
    finally:
        cluster.stop_all()


def test_deadline_and_cancel_reach_runs_on_a_celery_worker(tmp_path, pg_url, redis_server):
    """A handler spinning past its deadline is killed; a cancel stops a polite handler at its next
    check and kills a busy one after the grace period; meanwhile the pool's one watcher thread
    keeps the busy run's heartbeat fresh, and the pool replaces the killed processes. Cancelling a
    run whose message waits on the broker revokes the message on the workers."""
    cluster = Cluster(tmp_path, pg_url, redis_server.url)
    cluster.env["UPKEEP_CANCEL_GRACE_SECONDS"] = "1"
    try:
        tasks = {
            "spin": {"type": "debug.sleep", "timeout_seconds": 2, "config": {"seconds": 60, "busy": True}},
            "polite": {"type": "debug.sleep", "config": {"seconds": 60}},
            "rude": {"type": "debug.sleep", "config": {"seconds": 60, "busy": True}},
            "after": {"type": "debug.noop"},
            "elsewhere": {"type": "debug.noop", "queue": "nobody-consumes-this"},
        }
        for name, spec in tasks.items():
            cluster.service.create_task({"name": name, **spec}, actor="test")
        cluster.start("worker", "worker", "--concurrency", "3")
        cluster.start("scheduler", "scheduler")
        spin, polite, rude = (cluster.service.trigger(name, actor="test")["id"] for name in ("spin", "polite", "rude"))

        def status(run_id: int) -> str:
            return cluster.service.get_run(run_id)["status"]

        cluster.wait_until(lambda: all(status(r) == "running" for r in (polite, rude)), 60, "the runs to start")
        first_beat = cluster.runs(id=rude)[0].heartbeat_at
        cluster.wait_until(lambda: status(spin) == "timed_out", 15, "the spinning run to time out")
        assert cluster.runs(id=rude)[0].heartbeat_at > first_beat, "no heartbeat while the busy run ran"
        timed_out = cluster.service.get_run(spin)
        assert "killed" in timed_out["error"] and timed_out["duration_seconds"] < 4.0

        cluster.service.cancel_run(polite, actor="test")
        cluster.service.cancel_run(rude, actor="test")
        cluster.wait_until(lambda: status(polite) != "running" and status(rude) != "running", 20, "the cancels")
        assert cluster.service.get_run(polite)["error"] == "cancelled on request"  # it checked and stopped
        killed = cluster.service.get_run(rude)
        assert killed["status"] == "cancelled" and "killed" in killed["error"]

        after = cluster.service.trigger("after", actor="test")["id"]
        cluster.wait_until(lambda: status(after) == "completed", 60, "a run after the kills")

        queued = cluster.service.trigger("elsewhere", actor="test")["id"]
        cluster.wait_until(lambda: status(queued) == "submitted", 30, "the run's message to be published")
        assert cluster.service.cancel_run(queued, actor="test")["status"] == "cancelled"
        log = tmp_path / "worker.log"
        cluster.wait_until(lambda: f"revoked: run-{queued}" in log.read_text(), 10, "the revoke to reach the worker")
        assert cluster.active() == 0
    finally:
        cluster.stop_all()
