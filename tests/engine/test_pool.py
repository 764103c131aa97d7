"""The embedded executor: killable worker processes, deadlines, cancels, locks, recovery."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from upkeep.app import Upkeep
from upkeep.engine.pool import EmbeddedExecutor
from upkeep.engine.reaper import Reaper
from upkeep.settings import Settings
from upkeep.store.db import Store


@pytest.fixture
def engine(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml", heartbeat_seconds=1, cancel_grace_seconds=2.5)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store, trusted=True)
    executor = EmbeddedExecutor(settings, store, size=2)
    executor.start()
    yield service, store
    executor.stop()
    store.dispose()


def wait_for(service, run_id, statuses=("completed", "failed", "cancelled", "timed_out"), timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = service.get_run(run_id)
        if run["status"] in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {service.get_run(run_id)['status']} after {timeout}s")


def processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return [p for p in found if p.pid != os.getpid()]


def test_shell_timeout_kills_the_whole_process_tree(engine):
    service, _ = engine
    marker = f"{60 + (uuid.uuid4().int % 1000) / 1000:.3f}"  # a unique sleep duration to find leftovers
    service.create_task(
        {
            "name": "sleepers",
            "type": "shell.run",
            "timeout_seconds": 2,
            "config": {"command": ["sh", "-c", f"sleep {marker} & sleep {marker} & wait"]},
        },
        actor="t",
        managed_by="file",
    )
    run_id = service.trigger("sleepers", actor="t")["id"]
    run = wait_for(service, run_id)
    assert run["status"] == "timed_out"
    assert 2.0 <= run["duration_seconds"] < 4.0  # started -> ended, as recorded by the store
    time.sleep(0.2)
    assert processes_with(f"sleep {marker}") == []


def test_a_python_handler_ignoring_its_deadline_is_killed(engine):
    service, _ = engine
    service.create_task(
        {"name": "spin", "type": "debug.sleep", "timeout_seconds": 2, "config": {"seconds": 60, "busy": True}},
        actor="t",
    )
    run = wait_for(service, service.trigger("spin", actor="t")["id"])
    assert run["status"] == "timed_out" and run["duration_seconds"] < 4.0
    # the pool replaced the killed worker and still executes runs
    service.create_task({"name": "after", "type": "debug.noop"}, actor="t")
    assert wait_for(service, service.trigger("after", actor="t")["id"])["status"] == "completed"


def test_cancel_is_cooperative_first_then_kills(engine):
    service, _ = engine
    service.create_task({"name": "polite", "type": "debug.sleep", "config": {"seconds": 60}}, actor="t")
    service.create_task({"name": "rude", "type": "debug.sleep", "config": {"seconds": 60, "busy": True}}, actor="t")
    polite = service.trigger("polite", actor="t")["id"]
    rude = service.trigger("rude", actor="t")["id"]
    wait_for(service, polite, ("running",))
    wait_for(service, rude, ("running",))
    service.cancel_run(polite, actor="t")
    service.cancel_run(rude, actor="t")
    assert wait_for(service, polite)["error"] == "cancelled on request"  # it checked and stopped
    killed = wait_for(service, rude)
    assert killed["status"] == "cancelled" and "killed" in killed["error"]


def test_a_long_run_keeps_beating_so_the_reaper_leaves_it_alone(engine):
    """The supervisor claims plain runs for its workers and beats their heartbeats (every 1 s here)."""
    service, store = engine
    # busy: the handler spins without reporting progress, which would beat the heartbeat too
    service.create_task({"name": "long", "type": "debug.sleep", "config": {"seconds": 4.5, "busy": True}}, actor="t")
    run_id = service.trigger("long", actor="t")["id"]
    started = wait_for(service, run_id, ("running",))
    assert started["worker"] and started["worker"].split(":")[-1] != str(os.getpid())  # the worker's pid
    time.sleep(3.8)  # past 3 missed heartbeats had nobody beaten
    assert Reaper(store, service.settings).find_stale() == []
    assert service.get_run(run_id)["status"] == "running"
    assert wait_for(service, run_id)["status"] == "completed"


def test_tasks_sharing_a_lock_never_overlap_in_the_pool(engine):
    service, _ = engine
    for name in ("a", "b", "c"):
        service.create_task(
            {
                "name": name,
                "type": "debug.sleep",
                "locks": ["db:main"],
                "concurrency": "allow",
                "config": {"seconds": 0.4},
            },
            actor="t",
        )
    ids = [service.trigger(n, actor="t")["id"] for n in ("a", "b", "c")]
    done = [wait_for(service, i) for i in ids]
    assert all(r["status"] == "completed" for r in done)
    spans = sorted((r["started_at"], r["finished_at"]) for r in done)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"runs overlapped: {spans}"


def test_recovery_kills_leftovers_of_a_dead_worker_before_retrying(tmp_path):
    """A worker process killed with SIGKILL: the reaper kills its process group and retries."""
    settings = Settings(config=tmp_path / "upkeep.yaml", heartbeat_seconds=1)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store, trusted=True)
    marker = f"{70 + (uuid.uuid4().int % 1000) / 1000:.3f}"
    service.create_task(
        {
            "name": "long",
            "type": "shell.run",
            "max_retries": 1,
            "retry_backoff_seconds": 0,
            "config": {"command": ["sh", "-c", f"sleep {marker}; exit 0"]},
        },
        actor="t",
        managed_by="file",
    )
    run_id = service.trigger("long", actor="t")["id"]
    # execute it in a separate process that we then kill -9, leaving `sleep` orphaned in its group
    script = (
        "import os, sys; from upkeep.settings import Settings; from upkeep.store.db import Store;"
        "from upkeep.engine.execute import execute_run;"
        f"os.setsid(); s = Settings(config={str(tmp_path / 'upkeep.yaml')!r}, heartbeat_seconds=1);"
        f"execute_run(Store(s.resolved_database_url), {run_id}, s)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    wait_for(service, run_id, ("running",))
    deadline = time.monotonic() + 10
    while not processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(f"sleep {marker}"), "the command never started"
    proc.kill()
    proc.wait()
    report = Reaper(store, settings).reap()
    assert [r["run_id"] for r in report.recovered] == [run_id]
    assert report.recovered[0]["killed_processes"] >= 1
    assert processes_with(f"sleep {marker}") == []
    first = service.get_run(run_id)
    assert first["status"] == "failed" and "is gone" in first["error"]
    runs_, _ = service.list_runs(task="long")
    retry = runs_[0]
    assert retry["retry_of"] == run_id and retry["attempt"] == 2 and retry["status"] == "pending"
    store.dispose()


def pool_processes() -> dict[str, list[psutil.Process]]:
    """This process's fork server and the worker processes forked by it."""
    found: dict[str, list[psutil.Process]] = {"fork_server": [], "workers": []}
    for child in psutil.Process().children():
        try:
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                found["fork_server"].append(child)
                found["workers"] += [w for w in child.children() if w.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            pass
    return found


def live_children() -> list[str]:
    """This process's children that have not exited, as command lines."""
    out = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE:
                out.append(" ".join(child.cmdline()))
    return out


def pool_state(executor: EmbeddedExecutor) -> str:
    """What the pool holds, for a failure's message: its slots, the workers its process counts for
    the fork server, and the processes there are."""
    from upkeep.engine import pool

    slots = [(s.process.pid, s.ready, s.run_id, round(time.monotonic() - s.idle_since, 1)) for s in executor._slots]
    counted = [(p.pid, p.is_alive()) for p in pool._fork_server_workers]
    return f"slots (pid, ready, run, idle s): {slots}; counted: {counted}; processes: {pool_processes()}"


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


IDLE_POOL_CHILD = """
import sys
from pathlib import Path

from test_pool import idle_pool_retires_its_workers_and_fork_server

idle_pool_retires_its_workers_and_fork_server(Path(sys.argv[1]))
"""


def test_an_idle_pool_holds_no_process_starts_workers_for_due_runs_and_retires_them(tmp_path):
    # in an interpreter of its own: the fork server serves every executor of a process, so workers
    # left by earlier tests in this one would keep it, whatever this pool does
    child = subprocess.run(
        [sys.executable, "-c", IDLE_POOL_CHILD, str(tmp_path)],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert child.returncode == 0, child.stdout + child.stderr


def idle_pool_retires_its_workers_and_fork_server(tmp_path: Path) -> None:
    settings = Settings(config=tmp_path / "upkeep.yaml", heartbeat_seconds=1, worker_idle_seconds=1)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store, trusted=True)
    executor = EmbeddedExecutor(settings, store, size=2)
    executor.start()
    try:
        assert executor.wait_ready(5)
        assert pool_processes() == {"fork_server": [], "workers": []}  # default settings: nothing started
        service.create_task({"name": "a", "type": "debug.sleep", "config": {"seconds": 6}}, actor="t")
        service.create_task({"name": "b", "type": "debug.sleep", "config": {"seconds": 6}}, actor="t")
        ids = [service.trigger(name, actor="t")["id"] for name in ("a", "b")]
        assert all(wait_for(service, run_id, timeout=60)["status"] == "completed" for run_id in ids)
        pids = {service.get_run(run_id)["worker"].split(":")[-1] for run_id in ids}
        assert len(pids) == 2  # both ran at once: a second worker started while the first was busy
        # idle for worker_idle_seconds: the workers exit, and with the last one the fork server and
        # multiprocessing's resource tracker: the process is alone again
        assert wait_until(lambda: live_children() == []), f"{live_children()}; {pool_state(executor)}"
        # and they start again for the next run
        service.create_task({"name": "later", "type": "debug.noop"}, actor="t")
        assert wait_for(service, service.trigger("later", actor="t")["id"], timeout=60)["status"] == "completed"
    finally:
        executor.stop()
        store.dispose()
    assert pool_processes()["workers"] == []


def test_workers_warm_stay_started_while_idle(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml", worker_idle_seconds=0.5, workers_warm=2)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    executor = EmbeddedExecutor(settings, store, size=3)
    executor.start()
    try:
        assert executor.wait_ready(60)
        started = {p.pid for p in pool_processes()["workers"]}
        assert len(started) == 2
        time.sleep(2)  # four idle spells: the warm ones stay
        assert {p.pid for p in pool_processes()["workers"]} == started
    finally:
        executor.stop()
        store.dispose()


def test_a_burst_of_due_runs_starts_a_worker_for_each_at_once_up_to_the_pool_size(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store, trusted=True)
    service.create_task({"name": "a", "type": "debug.noop"}, actor="t")
    for _ in range(4):
        service.trigger("a", actor="t")
    executor = EmbeddedExecutor(settings, store, size=3)  # its loop not started: one sizing step
    try:
        executor._size_pool()
        assert len(pool_processes()["workers"]) == 3  # not one, then the next once that one is busy
    finally:
        executor.stop()
        store.dispose()
    assert pool_processes()["workers"] == []


def test_slots_close_together_start_a_worker_each_before_they_come_and_a_lone_slot_one(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store, trusted=True)
    first = datetime.now(UTC) + timedelta(seconds=5)  # within the pool's warm-up lead
    for name, offset in (("a", 0.0), ("b", 0.2), ("c", 0.4), ("later", 4.0)):  # "later" is no part of the burst
        slot = (first + timedelta(seconds=offset)).isoformat()
        service.create_task({"name": name, "type": "debug.noop", "schedule": f"@once {slot}"}, actor="t")
    executor = EmbeddedExecutor(settings, store, size=4)  # its loop not started: one sizing step
    try:
        executor._size_pool()
        assert len(pool_processes()["workers"]) == 3  # before the slots, not one each time the others are busy
    finally:
        executor.stop()
        store.dispose()
    assert pool_processes()["workers"] == []


def test_the_loop_wakes_when_an_idle_workers_spell_ends_even_if_it_ends_while_the_loop_looks(tmp_path):
    # the pool looks at its workers (_size_pool), then computes its sleep (_sleep_time): a worker
    # whose idle spell ends between the two must not be slept past until the next scheduler wake-up
    settings = Settings(config=tmp_path / "upkeep.yaml", worker_idle_seconds=1)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    executor = EmbeddedExecutor(settings, store, size=2)
    slot = executor._spawn()
    try:
        assert slot.conn.poll(60) and slot.conn.recv()[0] == "ready"
        slot.ready = True
        executor._slots.append(slot)
        slot.idle_since = time.monotonic() - settings.worker_idle_seconds + 0.05  # its spell ends in 50 ms
        executor._size_pool()  # not expired yet: kept
        assert executor._slots == [slot]
        time.sleep(0.1)  # the spell ended while the loop was between its look and its sleep
        assert executor._sleep_time(None) == 0.0
        executor._size_pool()  # the next step retires it
        assert executor._slots == []
        assert not slot.process.is_alive()
    finally:
        if executor._slots:
            executor._retire(slot)
        store.dispose()
