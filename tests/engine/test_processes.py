"""Real `upkeep scheduler`, `upkeep worker` and `upkeep serve` processes, killed with SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from support.servers import free_port, wait_for_port
from upkeep.app import Upkeep
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import ACTIVE_STATUSES, Run

pytestmark = [pytest.mark.slow]


class Procs:
    def __init__(self, tmp_path: Path, env: dict[str, str]):
        self.tmp_path = tmp_path
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "upkeep.cli.main", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp_path.glob("*.log"))


def alive(process: psutil.Process) -> bool:
    """Running code: a zombie (killed, not yet reaped by init) is dead."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def active_count(store: Store) -> int:
    with store.read() as s:
        return s.execute(sa.select(sa.func.count(Run.id)).where(Run.status.in_(ACTIVE_STATUSES))).scalar()


def test_three_schedulers_one_killed_every_slot_exactly_once(tmp_path, pg_database):
    settings = Settings(config=tmp_path / "upkeep.yaml", database_url=pg_database)
    store = Store(pg_database)
    store.upgrade()
    service = Upkeep(settings, store)
    names = [f"t{i:02d}" for i in range(50)]
    for name in names:
        service.create_task({"name": name, "type": "debug.noop", "schedule": "@every 1s"}, actor="test")
    procs = Procs(
        tmp_path,
        {
            "UPKEEP_CONFIG": str(tmp_path / "upkeep.yaml"),
            "UPKEEP_DATABASE_URL": pg_database,
            "UPKEEP_HEARTBEAT_SECONDS": "1",
            "UPKEEP_WORKER_PROCESSES": "2",
        },
    )
    try:
        for i in range(2):
            procs.start(f"worker{i}", "worker", "--concurrency", "2")
        for i in range(3):
            procs.start(f"scheduler{i}", "scheduler")
        time.sleep(15)
        procs.kill("scheduler0")  # kill -9 half-way
        time.sleep(15)
        until = datetime.now(UTC)
        for name in ("scheduler1", "scheduler2"):
            procs.procs.pop(name).terminate()
        deadline = time.monotonic() + 60
        while active_count(store) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert active_count(store) == 0, "runs left non-terminal\n" + procs.logs()
        by_task: dict[str, list[datetime]] = defaultdict(list)
        with store.read() as s:
            for name, slot in s.execute(sa.select(Run.task_name, Run.scheduled_for).where(Run.origin == "scheduled")):
                by_task[name].append(slot)
        assert sorted(by_task) == names
        for name in names:
            slots = sorted(by_task[name])
            assert len(slots) == len(set(slots)), f"{name}: a slot has two runs"
            gaps = [(a, b) for a, b in zip(slots, slots[1:], strict=False) if (b - a) != timedelta(seconds=1)]
            assert gaps == [], f"{name}: slots missing between {gaps[:3]}"
            assert slots[-1] >= until - timedelta(seconds=3)
    finally:
        procs.stop_all()
        store.dispose()


def test_serve_killed_during_a_run_recovers_it_on_restart(tmp_path):
    marker = f"{20 + (uuid.uuid4().int % 1000) / 1000:.3f}"
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store, trusted=True)
    service.create_task(
        {
            "name": "long-shell",
            "type": "shell.run",
            "max_retries": 1,
            "retry_backoff_seconds": 0,
            "config": {"command": ["sh", "-c", f"sleep {marker}; echo done"]},
        },
        actor="test",
        managed_by="file",
    )
    port = free_port()
    procs = Procs(tmp_path, {"UPKEEP_CONFIG": str(tmp_path / "upkeep.yaml"), "UPKEEP_HEARTBEAT_SECONDS": "1"})

    def sleepers() -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter(["cmdline"]):
            if (p.info["cmdline"] or [])[:2] == ["sleep", marker]:
                out.append(p)
        return out

    try:
        procs.start("serve1", "serve", "--port", str(port))
        wait_for_port(port, 60)
        first = service.trigger("long-shell", actor="test")["id"]
        deadline = time.monotonic() + 30
        while not sleepers() and time.monotonic() < deadline:
            time.sleep(0.1)
        (leftover,) = sleepers()
        procs.kill("serve1")  # kill -9 of upkeep serve during the run
        time.sleep(0.5)
        assert alive(leftover), "the test needs the child to outlive its server"
        procs.start("serve2", "serve", "--port", str(port))
        deadline = time.monotonic() + 60
        second = None
        while time.monotonic() < deadline:
            retries = [r for r in service.list_runs(task="long-shell")[0] if r["retry_of"] == first]
            if retries and retries[0]["status"] in ("running", "completed"):
                second = retries[0]
                break
            time.sleep(0.1)
        assert second is not None, procs.logs()
        assert not alive(leftover), "the dead attempt's child was still alive when attempt 2 started"
        assert service.get_run(first)["status"] == "failed"
        deadline = time.monotonic() + 60
        while service.get_run(second["id"])["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert service.get_run(second["id"])["status"] == "completed", procs.logs()
        assert second["attempt"] == 2
        assert active_count(store) == 0
    finally:
        procs.stop_all()
        for p in psutil.process_iter(["cmdline"]):
            if (p.info["cmdline"] or [])[:2] == ["sleep", marker]:
                p.kill()
        store.dispose()
