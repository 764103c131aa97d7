"""The in-memory lifecycle is the SQL lifecycle without a store.

Hypothesis drives both with the same random operation sequences (create, dispatch, claim, beat,
finish, cancel, requeue, recover, wait and resume, over tasks that share a mutex lock and retry)
and checks that every operation answers the same and that both end with the same runs, events,
locks and task summaries. On PostgreSQL this also covers the one-statement claim and finish.

Run ids are compared by rank: PostgreSQL spends a sequence value on a scheduled run refused as a
duplicate, so its ids may skip where SQLite's and memory's do not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from upkeep.engine.lifecycle import Trigger, WorkerIdentity
from upkeep.engine.lifecycle.memory import MemoryLifecycle
from upkeep.engine.lifecycle.sql import SqlLifecycle
from upkeep.store.models import Run, RunEvent, RunLock, ScheduledTask

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
TASKS = [
    # two tasks that share a lock, one that retries twice, one with a timeout
    SimpleNamespace(id=1, name="vacuum", queue="default", timeout_seconds=None, max_retries=1, locks=["db"]),
    SimpleNamespace(id=2, name="backup", queue="default", timeout_seconds=600.0, max_retries=0, locks=["db", "disk"]),
    SimpleNamespace(id=3, name="check", queue="fast", timeout_seconds=None, max_retries=2, locks=[]),
]
for t in TASKS:
    t.retry_backoff_seconds, t.retry_backoff_max_seconds = 5.0, 60.0
WORKERS = [WorkerIdentity("host-a", 101, 101), WorkerIdentity("host-b", 202, 202)]
TRIGGERS = [Trigger.MANUAL, Trigger.SCHEDULED, Trigger.WAITING, Trigger.SKIPPED]
ENDINGS = [("completed", "ok"), ("completed", "critical"), ("failed", None), ("timed_out", None), ("cancelled", None)]
# weighted towards what makes interesting states: several runs, claims racing for the lock, ends
OPS = (
    ["create"] * 3
    + ["claim"] * 3
    + ["finish"] * 2
    + ["dispatch", "beat", "cancel", "requeue", "recover", "wait", "resume"]
)

# a run waits for the lock another holds, which wakes it when it ends
LOCK_WAIT_THEN_RELEASE = [("create", 0, 0), ("create", 1, 0), ("claim", 0, 0), ("claim", 1, 1), ("finish", 0, 0)]
# a failure retried twice, the retry recovered, then cancelled while pending
RETRIES_THEN_CANCEL = [
    ("create", 2, 0),
    ("claim", 0, 0),
    ("finish", 0, 2),
    ("claim", 1, 1),
    ("recover", 1, 0),
    ("cancel", 2, 1),
    ("dispatch", 0, 0),
]
operations = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(0, 30), st.integers(0, 4)),
    min_size=8,
    max_size=60,
)


def apply(lc, op: str, pick: int, variant: int, run_ids: list[int]):
    """Apply one operation; what it answered, as (run ids, the rest), without times (the two
    clocks differ)."""
    if op == "create" or not run_ids:
        task = TASKS[pick % len(TASKS)]
        trigger = TRIGGERS[variant % len(TRIGGERS)]
        slot = BASE + timedelta(minutes=pick % 3) if trigger in (Trigger.SCHEDULED, Trigger.SKIPPED) else None
        created = lc.create(
            trigger,
            task=task,
            task_type="debug.noop",
            config={"n": pick},
            due_at=BASE + timedelta(seconds=pick),
            scheduled_for=slot,
            summary="slot refused" if trigger == Trigger.SKIPPED else None,
        )
        return ([] if created is None else [created]), created is None
    run_id = run_ids[pick % len(run_ids)]
    if op == "dispatch":
        handout = lc.dispatch_due_runs(limit=50, queues=None, worker="dispatcher:1", now=BASE + timedelta(days=1))
        return sorted(item.id for item in handout.items), None
    if op == "claim":
        claimed = lc.claim(run_id, WORKERS[variant % len(WORKERS)])
        return ([], None) if claimed is None else ([claimed.id], (claimed.attempt, claimed.deadline_at is not None))
    if op == "beat":
        return [], lc.heartbeat(run_id)
    if op == "finish":
        status, outcome = ENDINGS[variant % len(ENDINGS)]
        return [], lc.finish(run_id, status, outcome=outcome, summary=f"ended {variant}", error=None)
    if op == "cancel":
        return [], lc.cancel(run_id, None if variant % 2 else f"replaced ({variant})")
    if op == "requeue":
        return [], lc.requeue(run_id)
    if op == "recover":
        return [], lc.recover(run_id, "worker lost")
    if op == "wait":
        return [], lc.wait(run_id, "waiting for approval")
    return [], lc.resume(run_id, "approved")


RUN_FIELDS = [
    "id",
    "task_id",
    "task_name",
    "origin",
    "scheduled_for",
    "status",
    "outcome",
    "attempt",
    "retry_of",
    "config",
    "queue",
    "timeout_seconds",
    "max_retries",
    "locks",
    "summary",
    "error",
    "result",
    "progress",
    "progress_message",
    "worker",
    "worker_host",
    "worker_pid",
    "blocked_by_run_id",
    "event_count",
]
RUN_TIMES = ["started_at", "finished_at", "heartbeat_at", "cancel_requested_at", "submitted_at", "deadline_at"]
TASK_FIELDS = ["last_run_id", "last_status", "last_outcome", "consecutive_failures"]
TASK_TIMES = ["last_run_at", "last_success_at"]


def ranked(value, ids: list[int]):
    """A run id (or a text naming runs) with each id replaced by its rank among ``ids``."""
    rank = {run_id: index for index, run_id in enumerate(ids)}
    if isinstance(value, str):
        return re.sub(r"run (\d+)", lambda m: f"run #{rank.get(int(m.group(1)))}", value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"#{rank.get(value)}"
    return value


RANKED_KEYS = {"id", "retry_of", "blocked_by_run_id", "retry_run_id", "holder", "last_run_id"}


def renumbered(state: dict) -> dict:
    """A final state with run ids as ranks (keys, id columns, event data and messages)."""
    ids = sorted(state["runs"])

    def walk(value, key=None):
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(walk(v) for v in value)
        if key in RANKED_KEYS or isinstance(value, str):
            return ranked(value, ids)
        return value

    return {
        "runs": {ranked(k, ids): walk(v) for k, v in state["runs"].items()},
        "events": {ranked(k, ids): walk(v) for k, v in state["events"].items()},
        "tasks": walk(state["tasks"]),
        "locks": {k: ranked(v, ids) for k, v in state["locks"].items()},
    }


def store_run_ids(store) -> list[int]:
    with store.read_connection() as c:
        return list(c.execute(sa.select(Run.id).order_by(Run.id)).scalars())


def state_of_memory(lc: MemoryLifecycle) -> dict:
    runs = {r.id: _run_state(r) for r in lc.runs.values()}
    events = {r.id: [(e.seq, e.level, e.event, e.message, e.data) for e in r.events] for r in lc.runs.values()}
    tasks = {t.id: _task_state(t) for t in lc.tasks.values()}
    return {"runs": runs, "events": events, "tasks": tasks, "locks": dict(lc.locks)}


def state_of_store(store) -> dict:
    with store.read() as s:
        runs = {r.id: _run_state(r) for r in s.execute(sa.select(Run)).scalars()}
        events: dict[int, list] = {run_id: [] for run_id in runs}
        for e in s.execute(sa.select(RunEvent).order_by(RunEvent.run_id, RunEvent.seq)).scalars():
            events[e.run_id].append((e.seq, e.level, e.event, e.message, e.data))
        tasks = {t.id: _task_state(t) for t in s.execute(sa.select(ScheduledTask)).scalars()}
        locks = dict(s.execute(sa.select(RunLock.name, RunLock.run_id)).all())
    return {"runs": runs, "events": events, "tasks": tasks, "locks": locks}


def _run_state(run) -> dict:
    state = {name: getattr(run, name) for name in RUN_FIELDS}
    state["status"] = str(state["status"])
    return state | {name: getattr(run, name) is not None for name in RUN_TIMES}


def _task_state(task) -> dict:
    state = {name: getattr(task, name) for name in TASK_FIELDS}
    return state | {name: getattr(task, name) is not None for name in TASK_TIMES}


def reset(store) -> None:
    """An empty store with ids from 1 again, for the next example."""
    with store.write_connection() as c:
        if store.is_postgres:
            c.execute(sa.text("TRUNCATE run_events, run_locks, runs, scheduled_tasks RESTART IDENTITY CASCADE"))
        else:
            for table in ("run_events", "run_locks", "runs", "scheduled_tasks"):
                c.execute(sa.text(f"DELETE FROM {table}"))
        c.execute(
            sa.insert(ScheduledTask.__table__),
            [
                dict(
                    id=t.id,
                    name=t.name,
                    task_type="debug.noop",
                    queue=t.queue,
                    timeout_seconds=t.timeout_seconds,
                    max_retries=t.max_retries,
                    locks=t.locks,
                    retry_backoff_seconds=t.retry_backoff_seconds,
                    retry_backoff_max_seconds=t.retry_backoff_max_seconds,
                    consecutive_failures=0,
                    created_at=BASE,
                    updated_at=BASE,
                )
                for t in TASKS
            ],
        )


def memory_lifecycle() -> MemoryLifecycle:
    lc = MemoryLifecycle()
    for task in TASKS:
        lc.add_task(task)
    return lc


@pytest.mark.parametrize("examples", [100])
def test_memory_and_sql_lifecycles_answer_and_end_alike(store, examples):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations)
    @example(LOCK_WAIT_THEN_RELEASE)
    @example(RETRIES_THEN_CANCEL)
    def check(ops):
        reset(store)
        sql, memory = SqlLifecycle(store), memory_lifecycle()
        for step, (op, pick, variant) in enumerate(ops):
            sql_ids, answered = apply(sql, op, pick, variant, store_run_ids(store))
            memory_ids, expected = apply(memory, op, pick, variant, sorted(memory.runs))
            answered = ([ranked(i, store_run_ids(store)) for i in sql_ids], answered)
            expected = ([ranked(i, sorted(memory.runs)) for i in memory_ids], expected)
            assert answered == expected, f"step {step}: {op} answered {answered!r} in SQL, {expected!r} in memory"
        assert renumbered(state_of_store(store)) == renumbered(state_of_memory(memory))

    check()


def test_the_operations_reach_every_state():
    """The random sequences are worth something: they reach each status, retries and lock waits."""
    lc = memory_lifecycle()
    vacuum = lc.create(Trigger.MANUAL, task=TASKS[0], task_type="debug.noop", config={}, due_at=BASE)
    backup = lc.create(Trigger.MANUAL, task=TASKS[1], task_type="debug.noop", config={}, due_at=BASE)
    held = lc.create(Trigger.WAITING, task=TASKS[2], task_type="debug.noop", config={}, due_at=BASE)
    assert lc.claim(vacuum, WORKERS[0]) is not None
    assert lc.claim(backup, WORKERS[1]) is None  # vacuum holds "db"
    assert lc.run(backup).blocked_by_run_id == vacuum and lc.run(backup).status == "pending"
    assert lc.dispatch_due_runs(limit=10, queues=None, worker="d", now=BASE).items == []  # backup waits 2 s
    assert lc.recover(vacuum, "worker lost")  # fails, retried once, releases "db" and wakes backup
    assert lc.run(vacuum).status == "failed" and lc.run(backup).blocked_by_run_id is None
    assert [e.event for e in lc.run(vacuum).events] == ["started", "finished", "retry_scheduled"]
    assert lc.tasks[1].consecutive_failures == 0  # a retry is coming
    assert lc.run(held).status == "waiting" and not lc.requeue(held)
    assert lc.resume(held, "approved") and lc.run(held).status == "pending"
