"""The run lifecycle: the one owner of every write to a run.

Named operations, no "update this run with these fields": ``create`` (with a ``Trigger``),
``dispatch_due_runs``/``start_due_runs``/``dispatch_to``, ``claim``, ``heartbeat``/``heartbeat_many``,
``finish``, ``cancel``, ``requeue``, ``recover``, ``wait``/``resume``. What each writes besides
the run (events, the task's summary, retries, lock release and the waiters it wakes) is decided
in ``rules``, once, for both implementations:

- ``sql`` (re-exported here): the store, SQLite and PostgreSQL, one conditional UPDATE per
  transition so two workers can never both run a run;
- ``memory.MemoryLifecycle``: the same operations on plain objects, for fast tests of the parts
  that drive runs.

Nothing outside this package executes a statement that changes ``runs`` (migrations aside);
``tests/engine/test_lifecycle_ownership.py`` checks it.
"""

from upkeep.engine.lifecycle.events import append_event
from upkeep.engine.lifecycle.rules import Trigger
from upkeep.engine.lifecycle.sql import (
    cancel,
    cancel_in_session,
    cancel_requested,
    cancel_requests,
    claim,
    create,
    delete_ended,
    dispatch_due_runs,
    dispatch_to,
    event,
    finish,
    finish_many,
    heartbeat,
    heartbeat_many,
    insert_scheduled_runs,
    progress,
    recover,
    requeue,
    resume,
    resume_in_session,
    run_values,
    start_due_runs,
    wait,
)
from upkeep.engine.lifecycle.types import (
    HOSTNAME,
    ClaimedRun,
    Dispatched,
    Finish,
    Handout,
    LockBusy,
    WorkerIdentity,
    seconds_until,
)
from upkeep.store.states import Outcome, RunStatus

__all__ = [
    "HOSTNAME",
    "ClaimedRun",
    "Dispatched",
    "Finish",
    "Handout",
    "LockBusy",
    "Outcome",
    "RunStatus",
    "Trigger",
    "WorkerIdentity",
    "append_event",
    "heartbeat_many",
    "cancel",
    "cancel_in_session",
    "cancel_requested",
    "cancel_requests",
    "claim",
    "create",
    "delete_ended",
    "dispatch_due_runs",
    "dispatch_to",
    "event",
    "finish",
    "finish_many",
    "heartbeat",
    "insert_scheduled_runs",
    "progress",
    "recover",
    "requeue",
    "resume",
    "resume_in_session",
    "run_values",
    "seconds_until",
    "start_due_runs",
    "wait",
]
