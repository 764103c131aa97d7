"""The alert rules as pure functions: (alert state, what happened, notify spec, now) -> decision.

The state is kept per (task, channel) in the ``alert_state`` table:

- ``state``: ``ok`` | ``failing`` | ``warning`` | ``critical`` | ``overdue``;
- ``consecutive_failures``: final failures in a row (a failed attempt that is retried does not count);
- ``last_sent_at``: when the current state was last announced on this channel, None when it was
  not (silenced, or below ``after_consecutive_failures``). A recovery is announced only when the
  problem was.

Rules (``NotifySpec`` fields in brackets):

- a failed or timed-out run alerts only after its final retry [``on_failure``], and only once
  ``consecutive_failures`` reaches [``after_consecutive_failures``]; entering ``failing`` sends one
  alert, and while it stays failing a further failing run repeats it at most every
  [``repeat_interval``] (default 4 h);
- a completed run whose outcome is listed in [``on_outcome``] enters that state the same way
  (a change between warning and critical alerts at once);
- the first completed run that is not a problem after an announced problem sends one recovery
  [``on_recovery``];
- an overdue task alerts once per overdue episode [``on_overdue``], and only from ``ok`` (a task
  already announced as failing is not announced again as overdue); when the episode ends the state
  goes back to ``ok`` (with a recovery when the overdue alert was sent).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from upkeep.engine.taskspec import NotifySpec, parse_duration
from upkeep.store.models import FAILED_STATUSES

OK, FAILING, WARNING, CRITICAL, OVERDUE = "ok", "failing", "warning", "critical", "overdue"
PROBLEM_STATES = (FAILING, WARNING, CRITICAL, OVERDUE)


@dataclass(frozen=True)
class State:
    state: str = OK
    consecutive_failures: int = 0
    last_sent_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What to do: ``kind`` is None (send nothing) or failure|outcome|recovery|overdue."""

    new: State
    kind: str | None = None
    repeat: bool = False

    @property
    def send(self) -> bool:
        return self.kind is not None


def repeat_seconds(spec: NotifySpec) -> float:
    try:
        return parse_duration(spec.repeat_interval)
    except ValueError:
        return 4 * 3600.0


def _enter_or_repeat(prev: State, target: str, kind: str, spec: NotifySpec, now: datetime, count: int) -> Decision:
    if prev.state == target:
        due = prev.last_sent_at is None or now - prev.last_sent_at >= timedelta(seconds=repeat_seconds(spec))
        new = replace(prev, consecutive_failures=count)
        return Decision(new, kind if due else None, repeat=due and prev.last_sent_at is not None)
    return Decision(State(target, count, None), kind)


def on_run(
    prev: State, spec: NotifySpec, status: str, outcome: str | None, *, retrying: bool, now: datetime
) -> Decision:
    """The decision for one finished run of the task."""
    if retrying or status not in (*FAILED_STATUSES, "completed"):
        return Decision(prev)  # cancelled, skipped, or an attempt that will be retried
    if status in FAILED_STATUSES:
        count = prev.consecutive_failures + 1
        if not spec.on_failure or count < spec.after_consecutive_failures:
            return Decision(replace(prev, consecutive_failures=count))
        return _enter_or_repeat(prev, FAILING, "failure", spec, now, count)
    if outcome in spec.on_outcome:
        return _enter_or_repeat(prev, outcome, "outcome", spec, now, 0)
    announced = prev.state != OK and prev.last_sent_at is not None
    if announced and spec.on_recovery:
        return Decision(State(OK, 0, None), "recovery")
    return Decision(State(OK, 0, None))


def on_overdue_check(prev: State, spec: NotifySpec, overdue: bool) -> Decision:
    """The decision for the periodic overdue check of one task."""
    if overdue:
        if spec.on_overdue and prev.state == OK:
            return Decision(State(OVERDUE, prev.consecutive_failures, None), "overdue")
        return Decision(prev)
    if prev.state == OVERDUE:
        if prev.last_sent_at is not None and spec.on_recovery:
            return Decision(State(OK, prev.consecutive_failures, None), "recovery")
        return Decision(State(OK, prev.consecutive_failures, None))
    return Decision(prev)


def after_send(decision: Decision, now: datetime, *, delivered: bool) -> State:
    """The state to store: ``last_sent_at`` moves only when the message was handed to the channel."""
    if decision.send and delivered:
        if decision.new.state == OK:
            return replace(decision.new, last_sent_at=None)
        return replace(decision.new, last_sent_at=now)
    return decision.new
