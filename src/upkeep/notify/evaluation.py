"""One evaluation of the alerter (``Evaluation``): the rules applied per (subject, channel) against
``alert_state`` in the alerter's transaction, silences, alerts opened and resolved, escalation,
messages queued in the outbox. ``upkeep.notify.alerter`` runs it on finished runs and overdue
tasks; ``upkeep.notify.heartbeats`` and ``upkeep.notify.checklists`` on monitors and checklists.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from upkeep.engine.taskspec import NotifySpec
from upkeep.notify import alerts, rules
from upkeep.notify.channels import Channel
from upkeep.notify.messages import Message, overdue_message, run_message, task_secrets
from upkeep.notify.outbox import Notification, enqueue
from upkeep.notify.silences import Subject, held_by, matching_silence
from upkeep.secrets import scrub
from upkeep.store.models import COMPLETED, Alert, AlertState, Run, ScheduledTask
from upkeep.store.records import instance_secrets

log = logging.getLogger(__name__)

TASK_COLUMNS = (
    ScheduledTask.id,
    ScheduledTask.name,
    ScheduledTask.task_type,
    ScheduledTask.notify,
    ScheduledTask.ping_url,
    ScheduledTask.config,
    ScheduledTask.tiers,
    ScheduledTask.timezone,
)


class Routing:
    """Where the messages of a task (or a monitor standing in) go: its notify section, validated
    once per evaluation, and the configured channels. Needs no transaction: the alerter asks it
    which runs concern the rules before it takes the write lock."""

    def __init__(self, alerter: Any, channels: dict[str, Channel]):
        self.alerter, self.channels = alerter, channels
        self._specs: dict[int, NotifySpec] = {}
        self._default = NotifySpec()  # most tasks have no notify section: one spec for all of them

    def spec(self, task: Any) -> NotifySpec:
        if not task.notify:
            return self._default
        if task.id not in self._specs:
            try:
                self._specs[task.id] = NotifySpec.model_validate(task.notify)
            except ValidationError:
                log.warning("task %s has an invalid notify section; using the defaults", task.name)
                self._specs[task.id] = NotifySpec()
        return self._specs[task.id]

    def channel_names(self, task: Any, spec: NotifySpec | list[str]) -> list[str]:
        """The task's channels (or the default channels); names not configured are logged and skipped."""
        names = list(spec) if isinstance(spec, list) else list(spec.channels)
        names = names or [n for n, c in self.channels.items() if c.default]
        for name in names:
            if name not in self.channels and (task.name, name) not in self.alerter._unknown_warned:
                self.alerter._unknown_warned.add((task.name, name))
                log.warning(
                    "task %s notifies channel %r, which is not configured (channels: in upkeep.yaml)", task.name, name
                )
        return [n for n in names if n in self.channels]

    def concerns(self, task: Any) -> bool:
        """Whether a run of ``task`` can change an alert: it reaches a channel, or it reports
        inventory targets (which alert on their own channels). ``Evaluation.run_finished`` does
        nothing with the others."""
        from upkeep.notify.targets import REPORTING_TYPES

        return task.task_type in REPORTING_TYPES or bool(self.channel_names(task, self.spec(task)))


