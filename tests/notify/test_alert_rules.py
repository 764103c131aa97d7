"""The alert rules as pure functions: episodes, repeats, thresholds, recovery, overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from upkeep.engine.taskspec import NotifySpec
from upkeep.notify import rules
from upkeep.notify.rules import State, after_send, on_overdue_check, on_run

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def step(prev: State, spec: NotifySpec, status: str, outcome: str | None = None, *, at=T0, retrying=False):
    decision = on_run(prev, spec, status, outcome, retrying=retrying, now=at)
    return decision.kind, after_send(decision, at, delivered=True)


def test_a_retried_attempt_changes_nothing():
    kind, state = step(State(), NotifySpec(), "failed", retrying=True)
    assert kind is None and state == State()


def test_one_failure_alert_per_episode_and_a_reminder_after_the_repeat_interval():
    spec = NotifySpec(repeat_interval="4h")
    kind, state = step(State(), spec, "timed_out")
    assert kind == "failure" and state.state == rules.FAILING and state.last_sent_at == T0
    kind, state = step(state, spec, "failed", at=T0 + timedelta(hours=3, minutes=59))
    assert kind is None and state.last_sent_at == T0 and state.consecutive_failures == 2
    decision = on_run(state, spec, "failed", None, retrying=False, now=T0 + timedelta(hours=4))
    assert decision.kind == "failure" and decision.repeat


def test_after_consecutive_failures_waits_for_the_nth_final_failure_and_no_recovery_before_it():
    spec = NotifySpec(after_consecutive_failures=3)
    kind, state = step(State(), spec, "failed")
    kind2, state = step(state, spec, "failed")
    assert (kind, kind2, state.state, state.consecutive_failures) == (None, None, "ok", 2)
    kind, recovered = step(state, spec, "completed", "ok")
    assert kind is None and recovered == State()  # nothing was announced, so nothing recovers
    kind, state = step(state, spec, "failed")
    assert kind == "failure" and state.consecutive_failures == 3


def test_outcomes_alert_on_change_and_recover_on_a_non_problem_outcome():
    spec = NotifySpec(on_outcome=["warning", "critical"])
    kind, state = step(State(), spec, "completed", "warning")
    assert kind == "outcome" and state.state == "warning"
    kind, state = step(state, spec, "completed", "critical")
    assert kind == "outcome" and state.state == "critical"
    kind, state = step(state, spec, "completed", "ok")
    assert kind == "recovery" and state == State()


def test_a_warning_counts_as_recovery_when_only_critical_is_watched():
    kind, state = step(State(), NotifySpec(), "completed", "critical")
    assert kind == "outcome"
    kind, state = step(state, NotifySpec(), "completed", "warning")
    assert kind == "recovery"


def test_on_failure_false_and_on_recovery_false_are_honoured():
    kind, state = step(State(), NotifySpec(on_failure=False), "failed")
    assert kind is None
    kind, state = step(State(), NotifySpec(on_recovery=False), "failed")
    kind, state = step(state, NotifySpec(on_recovery=False), "completed", "ok")
    assert kind is None and state.state == "ok"


def test_a_suppressed_alert_moves_the_state_without_marking_it_announced():
    decision = on_run(State(), NotifySpec(), "failed", None, retrying=False, now=T0)
    state = after_send(decision, T0, delivered=False)
    assert state.state == rules.FAILING and state.last_sent_at is None
    # the next failure (say, after the silence ended) alerts at once
    assert on_run(state, NotifySpec(), "failed", None, retrying=False, now=T0 + timedelta(minutes=5)).kind == "failure"


def test_overdue_alerts_once_and_does_not_override_a_failure():
    spec = NotifySpec()
    decision = on_overdue_check(State(), spec, True)
    state = after_send(decision, T0, delivered=True)
    assert decision.kind == "overdue" and state.state == "overdue"
    assert on_overdue_check(state, spec, True).kind is None
    ended = on_overdue_check(state, spec, False)
    assert ended.kind == "recovery" and ended.new.state == "ok"
    failing = State(rules.FAILING, 1, T0)
    assert on_overdue_check(failing, spec, True).kind is None
    assert on_overdue_check(State(), NotifySpec(on_overdue=False), True).kind is None
