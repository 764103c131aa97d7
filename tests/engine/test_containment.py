"""A failure while planning or starting one task stays with that task.

The bad values here are written to the store directly: the API and ``upkeep apply`` refuse them
(tests/cli/test_bounds.py), so they stand for a row stored before a bound existed or a bug no
bound catches. Slots are counted with a controllable clock, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from upkeep.app import Upkeep
from upkeep.clock import FakeClock
from upkeep.engine import lifecycle
from upkeep.engine.scheduler import tick
from upkeep.settings import Settings
from upkeep.store.models import Run, RunEvent, ScheduledTask

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
WORKERS = [lifecycle.WorkerIdentity(host="test", pid=pid, pgid=pid) for pid in range(1, 9)]
GOOD = ("alpha", "beta", "gamma")
MINUTES = 6


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def service(store, clock, tmp_path):
    return Upkeep(Settings(config=tmp_path / "upkeep.yaml"), store, clock=clock)


def _create(service, name: str) -> None:
    service.create_task({"name": name, "type": "debug.noop", "schedule": "@every 1m"}, actor="t")


def _spoil(store, name: str, **values) -> None:
    """Write a value no edge accepts, as an old row or a bug would hold it."""
    with store.write() as s:
        s.execute(sa.update(ScheduledTask).where(ScheduledTask.name == name).values(**values))


def _runs(store, name: str) -> list[Run]:
    with store.read() as s:
        return list(s.execute(sa.select(Run).where(Run.task_name == name).order_by(Run.id)).scalars())


def _events(store, run_id: int) -> list[str]:
    with store.read() as s:
        return list(s.execute(sa.select(RunEvent.event).where(RunEvent.run_id == run_id)).scalars())


def _minutes(clock, store, *, start: bool):
    """Tick once a minute; with ``start``, hand due runs to workers and finish the ones started."""
    for minute in range(1, MINUTES + 1):
        clock.set(T0 + timedelta(minutes=minute, seconds=1))
        tick(store, clock.now())
        if start:
            handout = lifecycle.start_due_runs(store, WORKERS, queues=None, dispatcher="t", now=clock.now())
            for item in handout.items:
                lifecycle.finish(store, item.id, "completed", outcome="ok")


def _assert_good_tasks_kept_every_slot(store) -> None:
    expected = [T0 + timedelta(minutes=m) for m in range(1, MINUTES + 1)]
    for name in GOOD:
        fired = _runs(store, name)
        assert [r.scheduled_for for r in fired] == expected, name
        assert {r.status for r in fired} == {"completed"}, name


@pytest.mark.parametrize(
    ("values", "cause"),
    [
        ({"jitter_seconds": 1e300}, "OverflowError"),
        ({"schedule": "@every 9999999999999999h"}, "ScheduleError"),
    ],
    ids=["jitter-1e300", "every-too-long"],
)
def test_a_task_whose_planning_raises_gets_failed_runs_and_the_others_keep_their_slots(
    service, store, clock, values, cause
):
    for name in (*GOOD, "broken"):
        _create(service, name)
    _spoil(store, "broken", **values)
    _minutes(clock, store, start=True)
    _assert_good_tasks_kept_every_slot(store)
    failed = _runs(store, "broken")
    assert failed, "the broken task left no trace"
    for run in failed:
        assert run.status == "failed" and run.finished_at is not None
        assert "could not plan" in run.error and cause in run.error, run.error
        assert "planning_failed" in _events(store, run.id)
    if "schedule" in values:  # no slot can be read: it is tried again 5 minutes on, not every tick
        assert len(failed) == 2
    else:  # the schedule is fine: each slot fails on its own
        assert [r.scheduled_for for r in failed] == [T0 + timedelta(minutes=m) for m in range(1, MINUTES + 1)]


def test_a_run_whose_start_raises_fails_saying_why_and_the_others_start(service, store, clock):
    for name in (*GOOD, "broken"):
        _create(service, name)
    _spoil(store, "broken", timeout_seconds=1e300)
    _minutes(clock, store, start=True)
    _assert_good_tasks_kept_every_slot(store)
    failed = _runs(store, "broken")
    assert len(failed) == MINUTES
    for run in failed:
        assert run.status == "failed" and run.started_at is None
        assert run.error.startswith("could not start:"), run.error


def test_a_claim_that_raises_fails_that_run_and_returns_none(service, store, clock):
    """The worker's own claim (runs with locks, `upkeep run`, Celery) contains it too."""
    _create(service, "broken")
    _spoil(store, "broken", timeout_seconds=1e300)
    clock.set(T0 + timedelta(minutes=1, seconds=1))
    tick(store, clock.now())
    (run,) = _runs(store, "broken")
    assert lifecycle.claim(store, run.id, WORKERS[0]) is None
    (run,) = _runs(store, "broken")
    assert run.status == "failed" and run.error.startswith("could not start:"), run.error


def test_a_forbidden_slot_behind_one_planned_in_the_same_tick_names_no_run_0(service, store, clock):
    service.create_task(
        {"name": "backlog", "type": "debug.noop", "schedule": "@every 1m", "misfire": "run_all"}, actor="t"
    )
    clock.set(T0 + timedelta(minutes=3, seconds=1))  # three slots due in one tick
    tick(store, clock.now())
    skipped = [r for r in _runs(store, "backlog") if r.status == "skipped"]
    assert len(skipped) == 2
    for run in skipped:
        assert "run 0" not in run.summary and "the run of an earlier slot" in run.summary, run.summary


def test_replace_within_one_tick_skips_the_earlier_planned_slot_saying_why(service, store, clock):
    service.create_task(
        {
            "name": "replacing",
            "type": "debug.noop",
            "schedule": "@every 1m",
            "misfire": "run_all",
            "concurrency": "replace",
        },
        actor="t",
    )
    clock.set(T0 + timedelta(minutes=3, seconds=1))  # three slots due in one tick
    tick(store, clock.now())
    made = _runs(store, "replacing")
    assert sorted(r.scheduled_for for r in made) == [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    by_slot = {r.scheduled_for: r for r in made}
    assert by_slot[T0 + timedelta(minutes=3)].status == "pending"
    for minute in (1, 2):
        run = by_slot[T0 + timedelta(minutes=minute)]
        assert run.status == "skipped" and run.summary.startswith("replaced by the run of slot"), run.summary
