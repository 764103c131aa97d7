"""The one watcher (heartbeat, cancel, deadline), on the in-memory lifecycle: no store, no sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from upkeep.engine.lifecycle import Trigger, WorkerIdentity
from upkeep.engine.lifecycle.memory import MemoryLifecycle
from upkeep.engine.watch import CANCELLED_ERROR, TIMED_OUT_ERROR, Watcher

WORKER = WorkerIdentity("host-a", 101, 101)


class World:
    def __init__(self, *, grace: float = 60.0, kills: bool = True):
        self.runs = MemoryLifecycle()
        self.ended: list[tuple[int, str, str]] = []
        self.cancels: list[int] = []
        self.watcher = Watcher(
            self.runs,
            heartbeat_seconds=3600.0,
            cancel_grace_seconds=grace,
            end=self.end if kills else None,
            cancel_check_seconds=0.0,
        )

    def end(self, run_id: int, status: str, error: str) -> None:
        self.ended.append((run_id, status, error))
        self.runs.finish(run_id, status, error=error)

    def running(self, *, deadline: datetime | None = None) -> int:
        run_id = self.runs.create(
            Trigger.MANUAL, task=None, task_type="debug.noop", config={}, due_at=datetime.now(UTC)
        )
        assert self.runs.claim(run_id, WORKER) is not None
        self.watcher.watch(run_id, deadline, on_cancel=lambda: self.cancels.append(run_id))
        return run_id


def test_the_first_check_beats_every_watched_run_in_one_go():
    world = World()
    runs = [world.running(), world.running()]
    stale = datetime.now(UTC) - timedelta(hours=1)
    for run_id in runs:
        world.runs.run(run_id).heartbeat_at = stale
    world.watcher.check()
    assert all(world.runs.run(run_id).heartbeat_at > stale for run_id in runs)
    assert world.ended == [] and world.cancels == []


def test_a_cancel_request_reaches_the_handler_once_and_the_grace_period_ends_the_run():
    world = World(grace=3600.0)
    run_id = world.running()
    world.watcher.check()
    assert world.cancels == []
    assert world.runs.cancel(run_id) == "running"
    world.watcher.check()
    world.watcher.check()
    assert world.cancels == [run_id] and world.ended == []  # within its grace period
    world.watcher.grace = timedelta(0)
    world.watcher.check()
    assert world.ended == [(run_id, "cancelled", CANCELLED_ERROR)]
    assert world.runs.run(run_id).status == "cancelled" and run_id not in world.watcher.runs


def test_a_passed_deadline_ends_the_run_timed_out_and_others_keep_running():
    world = World()
    late = world.running(deadline=datetime.now(UTC) - timedelta(seconds=1))
    fine = world.running(deadline=datetime.now(UTC) + timedelta(hours=1))
    world.watcher.check()
    assert world.ended == [(late, "timed_out", TIMED_OUT_ERROR)]
    assert world.runs.run(late).status == "timed_out" and world.runs.run(fine).status == "running"
    assert list(world.watcher.runs) == [fine]


def test_a_cooperative_watcher_passes_the_cancel_on_and_kills_nothing():
    world = World(grace=0.0, kills=False)
    run_id = world.running(deadline=datetime.now(UTC) - timedelta(seconds=1))
    world.runs.cancel(run_id)
    world.watcher.check()
    assert world.cancels == [run_id] and world.ended == []
    assert world.runs.run(run_id).status == "running"


def test_a_forgotten_run_is_neither_beaten_nor_ended():
    world = World(grace=0.0)
    run_id = world.running(deadline=datetime.now(UTC) - timedelta(seconds=1))
    world.watcher.forget(run_id)
    world.runs.cancel(run_id)
    world.watcher.check()
    assert world.ended == [] and world.cancels == [] and world.watcher.seconds_to_next_check() is None
