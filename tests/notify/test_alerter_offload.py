"""The daemons' alerter (``OffloadingAlerter``): it evaluates in the daemon's process while few runs
finish, in a spawned child while many do, and every failed run alerts exactly once across the
hand-overs. Real runs, a real webhook receiver, a real child process."""

from __future__ import annotations

import os
import signal

import pytest
from notify_receivers import HttpReceiver

from support.polling import eventually
from upkeep.app import Upkeep
from upkeep.engine import lifecycle
from upkeep.engine.execute import execute_claimed
from upkeep.notify.offload import OffloadingAlerter
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.records import CONFIG_DOMAIN, Records

BUSY_RUNS = 3
QUIET_SECONDS = 3.0  # long enough for a test to see the child evaluate (and kill it) before it exits


class World:
    def __init__(self, tmp_path, http: HttpReceiver):
        self.http = http
        self.settings = Settings(config=tmp_path / "upkeep.yaml")
        self.store = Store(self.settings.resolved_database_url)
        self.store.upgrade()
        Records(self.store, CONFIG_DOMAIN).put(
            "channels", {"hook": {"url": f"json://127.0.0.1:{http.port}/hook", "timeout": 10}}
        )
        self.service = Upkeep(self.settings, self.store, trusted=True)
        self.alerter = OffloadingAlerter(
            self.store, self.settings, interval=0.2, busy_runs=BUSY_RUNS, quiet_seconds=QUIET_SECONDS
        )

    def fail(self, *names: str) -> None:
        """A task per name whose one run has failed."""
        for name in names:
            self.service.create_task(
                {"name": name, "type": "debug.fail", "config": {"fail_attempts": 99}, "notify": {"channels": ["hook"]}},
                actor="test",
            )
            run_id = self.service.trigger(name, actor="test")["id"]
            claimed = lifecycle.claim(self.store, run_id, lifecycle.WorkerIdentity.current())
            assert claimed is not None
            assert execute_claimed(self.store, claimed, self.settings) == "failed"

    def alerted(self) -> list[str]:
        """The task named in each webhook received, in order."""
        return [r.json()["title"].split()[2].rstrip(":") for r in list(self.http.requests) if r.path == "/hook"]

    def evaluator_pid(self) -> int | None:
        last = Records(self.store, "_alerts").get("last_evaluation") or {}
        return last.get("pid")


@pytest.fixture
def world(tmp_path):
    http = HttpReceiver().start()
    world = World(tmp_path, http)
    yield world
    world.alerter.stop()
    http.stop()
    world.store.dispose()


def test_heavy_evaluations_move_to_a_child_and_back_and_every_failure_alerts_once(world):
    busy = [f"busy-{i}" for i in range(BUSY_RUNS)]
    world.fail(*busy)  # before the start: the backlog the thread counts first
    world.alerter.start()
    eventually(lambda: sorted(world.alerted()) == busy, "the alerts of the busy runs")
    child = world.evaluator_pid()
    assert world.alerter.children == 1 and child != os.getpid()  # evaluated in the child, not here
    world.fail("child-1", "child-2")  # fewer than BUSY_RUNS: the child goes quiet, then exits
    eventually(lambda: "child-2" in world.alerted(), "the child's next alerts")
    assert world.evaluator_pid() == child
    eventually(lambda: world.evaluator_pid() == os.getpid(), "the evaluations back in this process")
    world.fail("back-1")
    eventually(lambda: "back-1" in world.alerted(), "the alert after the hand-back")

    assert sorted(world.alerted()) == sorted([*busy, "child-1", "child-2", "back-1"])
    assert world.alerter.children == 1
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the child exited


def test_a_killed_child_hands_the_evaluations_back(world):
    world.fail(*(f"busy-{i}" for i in range(BUSY_RUNS)))
    world.alerter.start()
    eventually(lambda: world.alerter.children == 1, "a child process")
    world.fail("child-1")
    eventually(lambda: "child-1" in world.alerted(), "the child's alert")  # a message it leased waits out the lease
    child = world.evaluator_pid()
    assert child != os.getpid()
    os.kill(child, signal.SIGKILL)
    world.fail("after-kill")
    eventually(lambda: "after-kill" in world.alerted(), "the alert after the kill")
    assert world.evaluator_pid() == os.getpid()
    assert sorted(world.alerted()) == sorted([*(f"busy-{i}" for i in range(BUSY_RUNS)), "child-1", "after-kill"])


def test_stopping_the_daemon_stops_its_alerter_process(world):
    world.fail(*(f"busy-{i}" for i in range(BUSY_RUNS)))
    world.alerter.start()
    eventually(lambda: world.alerter.children == 1, "a child process")
    child = eventually(lambda: (pid := world.evaluator_pid()) != os.getpid() and pid, "an evaluation in the child")
    world.alerter.stop()
    assert not world.alerter.running
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
