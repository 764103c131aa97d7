"""Heartbeat alerts: the alerter's evaluation of monitors, in its transaction, with the task rules.

Each evaluation (``evaluate``, called by ``Alerter.evaluate_once``):

1. closes every ``/start`` whose end did not come by its deadline: a ``timeout`` ping is recorded
   and the monitor's run counts as failed;
2. applies ``rules.on_run`` to each end ping not evaluated yet, in the order received: a success
   is a completed run with outcome ok, a failure (``/fail``, a non-zero exit status) or a timeout
   a failed one; then marks them evaluated. A paused monitor's pings are marked, nothing alerts;
3. applies ``rules.on_overdue_check`` to every monitor past slot + grace (``state.is_overdue``),
   and to those announced overdue before (so the episode can end): one alert per episode.

Alert state, alerts and the outbox are the tasks' own, under the name ``heartbeat/NAME``; a
silence matching ``heartbeat: NAME`` holds a monitor's alerts. Every ``PRUNE`` evaluation keeps only
the newest ``KEEP_PINGS`` evaluated pings of each monitor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.clock import format_time, format_when
from upkeep.heartbeats.spec import format_duration
from upkeep.heartbeats.state import ALERT_PREFIX, END_KINDS, alert_name, effective_timeout, expectation, is_overdue
from upkeep.notify import rules
from upkeep.notify.evaluation import Evaluation, WithRun
from upkeep.notify.messages import NOTIFY_TYPE, Message, _clip
from upkeep.notify.silences import Subject
from upkeep.secrets import scrub
from upkeep.store.models import AlertState, Heartbeat, HeartbeatPing

KEEP_PINGS = 100  # per monitor, as Healthchecks keeps
BATCH = 5000  # end pings evaluated per evaluation (the rest wait for the next one)
RUN_STATUS = {"success": "completed", "fail": "failed", "timeout": "timed_out"}
_ANY_MONITOR = sa.select(Heartbeat.id).limit(1)


class _Monitor:
    """A monitor as ``Evaluation`` addresses a task: id, alert name, notify section."""

    def __init__(self, row: Heartbeat):
        self.row = row
        self.id = row.id
        self.name = alert_name(row.name)
        self.notify = row.notify
        self.task_type = "heartbeat"
        self.config: dict = {}  # no config of its own: the instance's secrets are all there is to scrub
        self.subject = Subject(name=self.name, heartbeat=row.name)


def evaluate(
    alerter: Any, s: Session, now: datetime, channels: dict, silences: list, suppressed: list, *, prune: bool
) -> None:
    if s.execute(_ANY_MONITOR).first() is None:
        # deleting a monitor deletes its pings and alert state: with none there is nothing to close,
        # evaluate or prune, and the five queries below would hold the write lock for nothing
        return
    _close_timed_out_starts(s, now)
    pings = list(
        s.execute(
            sa.select(HeartbeatPing)
            .where(HeartbeatPing.evaluated_at.is_(None), HeartbeatPing.kind.in_(END_KINDS))
            .order_by(HeartbeatPing.received_at, HeartbeatPing.id)
            .limit(BATCH)
        ).scalars()
    )
    announced = set(
        s.execute(
            sa.select(AlertState.task_name).where(
                AlertState.task_name.like(f"{ALERT_PREFIX}%"), AlertState.state == rules.OVERDUE
            )
        ).scalars()
    )
    names = [n[len(ALERT_PREFIX) :] for n in announced]
    rows = s.execute(
        sa.select(Heartbeat).where(
            sa.or_(
                Heartbeat.id.in_({p.heartbeat_id for p in pings}),
                Heartbeat.name.in_(names),
                sa.and_(Heartbeat.paused.is_(False), Heartbeat.started_at.is_(None), Heartbeat.overdue_at < now),
            )
        )
    ).scalars()
    monitors = {row.id: _Monitor(row) for row in rows}
    states = {
        (row.task_name, row.channel): row
        for row in s.execute(
            sa.select(AlertState).where(AlertState.task_name.in_([m.name for m in monitors.values()]))
        ).scalars()
    }
    evaluation = Evaluation(
        alerter, s, now, channels, silences, states, suppressed, loaded={m.name for m in monitors.values()}
    )
    for ping in pings:
        monitor = monitors.get(ping.heartbeat_id)
        if monitor is not None and not monitor.row.paused:
            _ended(evaluation, monitor, ping)
        ping.evaluated_at = now
    for monitor in sorted(monitors.values(), key=lambda m: m.row.name):
        if monitor.row.paused:
            continue
        overdue = is_overdue(monitor.row, now)
        if overdue or monitor.name in announced:
            _overdue(evaluation, monitor, overdue)
    evaluation.save()
    if prune:
        _prune(s)


def _close_timed_out_starts(s: Session, now: datetime) -> None:
    """Every /start past its deadline becomes a failed run, recorded as a ``timeout`` ping."""
    due = s.execute(
        sa.select(
            Heartbeat.id,
            Heartbeat.schedule,
            Heartbeat.timezone,
            Heartbeat.grace_seconds,
            Heartbeat.started_at,
            Heartbeat.start_deadline_at,
        ).where(Heartbeat.start_deadline_at < now)
    ).all()
    for row in due:
        deadline = row.start_deadline_at
        expected_at, overdue_at = expectation(row.schedule, row.timezone, row.grace_seconds, deadline)
        closed = s.execute(
            sa.update(Heartbeat)
            .where(Heartbeat.id == row.id, Heartbeat.started_at == row.started_at)  # an end ping may have won
            .values(
                started_at=None,
                start_deadline_at=None,
                last_failure_at=deadline,
                last_exit_status=None,
                expected_at=expected_at,
                overdue_at=overdue_at,
            )
        )
        if closed.rowcount:
            s.add(HeartbeatPing(heartbeat_id=row.id, received_at=deadline, kind="timeout", method="", body=""))
    s.flush()


def _ended(evaluation: Evaluation, monitor: _Monitor, ping: HeartbeatPing) -> None:
    spec = evaluation.spec(monitor)
    outcome = "ok" if ping.kind == "success" else None
    for channel in evaluation.channel_names(monitor, spec):
        prev = evaluation.state(monitor.name, channel)
        decision = rules.on_run(prev, spec, RUN_STATUS[ping.kind], outcome, retrying=False, now=evaluation.now)

        def message(decision=decision):
            msg = ended_message(decision.kind or "", monitor.row, ping, evaluation.alerter.link_base)
            secrets = evaluation.secrets(monitor)  # the output a job sent may hold one
            return WithRun(Message(scrub(msg.title, secrets), scrub(msg.body, secrets), msg.notify_type), None)

        evaluation.apply(monitor, channel, decision, message)


def _overdue(evaluation: Evaluation, monitor: _Monitor, overdue: bool) -> None:
    spec = evaluation.spec(monitor)
    for channel in evaluation.channel_names(monitor, spec):
        decision = rules.on_overdue_check(evaluation.state(monitor.name, channel), spec, overdue)

        def message():
            msg = overdue_message(monitor.row, evaluation.alerter.link_base, ended=not overdue, now=evaluation.now)
            return WithRun(msg, None)

        evaluation.apply(monitor, channel, decision, message)


def _prune(s: Session) -> None:
    rank = (
        sa.func.row_number()
        .over(partition_by=HeartbeatPing.heartbeat_id, order_by=HeartbeatPing.id.desc())
        .label("rank")
    )
    ranked = sa.select(HeartbeatPing.id, rank).subquery()
    s.execute(
        sa.delete(HeartbeatPing).where(
            HeartbeatPing.evaluated_at.is_not(None),
            HeartbeatPing.id.in_(sa.select(ranked.c.id).where(ranked.c.rank > KEEP_PINGS)),
        )
    )


# --- messages -----------------------------------------------------------------------------------


def _link(link_base: str, name: str) -> str:
    return f"{link_base}/heartbeats/{name}"


def ended_message(kind: str, row: Heartbeat, ping: HeartbeatPing, link_base: str) -> Message:
    """The message for an end ping: ``failure`` or ``recovery``."""
    when = format_time(ping.received_at, row.timezone)  # the monitor's schedule zone, labelled
    if ping.kind == "timeout":
        timeout = format_duration(effective_timeout(row.timeout_seconds, row.grace_seconds))
        what, detail = "did not finish", f"The job started and did not report its end within {timeout} (by {when})."
    elif ping.kind == "fail":
        code = f" (exit status {ping.exit_status})" if ping.exit_status is not None else ""
        what = f"failed{code}"
        detail = f"The job reported a failure{code} at {when}" + (f" from {ping.source}." if ping.source else ".")
    else:
        what, detail = "succeeded", f"The job reported a success at {when}."
    if kind == "recovery":
        title = f"[upkeep] RESOLVED heartbeat {row.name}: ok again"
        severity = "RESOLVED"
    else:
        title = f"[upkeep] CRITICAL heartbeat {row.name}: {what}"
        severity = "CRITICAL"
    lines = [f"Heartbeat: {row.name} ({row.schedule}, {row.timezone})", detail]
    if ping.body.strip():
        lines += ["Output:", _clip(ping.body[-1000:], 1000)]
    lines.append(f"Monitor: {_link(link_base, row.name)}")
    return Message(title, "\n".join(lines), NOTIFY_TYPE[severity])


def overdue_message(row: Heartbeat, link_base: str, *, ended: bool, now: datetime | None = None) -> Message:
    """Times in the monitor's schedule zone, labelled, and (given ``now``) how long ago."""
    link = _link(link_base, row.name)
    if ended:
        return Message(
            f"[upkeep] RESOLVED heartbeat {row.name}: no longer overdue",
            f"Heartbeat: {row.name}\nThe job reported again.\nMonitor: {link}",
            "success",
        )
    since = format_when(row.last_ping_at, now, row.timezone) if row.last_ping_at else "the monitor was created"
    expected = format_when(row.expected_at, now, row.timezone) if row.expected_at else "?"
    grace = format_duration(row.grace_seconds)
    late = ""
    if row.expected_at is not None and row.overdue_at is not None:
        late = f" It was due by {expected}; its grace of {grace} ended {format_time(row.overdue_at, row.timezone)}."
    return Message(
        f"[upkeep] WARNING heartbeat {row.name}: overdue",
        f"Heartbeat: {row.name} ({row.schedule}, {row.timezone})\nNo ping since {since}.{late}\n"
        f"upkeep alerts once per overdue episode.\nMonitor: {link}",
        "warning",
    )