class Evaluation:
    """The alert decisions of one evaluation, applied to the loaded ``alert_state`` rows."""

    def __init__(
        self,
        alerter: Any,  # the Alerter: its store, settings and link base
        s: Session,
        now: datetime,
        channels: dict[str, Channel],
        silences: list,
        states: dict[tuple[str, str], AlertState],
        suppressed: list[Notification],
        *,
        loaded: set[str],
        routing: Routing | None = None,
    ):
        """``states`` holds every alert state row of the names in ``loaded``; others are read when
        first needed (a target's). ``routing``: the one the alerter used before its write
        transaction, with the notify sections it validated."""
        self.alerter, self.s, self.now = alerter, s, now
        self.channels, self.silences, self.states, self.suppressed = channels, silences, states, suppressed
        self.routing = routing or Routing(alerter, channels)
        self.dirty: set[tuple[str, str]] = set()
        self._secrets: list[str] | None = None
        self._loaded = set(loaded) | {name for name, _ in states}
        self._alerts: dict[str, Alert | None] | None = None  # unresolved alerts by subject, read once
        self._resolved: set[str] = set()
        self._link_secret: str | None = None
        self._targets = None

    def secrets(self, task: Any) -> list[str]:
        """Every secret the instance can resolve (read once per evaluation) and the task's own."""
        if self._secrets is None:
            self._secrets = instance_secrets(self.alerter.store)
        return [*self._secrets, *task_secrets(task.config)]

    def spec(self, task: Any) -> NotifySpec:
        return self.routing.spec(task)

    def channel_names(self, task: Any, spec: NotifySpec | list[str]) -> list[str]:
        return self.routing.channel_names(task, spec)

    @staticmethod
    def subject(task: Any) -> Subject:
        """What silences and alerts know of ``task`` (a task row, or a monitor or target standing in)."""
        given = getattr(task, "subject", None)
        if given is not None:
            return given
        return Subject(name=task.name, task=task.name, tiers=tuple(getattr(task, "tiers", None) or ()))

    def load_states(self, names: list[str]) -> None:
        """Read the alert state rows of ``names`` not read yet (one query per 500)."""
        fresh = sorted({n for n in names if n not in self._loaded})
        self._loaded.update(fresh)
        for i in range(0, len(fresh), 500):
            query = sa.select(AlertState).where(AlertState.task_name.in_(fresh[i : i + 500]))
            for row in self.s.execute(query).scalars():
                self.states[(row.task_name, row.channel)] = row

    def state(self, task: str, channel: str) -> rules.State:
        if task not in self._loaded:
            self.load_states([task])
        row = self.states.get((task, channel))
        if row is None:
            return rules.State()
        return rules.State(row.state, row.consecutive_failures, row.last_sent_at)

    def announced(self, name: str) -> bool:
        """Whether the current problem of ``name`` reached some channel."""
        rows = (self.states.get((name, channel)) for channel in self.channels)
        return any(row is not None and row.last_sent_at is not None for row in rows)

    # --- alerts -----------------------------------------------------------------------------

    def alert(self, name: str) -> Alert | None:
        if self._alerts is None:
            self._alerts = {row.subject: row for row in alerts.unresolved_all(self.s)}
        return self._alerts.get(name)

    def _ack_link(self, alert: Alert) -> str:
        if self._link_secret is None:
            self._link_secret = alerts.link_secret(self.s)
        return alerts.ack_link(self.alerter.link_base, self._link_secret, alert)

    def _send(self, alert: Alert | None, subject: Subject, channel: str, kind: str, delivery: str, msg) -> bool:
        """Queue ``msg`` for ``channel`` (or record it suppressed by a silence); True when queued."""
        body = msg.body
        if alert is not None and delivery != "resolution":
            body += f"\nAcknowledge: {self._ack_link(alert)}"
        silence = matching_silence(self.silences, subject, channel, self.now)
        note = Notification(
            task=subject.name,
            channel=channel,
            kind=kind,
            title=msg.title,
            body=body,
            notify_type=msg.notify_type,
            run_id=msg_run_id(msg),
            at=self.now.isoformat(),
            alert_id=alert.id if alert is not None else None,
            subject=subject.as_dict(),
        )
        if alert is not None:
            status = "suppressed" if silence is not None else "queued"
            note.delivery_id = alerts.add_delivery(self.s, alert, channel, delivery, msg.title, status, self.now).id
        if silence is not None:
            note.status, note.error = "suppressed", held_by(silence)
            self.suppressed.append(note)
            log.info("alert %r to %s suppressed by silence %s", note.title, channel, silence.id)
            return False
        enqueue(self.s, note, self.now)
        return True

    def send(self, task: Any, channel: str, kind: str, message) -> bool:
        """Queue ``message()`` for the channel, outside any alert (a checklist's reminder), unless
        a silence covers it; True when queued."""
        return self._send(None, self.subject(task), channel, kind, kind, message())

    def _problem(self, task: Any, subject: Subject, channel: str, decision: rules.Decision, message) -> bool:
        alert = self.alert(subject.name)
        if decision.repeat and alert is not None and alert.state == alerts.ACKNOWLEDGED:
            return False  # someone took it: no reminders
        msg = message()
        if alert is None:
            alert = alerts.open_alert(
                self.s,
                subject=subject.name,
                task_name=subject.task,
                kind=decision.kind or "",
                title=msg.title,
                body=msg.body,
                run_id=msg_run_id(msg),
                note=getattr(msg, "note", ""),
                escalate=[step.model_dump(mode="json") for step in self.spec(task).escalate],
                now=self.now,
            )
            self._alerts[subject.name] = alert  # type: ignore[index]  # read by self.alert above
        return self._send(alert, subject, channel, decision.kind or "", "repeat" if decision.repeat else "alert", msg)

    def _recovery(self, subject: Subject, channel: str, message) -> bool:
        """Resolve the subject's alert: one resolution to every channel it reached (once per
        evaluation, whichever channel's rule saw the recovery first)."""
        if subject.name in self._resolved:
            return True
        alert = self.alert(subject.name)
        if alert is None:  # announced before alerts were kept: the channel that saw it hears the end
            return self._send(None, subject, channel, "recovery", "resolution", message())
        msg = message()
        alerts.resolve(alert, self.now)
        self._resolved.add(subject.name)
        self._alerts[subject.name] = None  # type: ignore[index]
        for name in alerts.alerted_channels(self.s, alert.id):
            if name in self.channels:
                self._send(alert, subject, name, "recovery", "resolution", msg)
        return True

    def escalate(self) -> None:
        """Send the due escalation steps of every open alert (each step once)."""
        due = [
            (alert, steps) for alert in alerts.open_alerts(self.s) if (steps := alerts.escalation_due(alert, self.now))
        ]
        if not due:
            return
        names = sorted({a.task_name for a, _ in due if a.task_name})
        tiers = dict(
            self.s.execute(
                sa.select(ScheduledTask.name, ScheduledTask.tiers).where(ScheduledTask.name.in_(names))
            ).all()
        )
        for alert, steps in due:
            subject = subject_of_alert(alert, tuple(tiers.get(alert.task_name) or ()))
            for index, step in steps:
                after = step["after"]
                msg = WithRun(
                    Message(
                        alert.title.replace("[upkeep] ", "[upkeep] ESCALATED ", 1),
                        f"Not acknowledged {after} after it opened ({alert.opened_at.isoformat()}).\n{alert.body}",
                        "failure",
                    ),
                    alert.run_id,
                )
                for channel in self.channel_names(subject, list(step.get("channels") or [])):
                    self._send(alert, subject, channel, "escalation", "escalation", msg)
                alert.escalated = index + 1
                alert.updated_at = self.now

    # --- rules ------------------------------------------------------------------------------

    def apply(self, task: Any, channel: str, decision: rules.Decision, message) -> None:
        subject = self.subject(task)
        delivered = False
        if decision.kind == "recovery":
            delivered = self._recovery(subject, channel, message)
        elif decision.send:
            delivered = self._problem(task, subject, channel, decision, message)
        new = rules.after_send(decision, self.now, delivered=delivered)
        if new != self.state(task.name, channel):
            row = self.states.get((task.name, channel))
            if row is None:
                row = AlertState(task_name=task.name, channel=channel)
                self.states[(task.name, channel)] = row
                self.s.add(row)
            row.state, row.consecutive_failures, row.last_sent_at = (
                new.state,
                new.consecutive_failures,
                new.last_sent_at,
            )
            row.updated_at = self.now
            self.dirty.add((task.name, channel))

    def targets(self):
        if self._targets is None:
            from upkeep.notify.targets import TargetEvaluation

            self._targets = TargetEvaluation(self)
        return self._targets

    def run_finished(self, task: Any, run: Any, *, retrying: bool) -> None:
        from upkeep.notify.targets import REPORTING_TYPES

        spec = self.spec(task)
        outcome = run.outcome
        if run.status == COMPLETED and task.task_type in REPORTING_TYPES:
            outcome = self.targets().observe(task, run)  # its inventory targets alert on their own
        cache: dict[str, Any] = {}
        for channel in self.channel_names(task, spec):
            prev = self.state(task.name, channel)
            decision = rules.on_run(prev, spec, run.status, outcome, retrying=retrying, now=self.now)

            def message(decision=decision):
                key = f"{decision.kind}:{decision.repeat}"
                if key not in cache:
                    cache[key] = self._run_message(task, run, decision)
                return cache[key]

            self.apply(task, channel, decision, message)

    def target_checked(self, target: Any, run: Any) -> None:
        """Apply the rules to one target's check (``upkeep.notify.targets``)."""
        from upkeep.notify import targets

        spec = self.spec(target)
        cache: dict[str, Any] = {}
        for channel in self.channel_names(target, spec):
            prev = self.state(target.name, channel)
            decision = rules.on_run(prev, spec, COMPLETED, target.check.status, retrying=False, now=self.now)

            def message(decision=decision):
                key = f"{decision.kind}:{decision.repeat}"
                if key not in cache:
                    msg = targets.message(
                        decision.kind or "", target, run, self.alerter.link_base, repeat=decision.repeat
                    )
                    secrets = self.secrets(target)
                    after = target.record.get("after_maintenance")
                    note = f"after maintenance: run {after['run_id']} of task {after['task']}" if after else ""
                    cache[key] = WithRun(
                        Message(scrub(msg.title, secrets), scrub(msg.body, secrets), msg.notify_type), run.id, note
                    )
                return cache[key]

            self.apply(target, channel, decision, message)
        if target.check.dependents and (alert := self.alert(target.name)) is not None:
            alerts.add_dependents(alert, target.check.dependents, self.now)

    def _run_message(self, task: Any, run: Any, decision: rules.Decision):
        result = self.s.execute(sa.select(Run.result).where(Run.id == run.id)).scalar()
        msg = run_message(
            decision.kind or "",
            task=task.name,
            task_type=task.task_type,
            run={**run._mapping, "result": result},
            link_base=self.alerter.link_base,
            consecutive_failures=decision.new.consecutive_failures,
            repeat=decision.repeat,
            secrets=self.secrets(task),
            timezone=getattr(self.alerter.settings, "timezone", "UTC"),
            task_timezone=task.timezone,
        )
        return WithRun(msg, run.id)

    def overdue(self, tasks: dict[int, Any], overdue: dict[str, str]) -> None:
        by_name = {t.name: t for t in tasks.values()}
        candidates = set(overdue) | {name for (name, _), row in self.states.items() if row.state == rules.OVERDUE}
        for name in sorted(candidates):
            task = by_name.get(name)
            if task is None:
                continue
            spec = self.spec(task)
            is_overdue = name in overdue
            for channel in self.channel_names(task, spec):
                decision = rules.on_overdue_check(self.state(name, channel), spec, is_overdue)

                def message(task=task, is_overdue=is_overdue):
                    msg = overdue_message(
                        task.name,
                        task.task_type,
                        overdue.get(task.name, ""),
                        self.alerter.link_base,
                        ended=not is_overdue,
                    )
                    return WithRun(msg, None)

                self.apply(task, channel, decision, message)

    def save(self) -> None:
        if self._targets is not None:
            self.suppressed.extend(self._targets.held)
            self._targets.held = []
        if self.dirty:
            self.s.flush()


def subject_of_alert(alert: Alert, tiers: tuple[str, ...] = ()) -> Subject:
    """The subject of a stored alert (its name says which kind it is)."""
    from upkeep.heartbeats.state import ALERT_PREFIX
    from upkeep.notify.targets import PREFIX

    name = alert.subject
    if name.startswith(ALERT_PREFIX):
        return Subject(name=name, heartbeat=name[len(ALERT_PREFIX) :])
    if name.startswith(PREFIX):
        return Subject(name=name, task=alert.task_name, tiers=tiers, target=name[len(PREFIX) :])
    return Subject(name=name, task=alert.task_name or name, tiers=tiers)


class WithRun:
    """A message together with the run it is about (and a note its alert keeps)."""

    def __init__(self, message, run_id: int | None, note: str = ""):
        self.title, self.body, self.notify_type = message.title, message.body, message.notify_type
        self.run_id, self.note = run_id, note


def msg_run_id(msg: Any) -> int | None:
    return getattr(msg, "run_id", None)
