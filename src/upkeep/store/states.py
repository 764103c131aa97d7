"""A run's states as words: its status (the lifecycle's), its outcome (what a completed run found) and
its origin, with the sets and the ranks made from them. Plain enums, no SQLAlchemy: the handlers
rank outcomes with these without loading the store (``upkeep.store.models`` names them too).
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """What happened to a run's execution. Terminal ones never change again.

    ``waiting`` is active but has no worker (an approval or a checklist holds it): nothing
    dispatches it and the reaper never judges it; only the lifecycle's ``resume`` or ``cancel``
    moves it on.
    """

    PENDING = "pending"
    WAITING = "waiting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """What a completed run found (Nagios-style)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


class Origin(StrEnum):
    """Why a run exists, as stored in ``runs.origin``."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    TIER = "tier"
    RETRY = "retry"
    PROCEDURE = "procedure"
    DEPENDENCY = "dependency"  # created when the runs of the tasks named in its ``after:`` finished


PENDING, WAITING, SUBMITTED, RUNNING = RunStatus.PENDING, RunStatus.WAITING, RunStatus.SUBMITTED, RunStatus.RUNNING
COMPLETED, FAILED, CANCELLED = RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED
TIMED_OUT, SKIPPED = RunStatus.TIMED_OUT, RunStatus.SKIPPED
# plain strings: these tuples feed SQL IN lists, Literal types and JSON schemas
ACTIVE_STATUSES = tuple(s.value for s in (PENDING, WAITING, SUBMITTED, RUNNING))
TERMINAL_STATUSES = tuple(s.value for s in (COMPLETED, FAILED, CANCELLED, TIMED_OUT, SKIPPED))
ALL_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES
FAILED_STATUSES = (FAILED.value, TIMED_OUT.value)  # the run did not do its job: it crashed or ran out of time
FINISHED_STATUSES = (COMPLETED.value, FAILED.value, TIMED_OUT.value, CANCELLED.value)  # ended after it was due
OUTCOMES = tuple(o.value for o in Outcome)
OUTCOME_RANK = {o.value: rank for rank, o in enumerate(Outcome)}  # ok < warning < critical
ORIGINS = tuple(o.value for o in Origin)
