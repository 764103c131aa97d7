"""How the reaper judges a run lost, and what becomes of a result that arrives after that.

A run is lost only on evidence: a heartbeat older than the stale window, seen by a reaper that has
been connected to the store for a whole window, that no live worker vouches for. The first
terminal write of a run stands; a late result is an event on the run."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from upkeep.app import Upkeep
from upkeep.engine import lifecycle
from upkeep.engine.pending import PendingResults, held_on_host
from upkeep.engine.reaper import Reaper
from upkeep.engine.scheduler import record_instance
from upkeep.settings import Settings
from upkeep.store.models import Run, RunEvent

ELSEWHERE = lifecycle.WorkerIdentity(host="another-host", pid=4242, pgid=4242)


def setup(store, tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml", heartbeat_seconds=0.2, stale_after_missed_heartbeats=3)
    service = Upkeep(settings, store, trusted=True)
    service.create_task({"name": "job", "type": "debug.noop", "max_retries": 1}, actor="t")
    return settings, service


def claimed_elsewhere(store, service, *, beat_age: float) -> int:
    """A run claimed by a worker on another host whose last heartbeat is ``beat_age`` seconds old."""
    run_id = service.trigger("job", actor="t")["id"]
    assert lifecycle.claim(store, run_id, ELSEWHERE) is not None
    with store.write() as s:
        s.execute(
            sa.update(Run).where(Run.id == run_id).values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=beat_age))
        )
    return run_id


def test_a_stale_run_is_judged_only_after_a_whole_window_connected(store, tmp_path):
    settings, service = setup(store, tmp_path)
    run_id = claimed_elsewhere(store, service, beat_age=60)
    reaper = Reaper(store, settings)
    assert reaper.reap().recovered == []  # just connected: its worker may be recording right now
    time.sleep(settings.stale_after_seconds + 0.1)
    recovered = reaper.reap().recovered
    assert [r["run_id"] for r in recovered] == [run_id]
    assert "no heartbeat" in service.get_run(run_id)["error"]


def test_a_reaper_that_lost_the_store_waits_a_whole_window_again(store, tmp_path):
    settings, service = setup(store, tmp_path)
    reaper = Reaper(store, settings)
    reaper.reap()
    time.sleep(settings.stale_after_seconds + 0.1)
    reaper.disconnected()  # what the scheduler says when a tick failed
    run_id = claimed_elsewhere(store, service, beat_age=60)
    assert reaper.reap().recovered == []
    assert service.get_run(run_id)["status"] == "running"


def test_a_run_its_worker_vouches_for_is_never_reaped(store, tmp_path):
    settings, service = setup(store, tmp_path)
    run_id = claimed_elsewhere(store, service, beat_age=60)
    reaper = Reaper(store, settings)
    reaper.reap()
    time.sleep(settings.stale_after_seconds + 0.1)
    record_instance(store, "worker:another-host:1", "worker", datetime.now(UTC), info={"runs": [run_id]})
    assert reaper.reap().recovered == []
    # the worker's own heartbeat goes stale too: now nothing vouches for the run
    with store.write() as s:
        s.execute(sa.text("UPDATE instances SET last_seen_at = :t"), {"t": datetime.now(UTC) - timedelta(seconds=60)})
    assert [r["run_id"] for r in reaper.reap().recovered] == [run_id]


def test_a_live_local_worker_keeps_its_run_while_it_vouches_for_it(store, tmp_path):
    settings, service = setup(store, tmp_path)
    # the worker: a live process on this host, leading its own process group
    worker = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        run_id = service.trigger("job", actor="t")["id"]
        here = lifecycle.WorkerIdentity(host=lifecycle.HOSTNAME, pid=worker.pid, pgid=worker.pid)
        assert lifecycle.claim(store, run_id, here) is not None
        with store.write() as s:
            old = datetime.now(UTC) - timedelta(hours=1)
            s.execute(sa.update(Run).where(Run.id == run_id).values(heartbeat_at=old))
        reaper = Reaper(store, settings)
        reaper.reap()
        time.sleep(settings.stale_after_seconds + 0.1)
        record_instance(store, "worker:here:1", "worker", datetime.now(UTC), info={"runs": [run_id]})
        assert reaper.reap().recovered == []
        assert service.get_run(run_id)["status"] == "running" and worker.poll() is None
        # a live process that no longer vouches for the run lost track of it: recovered, its group killed
        with store.write() as s:
            long_ago = datetime.now(UTC) - timedelta(seconds=60)
            s.execute(sa.text("UPDATE instances SET last_seen_at = :t"), {"t": long_ago})
        recovered = reaper.reap().recovered
        assert [r["run_id"] for r in recovered] == [run_id] and recovered[0]["killed_processes"] >= 1
        assert worker.wait(10) is not None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_late_result_leaves_the_first_end_and_is_recorded_as_an_event(store, tmp_path):
    settings, service = setup(store, tmp_path)
    run_id = claimed_elsewhere(store, service, beat_age=60)
    assert Reaper(store, settings).reap(judge_heartbeats=True).recovered
    ended = datetime.now(UTC) - timedelta(seconds=5)
    pending = PendingResults(store, settings.resolved_data_dir)
    pending.add(lifecycle.Finish(run_id, "completed", "ok", {"outcome": "ok"}, "all done", None, ended))
    assert pending.flush(now=True)
    run = service.get_run(run_id)
    assert run["status"] == "failed" and "no heartbeat" in run["error"]  # the first terminal write stands
    with store.read() as s:
        late = s.execute(sa.select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.event == "late_result")).scalar()
    assert late is not None and late.data["status"] == "completed" and "all done" in late.message
    retries = [r for r in service.list_runs(task="job")[0] if r["retry_of"] == run_id]
    assert len(retries) == 1  # the recovery's retry, and no other


def test_a_kept_result_is_recorded_with_the_time_the_handler_ended(store, tmp_path):
    settings, service = setup(store, tmp_path)
    run_id = service.trigger("job", actor="t")["id"]
    assert lifecycle.claim(store, run_id, ELSEWHERE) is not None
    ended = datetime.now(UTC) - timedelta(seconds=30)
    event = {"ts": (ended - timedelta(seconds=1)).isoformat(), "level": "info", "event": "note", "message": "kept"}
    pending = PendingResults(store, settings.resolved_data_dir)
    pending.add(lifecycle.Finish(run_id, "completed", "ok", None, "done", None, ended, ({**event, "data": None},)))
    assert pending.flush(now=True)
    run = service.get_run(run_id)
    assert run["status"] == "completed"
    assert abs((datetime.fromisoformat(str(run["finished_at"])) - ended).total_seconds()) < 0.01
    with store.read() as s:
        names = list(
            s.execute(sa.select(RunEvent.event).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)).scalars()
        )
    assert names[-2:] == ["note", "finished"]
    assert held_on_host(settings.resolved_data_dir) == set()


def test_a_result_the_store_refuses_fails_its_run_and_holds_up_no_other(store, tmp_path):
    if not store.is_postgres:
        pytest.skip("SQLite stores any text; PostgreSQL's jsonb refuses a NUL character")
    settings, service = setup(store, tmp_path)
    first, second = (service.trigger("job", actor="t")["id"] for _ in range(2))
    for run_id in (first, second):
        assert lifecycle.claim(store, run_id, ELSEWHERE) is not None
    pending = PendingResults(store, settings.resolved_data_dir)
    pending.add(lifecycle.Finish(first, "completed", "ok", {"odd": "a\u0000b"}, "odd", None, datetime.now(UTC)))
    pending.add(lifecycle.Finish(second, "completed", "ok", {"fine": True}, "fine", None, datetime.now(UTC)))
    assert pending.flush(now=True)
    assert service.get_run(second)["status"] == "completed"
    refused = service.get_run(first)
    assert refused["status"] == "failed" and "could not be stored" in refused["error"]


def test_the_memory_lifecycle_keeps_the_first_end_and_tells_the_late_result_alike():
    from upkeep.engine.lifecycle.memory import MemoryLifecycle
    from upkeep.engine.lifecycle.rules import Trigger

    lc = MemoryLifecycle()
    run_id = lc.create(Trigger.MANUAL, task=None, task_type="debug.noop", config={}, due_at=datetime.now(UTC))
    assert lc.claim(run_id, ELSEWHERE) is not None
    ended = datetime.now(UTC) - timedelta(seconds=5)
    kept = {"ts": (ended - timedelta(seconds=1)).isoformat(), "level": "info", "event": "note", "message": "kept"}
    assert lc.recover(run_id, "worker lost")
    assert lc.finish_many([lifecycle.Finish(run_id, "completed", "ok", None, "done", None, ended, (kept,))]) == [False]
    run = lc.run(run_id)
    assert run.status == "failed" and run.error == "worker lost"
    assert [e.event for e in run.events][-2:] == ["note", "late_result"]
    assert run.events[-1].data["status"] == "completed"
