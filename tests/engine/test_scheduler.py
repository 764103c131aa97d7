"""Scheduler semantics with a controllable clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
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
WORKER = lifecycle.WorkerIdentity(host="test", pid=1, pgid=1)


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def service(store, clock, tmp_path):
    return Upkeep(Settings(config=tmp_path / "upkeep.yaml"), store, clock=clock)


def task_runs(store, name: str) -> list[Run]:
    with store.read() as s:
        return list(s.execute(sa.select(Run).where(Run.task_name == name).order_by(Run.id)).scalars())


def ids(handout: lifecycle.Handout) -> list[int]:
    return [run.id for run in handout.items]


def events(store, run_id: int) -> list[str]:
    with store.read() as s:
        return list(
            s.execute(sa.select(RunEvent.event).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)).scalars()
        )


def finish_all(store, name: str) -> None:
    for run in task_runs(store, name):
        if run.status in ("pending", "submitted"):
            assert lifecycle.claim(store, run.id, WORKER) is not None
            lifecycle.finish(store, run.id, "completed", outcome="ok")


def test_next_run_at_is_the_next_slot_not_now_plus_period(service, store, clock):
    service.create_task({"name": "every5", "type": "debug.noop", "schedule": "*/5 * * * *"}, actor="t")
    assert service.get_task("every5")["next_run_at"] == (T0 + timedelta(minutes=5)).isoformat()
    clock.set(T0 + timedelta(minutes=5, seconds=7))  # a late tick
    result = tick(store, clock.now())
    assert len(result.created) == 1
    # the next slot is 10:10, not 10:10:07: no drift
    assert service.get_task("every5")["next_run_at"] == (T0 + timedelta(minutes=10)).isoformat()
    assert task_runs(store, "every5")[0].scheduled_for == T0 + timedelta(minutes=5)


def test_first_start_never_fires_a_backlog_with_skip(service, store, clock):
    service.create_task({"name": "hourly", "type": "debug.noop", "schedule": "0 * * * *"}, actor="t")
    clock.set(T0 + timedelta(hours=5, minutes=30))  # the scheduler was down for 5 hours
    result = tick(store, clock.now())
    assert result.created == []
    (skipped,) = task_runs(store, "hourly")
    assert skipped.status == "skipped" and "missed 5 slot(s)" in skipped.summary
    assert service.get_task("hourly")["next_run_at"] == (T0 + timedelta(hours=6)).isoformat()


def test_run_once_coalesces_missed_slots_and_run_all_fires_each(service, store, clock):
    service.create_task(
        {"name": "once", "type": "debug.noop", "schedule": "0 * * * *", "misfire": "run_once", "concurrency": "allow"},
        actor="t",
    )
    service.create_task(
        {"name": "all", "type": "debug.noop", "schedule": "0 * * * *", "misfire": "run_all", "concurrency": "allow"},
        actor="t",
    )
    clock.set(T0 + timedelta(hours=3, minutes=10))
    tick(store, clock.now())
    (coalesced,) = task_runs(store, "once")
    assert coalesced.scheduled_for == T0 + timedelta(hours=3) and coalesced.status == "pending"
    assert "misfire" in events(store, coalesced.id)
    assert [r.scheduled_for for r in task_runs(store, "all")] == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


def test_slots_within_grace_are_not_misfires(service, store, clock):
    service.create_task(
        {
            "name": "sec",
            "type": "debug.noop",
            "schedule": "@every 10s",
            "concurrency": "allow",
            "schedule_anchor": T0.isoformat(),
        },
        actor="t",
    )
    clock.set(T0 + timedelta(seconds=35))  # three slots late by 25, 15 and 5 s: all within the 60 s grace
    tick(store, clock.now())
    assert [r.status for r in task_runs(store, "sec")] == ["pending"] * 3


def test_forbid_turns_a_slot_into_a_skipped_run_that_says_why(service, store, clock):
    service.create_task({"name": "f", "type": "debug.noop", "schedule": "* * * * *"}, actor="t")
    clock.set(T0 + timedelta(minutes=1))
    first = tick(store, clock.now()).created[0]
    assert lifecycle.claim(store, first, WORKER) is not None
    clock.set(T0 + timedelta(minutes=2))
    result = tick(store, clock.now())
    assert result.created == [] and len(result.skipped) == 1
    skipped = task_runs(store, "f")[-1]
    assert skipped.status == "skipped" and f"run {first} of this task is still running" in skipped.summary


def test_replace_cancels_the_active_run(service, store, clock):
    service.create_task(
        {"name": "r", "type": "debug.noop", "schedule": "* * * * *", "concurrency": "replace"}, actor="t"
    )
    clock.set(T0 + timedelta(minutes=1))
    first = tick(store, clock.now()).created[0]
    clock.set(T0 + timedelta(minutes=2))
    second = tick(store, clock.now()).created[0]
    statuses = {r.id: r.status for r in task_runs(store, "r")}
    assert statuses == {first: "cancelled", second: "pending"}
    # the same cancel as the API's: the replaced run says why, ends with its event and its task's summary
    replaced = task_runs(store, "r")[0]
    assert replaced.error == f"replaced by the run of slot {(T0 + timedelta(minutes=2)).isoformat()}"
    assert events(store, first) == ["finished"]
    assert service.get_task("r")["last_status"] == "cancelled"


def test_a_slot_outside_the_window_waits_for_it_and_runs_only_inside(service, store, clock):
    # window 10:03-10:05 UTC every day; task every minute
    service.create_task(
        {"name": "w", "type": "debug.noop", "schedule": "* * * * *", "windows": ["daily 10:03-10:05 UTC"]}, actor="t"
    )
    started = []
    for minute in range(1, 9):
        clock.set(T0 + timedelta(minutes=minute))
        tick(store, clock.now())
        for run_id in ids(lifecycle.dispatch_due_runs(store, limit=10, queues=None, worker="test:1", now=clock.now())):
            started.append(clock.now())
            assert lifecycle.claim(store, run_id, WORKER) is not None
            lifecycle.finish(store, run_id, "completed", outcome="ok")
    assert started, "the task never ran"
    window = (T0 + timedelta(minutes=3), T0 + timedelta(minutes=5))
    assert all(window[0] <= at < window[1] for at in started), started
    waited = [r for r in task_runs(store, "w") if "window_wait" in events(store, r.id)]
    assert waited and waited[0].due_at == window[0]
    assert any("already waiting for the maintenance window" in (r.summary or "") for r in task_runs(store, "w"))


def test_two_tasks_sharing_a_lock_never_overlap(service, store):
    for name in ("backup", "reindex"):
        service.create_task({"name": name, "type": "debug.noop", "locks": ["db:main"]}, actor="t")
    a = service.trigger("backup", actor="t")["id"]
    b = service.trigger("reindex", actor="t")["id"]
    assert lifecycle.claim(store, a, WORKER) is not None
    assert lifecycle.claim(store, b, WORKER) is None  # waits for the lock
    with store.read() as s:
        waiting = s.get(Run, b)
        assert waiting.status == "pending" and waiting.blocked_by_run_id == a
        assert f"held by run {a}" in waiting.progress_message
        retry_at = waiting.due_at
    assert "lock_wait" in events(store, b)
    lifecycle.finish(store, a, "completed", outcome="ok")
    with store.read() as s:
        woken = s.get(Run, b)  # the holder's end makes it due at once, not at its lock retry
        assert woken.blocked_by_run_id is None and woken.due_at < retry_at
    assert lifecycle.claim(store, b, WORKER) is not None


def test_a_waiting_run_has_no_worker_until_resumed_and_is_never_reaped(service, store):
    from upkeep.engine.reaper import Reaper

    service.create_task({"name": "approve", "type": "debug.noop"}, actor="t")
    run_id = service.trigger("approve", actor="t")["id"]
    assert lifecycle.wait(store, run_id, "waiting for an approval")
    assert not lifecycle.wait(store, run_id, "again")  # only a pending run can wait
    far = datetime.now(UTC) + timedelta(days=1)
    assert ids(lifecycle.dispatch_due_runs(store, limit=10, queues=None, worker="test:1", now=far)) == []
    assert lifecycle.claim(store, run_id, WORKER) is None
    report = Reaper(store, service.settings).reap(now=far)
    assert report.recovered == [] and report.requeued == []
    assert lifecycle.resume(store, run_id, "approved by ops")
    assert ids(lifecycle.dispatch_due_runs(store, limit=10, queues=None, worker="test:1", now=far)) == [run_id]
    assert events(store, run_id) == ["waiting", "resumed"]


def test_cancelling_a_waiting_run_ends_it(service, store):
    service.create_task({"name": "held", "type": "debug.noop"}, actor="t")
    run_id = service.trigger("held", actor="t")["id"]
    assert lifecycle.wait(store, run_id, "waiting for a checklist")
    assert lifecycle.cancel(store, run_id) == "cancelled"
    assert task_runs(store, "held")[0].status == "cancelled"
    assert not lifecycle.resume(store, run_id, "too late")


def test_recover_fails_a_running_run_and_requeues_a_submitted_one(service, store):
    service.create_task({"name": "lost", "type": "debug.noop", "max_retries": 1}, actor="t")
    running = service.trigger("lost", actor="t")["id"]
    assert lifecycle.claim(store, running, WORKER) is not None
    assert lifecycle.recover(store, running, "worker test:1 is gone")
    retried = task_runs(store, "lost")
    assert [r.status for r in retried] == ["failed", "pending"] and retried[1].retry_of == running
    assert retried[0].error == "worker test:1 is gone"
    submitted = retried[1].id
    assert lifecycle.dispatch_to(store, submitted, "test:2")
    assert lifecycle.recover(store, submitted, "dispatcher test:2 is gone")
    assert task_runs(store, "lost")[1].status == "pending"
    assert not lifecycle.recover(store, running, "again")  # ended: nothing to recover


def test_retries_are_new_runs_pointing_at_the_run_they_retry_with_backoff(service, store):
    service.create_task(
        {
            "name": "flaky",
            "type": "debug.fail",
            "max_retries": 2,
            "retry_backoff_seconds": 10,
            "retry_backoff_max_seconds": 15,
        },
        actor="t",
    )
    first = service.trigger("flaky", actor="t")["id"]
    assert lifecycle.claim(store, first, WORKER)
    lifecycle.finish(store, first, "failed", error="boom")
    second = task_runs(store, "flaky")[-1]
    assert second.retry_of == first and second.attempt == 2 and second.origin == "retry"
    delay = (second.due_at - second.created_at).total_seconds()
    assert 9.5 <= delay <= 10.5
    assert lifecycle.claim(store, second.id, WORKER)
    lifecycle.finish(store, second.id, "timed_out", error="deadline")
    third = task_runs(store, "flaky")[-1]
    assert third.retry_of == second.id and (third.due_at - third.created_at).total_seconds() <= 15.5  # capped
    assert lifecycle.claim(store, third.id, WORKER)
    lifecycle.finish(store, third.id, "failed", error="boom")
    assert len(task_runs(store, "flaky")) == 3  # no attempt 4
    assert service.get_task("flaky")["consecutive_failures"] == 1


def test_claim_is_conditional_so_a_redelivered_run_executes_once(service, store):
    service.create_task({"name": "once", "type": "debug.noop"}, actor="t")
    run_id = service.trigger("once", actor="t")["id"]
    results = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        results.append(lifecycle.claim(store, run_id, WORKER))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in results if r is not None) == 1


def test_racing_schedulers_create_one_run_per_slot(service, store, clock):
    for i in range(20):
        service.create_task(
            {"name": f"t{i}", "type": "debug.noop", "schedule": "* * * * *", "concurrency": "allow"}, actor="t"
        )
    barrier = threading.Barrier(3)
    errors = []

    def scheduler(now):
        barrier.wait()
        try:
            tick(store, now)
        except Exception as exc:  # a serialisation failure would show here
            errors.append(exc)

    for minute in (1, 2, 3):
        now = T0 + timedelta(minutes=minute)
        threads = [threading.Thread(target=scheduler, args=(now,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    with store.read() as s:
        counts = s.execute(
            sa.select(Run.task_name, Run.scheduled_for, sa.func.count()).group_by(Run.task_name, Run.scheduled_for)
        ).all()
    assert len(counts) == 60 and all(c == 1 for _, _, c in counts)


def test_disabled_tasks_do_not_fire_and_enabling_starts_from_now(service, store, clock):
    service.create_task({"name": "d", "type": "debug.noop", "schedule": "* * * * *", "enabled": False}, actor="t")
    clock.set(T0 + timedelta(minutes=30))
    assert tick(store, clock.now()).created == []
    service.set_enabled("d", True, actor="t")
    assert service.get_task("d")["next_run_at"] == (T0 + timedelta(minutes=31)).isoformat()


def test_cancel_of_a_pending_run_ends_it_and_audit_records_every_change(service, store):
    service.create_task({"name": "c", "type": "debug.noop"}, actor="alice")
    run_id = service.trigger("c", actor="alice")["id"]
    assert service.cancel_run(run_id, actor="bob")["status"] == "cancelled"
    service.set_enabled("c", False, actor="bob")
    service.update_task("c", {"description": "changed"}, actor="carol")
    service.delete_task("c", actor="dave")
    audit, _ = service.list_audit()
    assert [(a["actor"], a["action"]) for a in reversed(audit)] == [
        ("alice", "create"),
        ("alice", "trigger"),
        ("bob", "cancel"),
        ("bob", "disable"),
        ("carol", "update"),
        ("dave", "delete"),
    ]
    update = next(a for a in audit if a["action"] == "update")
    assert update["before"]["description"] == "" and update["after"]["description"] == "changed"


def test_expired_cleanup_never_deletes_a_non_terminal_run(service, store):
    from upkeep.app.run_services import RunServices

    service.create_task({"name": "x", "type": "debug.noop"}, actor="t")
    old = [service.trigger("x", actor="t")["id"] for _ in range(3)]
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with store.write() as s:
        s.execute(sa.update(Run).where(Run.id.in_(old[:2])).values(status="completed", finished_at=long_ago))
        s.execute(sa.update(Run).where(Run.id == old[2]).values(status="running", finished_at=long_ago))
    services = RunServices(store, service.settings)
    dry = services.cleanup_expired(retention_days=30, batch_size=1000, dry_run=True)
    assert dry["runs"] == 2 and len(task_runs(store, "x")) == 3
    done = services.cleanup_expired(retention_days=30, batch_size=1, dry_run=False)
    assert done["runs"] == 1 and done["remaining"] == 1
    services.cleanup_expired(retention_days=30, batch_size=1000, dry_run=False)
    assert [r.status for r in task_runs(store, "x")] == ["running"]


def test_bad_task_input_writes_nothing(service, store):
    from upkeep.errors import UserError

    def snapshot():
        with store.read() as s:
            return s.execute(sa.select(sa.func.count(ScheduledTask.id))).scalar(), s.execute(
                sa.select(sa.func.count()).select_from(sa.text("audit_log"))
            ).scalar()

    before = snapshot()
    bad = [
        ({"name": "a", "type": "debug.noop", "schedule": "61 * * * *"}, "minute"),
        ({"name": "a", "type": "debug.noop", "schedule": "@daily", "timezone": "Mars/Base"}, "time zone"),
        ({"name": "a", "type": "nope.nothing"}, "unknown task type"),
        ({"name": "a", "type": "debug.sleep", "config": {"seconds": "soon"}}, "config.seconds"),
        ({"name": "a", "type": "shell.run", "config": {"command": ["true"]}}, "upkeep.yaml"),
    ]
    for data, expected in bad:
        with pytest.raises(UserError) as info:
            service.create_task(data, actor="t")
        assert expected in str(info.value)
    assert snapshot() == before


def test_host_values_and_commands_only_come_from_the_file(service):
    """Commands are host-scoped values like paths (tests/api/test_host_scope.py drives every field)."""
    from upkeep.errors import Forbidden

    ok = {"name": "b", "type": "backup.create", "config": {"source": {"type": "sqlite", "path": "/tmp/x.db"}}}
    with pytest.raises(Forbidden, match="upkeep.yaml"):  # an inline source names a file on the host
        service.create_task(ok, actor="api")
    steps = {"steps": [{"type": "debug.noop"}, {"type": "shell.run", "config": {"command": ["true"]}}]}
    with pytest.raises(Forbidden):
        service.create_task({"name": "p", "type": "procedure.execute", "config": steps}, actor="api")
    trusted = Upkeep(service.settings, service.store, trusted=True)  # apply and the local CLI
    trusted.create_task(ok, actor="file", managed_by="file")
    trusted.create_task({"name": "p", "type": "procedure.execute", "config": steps}, actor="file", managed_by="file")
    with pytest.raises(Forbidden):
        service.update_task("b", {"config": {**ok["config"], "pg_dump_path": "/tmp/evil"}}, actor="api")


def test_a_hand_over_records_the_results_that_freed_the_workers_before_it_starts_the_next_runs(service, store):
    """The embedded pool's one transaction per hand-over: the results first (a failure schedules
    its retry, the events keep their order), then the due runs for the freed workers."""
    for name in ("a", "b", "c"):
        service.create_task({"name": name, "type": "debug.noop", "max_retries": 1}, actor="t")
    first, second, third = (service.trigger(name, actor="t")["id"] for name in ("a", "b", "c"))
    other = lifecycle.WorkerIdentity(host="test", pid=2, pgid=2)
    assert ids(lifecycle.start_due_runs(store, [WORKER, other], queues=None, dispatcher="test")) == [first, second]
    ended = datetime.now(UTC)
    results = [
        lifecycle.Finish(first, "completed", "ok", {"outcome": "ok"}, "done", None, ended),
        lifecycle.Finish(second, "failed", None, None, None, "boom", ended),
    ]
    handout = lifecycle.start_due_runs(store, [WORKER], queues=None, dispatcher="test", finishing=results)
    assert ids(handout) == [third]
    runs = {run.id: run for name in ("a", "b", "c") for run in task_runs(store, name)}
    assert (runs[first].status, runs[second].status, runs[third].status) == ("completed", "failed", "running")
    assert runs[first].finished_at == ended and runs[third].worker == "test:1"
    assert events(store, first) == ["started", "finished"]
    assert events(store, second) == ["started", "finished", "retry_scheduled"]
    assert [run.status for run in task_runs(store, "b")] == ["failed", "pending"]  # its retry, not yet due


def test_claim_and_finish_leave_the_same_history_on_both_stores(service, store):
    """On PostgreSQL the claim (with its deadline and ``started`` event) and a completed run's
    finish (with its ``finished`` event and the task's summary) are one statement each; on SQLite
    several. Both write exactly this."""
    service.create_task({"name": "timed", "type": "debug.noop", "timeout_seconds": 90}, actor="t")
    run_id = service.trigger("timed", actor="t")["id"]
    with store.write() as s:  # as if the run had been asked for under another name
        s.execute(sa.update(Run).where(Run.id == run_id).values(requested_type="debug.nothing"))
    claimed = lifecycle.claim(store, run_id, WORKER)
    assert claimed.deadline_at == claimed.started_at + timedelta(seconds=90)
    assert lifecycle.finish_many(store, [lifecycle.Finish(run_id, "completed", "warning", {"n": 1}, "all good")]) == [
        True
    ]
    assert lifecycle.finish_many(store, [lifecycle.Finish(run_id, "completed", "ok", None, "again")]) == [False]
    with store.read() as s:
        run = s.get(Run, run_id)
        history = [
            (e.seq, e.level, e.event, e.message, e.data, e.ts)
            for e in s.execute(sa.select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)).scalars()
        ]
        task = s.execute(sa.select(ScheduledTask).where(ScheduledTask.name == "timed")).scalar_one()
    assert (run.status, run.outcome, run.result, run.summary, run.progress) == (
        "completed",
        "warning",
        {"n": 1},
        "all good",
        1.0,
    )
    assert run.deadline_at == claimed.deadline_at and run.event_count == 2
    assert history == [
        (
            1,
            "info",
            "started",
            "attempt 1 of debug.noop (requested as alias debug.nothing) on test:1",
            {"worker": "test:1", "attempt": 1, "alias": "debug.nothing"},
            run.started_at,
        ),
        (2, "info", "finished", "completed: all good", {"status": "completed", "outcome": "warning"}, run.finished_at),
    ]
    assert (task.last_run_id, task.last_status, task.last_outcome) == (run_id, "completed", "warning")
    assert task.last_run_at == run.started_at and task.last_success_at == run.finished_at
    assert task.last_duration_seconds == pytest.approx((run.finished_at - run.started_at).total_seconds(), abs=1e-6)
    assert task.consecutive_failures == 0
