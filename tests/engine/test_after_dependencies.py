"""Dependencies between tasks (``after:``): the lifecycle creates the dependent run in the
transaction that ends the upstream run, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa

from upkeep.app import Upkeep
from upkeep.engine import lifecycle
from upkeep.engine.scheduler import tick
from upkeep.errors import ConfigError, Conflict
from upkeep.settings import Settings
from upkeep.store.models import Run, RunEvent

WORKER = lifecycle.WorkerIdentity(host="test", pid=1, pgid=1)


@pytest.fixture
def service(store, tmp_path):
    return Upkeep(Settings(config=tmp_path / "upkeep.yaml"), store)


def task(service, name: str, **fields) -> None:
    service.create_task({"name": name, "type": "debug.noop", **fields}, actor="t")


def runs_of(store, name: str) -> list[Run]:
    with store.read() as s:
        return list(s.execute(sa.select(Run).where(Run.task_name == name).order_by(Run.id)).scalars())


def events_of(store, run_id: int) -> list[RunEvent]:
    with store.read() as s:
        query = sa.select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)
        return list(s.execute(query).scalars())


def run_to_end(service, store, name: str, status: str = "completed", outcome: str | None = "ok", **kw) -> int:
    run_id = service.trigger(name, actor="t", **kw)["id"]
    assert lifecycle.claim(store, run_id, WORKER) is not None
    assert lifecycle.finish(store, run_id, status, outcome=outcome if status == "completed" else None)
    return run_id


def test_a_chain_runs_once_per_success_and_records_its_trigger(service, store):
    task(service, "backup")
    task(service, "verify", concurrency="allow", after={"tasks": ["backup"], "on": "success"})
    first = run_to_end(service, store, "backup")
    second = run_to_end(service, store, "backup")
    verify = runs_of(store, "verify")
    assert [r.trigger_run_id for r in verify] == [first, second]
    assert all(r.origin == "dependency" and r.status == "pending" for r in verify)
    assert verify[0].upstream_runs[0]["run_id"] == first and verify[0].upstream_runs[0]["task"] == "backup"
    assert verify[0].triggered_by == f"after run {first} of backup"
    assert [e.event for e in events_of(store, verify[0].id)] == ["dependency"]
    assert "dependent" in [e.event for e in events_of(store, first)]


def test_on_success_ignores_failures_and_on_failure_waits_for_the_last_retry(service, store):
    task(service, "backup", max_retries=1, retry_backoff_seconds=0)
    task(service, "verify", after={"tasks": ["backup"], "on": "success"})
    task(service, "cleanup", after={"tasks": ["backup"], "on": "failure"})
    task(service, "report", after={"tasks": ["backup"], "on": "completion"})
    failed = run_to_end(service, store, "backup", "failed")
    # the failed attempt is retried: nothing follows it yet
    assert runs_of(store, "verify") == runs_of(store, "cleanup") == runs_of(store, "report") == []
    (retry,) = [r for r in runs_of(store, "backup") if r.retry_of == failed]
    assert lifecycle.claim(store, retry.id, WORKER) is not None
    assert lifecycle.finish(store, retry.id, "failed", error="disk full")
    assert runs_of(store, "verify") == []
    assert [r.trigger_run_id for r in runs_of(store, "cleanup")] == [retry.id]
    assert [r.trigger_run_id for r in runs_of(store, "report")] == [retry.id]


def test_a_critical_outcome_is_a_failure_and_a_dry_run_triggers_nothing(service, store):
    task(service, "check")
    task(service, "fix", after={"tasks": ["check"], "on": "failure"})
    task(service, "after_any", after={"tasks": ["check"], "on": "completion"})
    run_to_end(service, store, "check", dry_run=True)
    assert runs_of(store, "fix") == runs_of(store, "after_any") == []
    critical = run_to_end(service, store, "check", outcome="critical")
    assert [r.trigger_run_id for r in runs_of(store, "fix")] == [critical]
    cancelled = service.trigger("check", actor="t")["id"]
    lifecycle.cancel(store, cancelled)
    assert len(runs_of(store, "after_any")) == 1  # a cancelled run triggers nothing


def test_a_fan_in_runs_once_when_each_listed_task_has_a_newer_run(service, store):
    task(service, "backup")
    task(service, "vacuum")
    task(service, "report", concurrency="allow", after={"tasks": ["backup", "vacuum"], "within": "6h"})
    b1 = run_to_end(service, store, "backup")
    assert runs_of(store, "report") == []
    v1 = run_to_end(service, store, "vacuum")
    (first,) = runs_of(store, "report")
    assert first.trigger_run_id == v1
    assert {(u["task"], u["run_id"]) for u in first.upstream_runs} == {("backup", b1), ("vacuum", v1)}
    run_to_end(service, store, "vacuum")  # backup has no newer run yet
    assert len(runs_of(store, "report")) == 1
    b2 = run_to_end(service, store, "backup")
    second = runs_of(store, "report")[-1]
    assert len(runs_of(store, "report")) == 2 and second.trigger_run_id == b2


def test_forbid_turns_the_dependent_run_into_a_skipped_run_saying_why(service, store):
    task(service, "backup")
    task(service, "verify", after={"tasks": ["backup"]})
    run_to_end(service, store, "backup")
    (pending,) = runs_of(store, "verify")
    second = run_to_end(service, store, "backup")
    skipped = runs_of(store, "verify")[-1]
    assert skipped.status == "skipped" and skipped.trigger_run_id == second
    assert f"run {pending.id} of this task is still pending (concurrency forbid)" in skipped.summary


def test_replace_cancels_the_active_run(service, store):
    task(service, "backup")
    task(service, "verify", concurrency="replace", after={"tasks": ["backup"]})
    run_to_end(service, store, "backup")
    run_to_end(service, store, "backup")
    old, new = runs_of(store, "verify")
    assert old.status == "cancelled" and f"replaced by run {new.id}" in old.error
    assert new.status == "pending"


def test_a_disabled_dependent_task_gets_no_run(service, store):
    task(service, "backup")
    task(service, "verify", enabled=False, after={"tasks": ["backup"]})
    run_to_end(service, store, "backup")
    assert runs_of(store, "verify") == []


def test_cycles_and_unknown_names_are_refused_with_the_path(service, store):
    task(service, "a")
    task(service, "b", after={"tasks": ["a"]})
    task(service, "c", after={"tasks": ["b"]})
    with pytest.raises(ConfigError, match="cycle: a → b → c → a"):
        service.update_task("a", {"after": {"tasks": ["c"]}}, actor="t")
    with pytest.raises(ConfigError, match="'nope', which is no task"):
        task(service, "d", after={"tasks": ["nope"]})
    with pytest.raises(ConfigError, match="names the task itself"):
        task(service, "e", after={"tasks": ["e"]})
    with pytest.raises(Conflict, match="after: of 'b'"):
        service.delete_task("a", actor="t")
    view = service.get_task("b")
    assert view["upstream"] == ["a"] and view["downstream"] == ["c"]


@pytest.mark.parametrize(
    "after, message",
    [
        ({"tasks": []}, "tasks"),
        ({"tasks": ["a"], "on": "sometimes"}, "on"),
        ({"tasks": ["a"], "within": "0s"}, "within"),
        ({"tasks": ["a"], "within": "40d"}, "at most 30d"),
        ({"tasks": ["a", "a"]}, "names a task twice"),
        ({"tasks": [f"t{i}" for i in range(21)]}, "tasks"),
    ],
)
def test_after_is_validated_with_bounds(service, after, message):
    with pytest.raises(ConfigError, match=message):
        task(service, "x", after=after)


def test_fan_in_finishing_together_starts_exactly_one_run(service, store):
    """Runs of both upstream tasks end at the same moment in separate transactions, many times."""
    task(service, "a", concurrency="allow")
    task(service, "b", concurrency="allow")
    task(service, "c", concurrency="allow", after={"tasks": ["a", "b"], "within": "1h"})
    rounds = 15
    for _ in range(rounds):
        ids = []
        for name in ("a", "b"):
            run_id = service.trigger(name, actor="t")["id"]
            assert lifecycle.claim(store, run_id, WORKER) is not None
            ids.append(run_id)
        barrier = threading.Barrier(2)

        def end(run_id: int, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            lifecycle.finish(store, run_id, "completed", outcome="ok")

        threads = [threading.Thread(target=end, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    fan_ins = runs_of(store, "c")
    assert len(fan_ins) == rounds
    consumed = [u["run_id"] for r in fan_ins for u in r.upstream_runs]
    assert len(consumed) == len(set(consumed)) == 2 * rounds


def test_a_dependent_task_keeps_its_own_schedule(service, store):
    task(service, "backup")
    task(service, "verify", schedule="@every 1h", concurrency="allow", after={"tasks": ["backup"]})
    first = run_to_end(service, store, "backup")
    slot = service.get_task("verify")["next_run_at"]
    assert slot is not None
    tick(store, datetime.fromisoformat(slot))
    origins = sorted((r.origin, r.trigger_run_id) for r in runs_of(store, "verify"))
    assert origins == [("dependency", first), ("scheduled", None)]
