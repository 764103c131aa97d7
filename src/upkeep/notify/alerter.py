"""The alerter: a loop in the scheduler process (and ``upkeep serve``) that turns finished runs into
alerts, pings and metric counters.

It never hooks into workers: runs end in worker processes, possibly on other hosts, and the alerter
reads them from the store. Each evaluation, in one transaction:

1. reads the runs that finished since its cursor (records domain ``_alerts``, key ``cursor``: the
   last ``finished_at`` processed plus the ids processed within ``CURSOR_LOOKBACK`` before it, so a
   run whose commit lands late or whose worker clock lags a little is still seen, exactly once);
2. applies the rules of ``upkeep.notify.rules`` per (task, channel) against ``alert_state``;
   silenced messages are recorded as suppressed, the others go to the outbox. A health check's
   inventory targets are evaluated each on its own (``upkeep.notify.targets``: maintenance and
   dependencies hold their failures). Every problem message belongs to an alert
   (``upkeep.notify.alerts``): the first opens it, a recovery resolves it and sends one resolution
   to every channel it reached;
3. queues Healthchecks-style pings (``upkeep.notify.pings``) for runs that started or ended;
4. adds the runs to the persistent metric counters (``upkeep.metrics.record_runs``);
5. every ``overdue_every`` seconds, checks the engine's overdue tasks (alert once per episode),
   and open checklists: their automatic items, reminders, one overdue alert each
   (``upkeep.notify.checklists``);
6. sends the due escalation steps of open (unacknowledged, unresolved) alerts.

After the commit it sends the pings and delivers the outbox. On PostgreSQL several alerters (one per
scheduler) take turns through an advisory lock, so each run is evaluated once.

A run without a task (``upkeep run TYPE``), a procedure's step, and a dry run never alert or ping.

Start it with ``Alerter(store, settings).start()`` and stop it with ``.stop()``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from upkeep import metrics
from upkeep.clock import utcnow
from upkeep.engine.taskspec import NotifySpec
from upkeep.notify import alerts, rules
from upkeep.notify.channels import Channel, load_channels
from upkeep.notify.messages import Message, base_url, overdue_message, run_message, task_secrets
from upkeep.notify.outbox import ALERTS_DOMAIN, Notification, add_history, deliver, enqueue
from upkeep.notify.pings import Ping, end_kind, send_pings
from upkeep.notify.silences import Subject, active_silences, held_by, matching_silence
from upkeep.secrets import scrub
from upkeep.store import records as _records
from upkeep.store.db import Store
from upkeep.store.models import COMPLETED, FAILED, RUNNING, TIMED_OUT, Alert, AlertState, Run, ScheduledTask
from upkeep.store.records import instance_secrets
from upkeep.store.runs import overdue_tasks

log = logging.getLogger(__name__)

CURSOR_LOOKBACK = 120.0  # seconds: commit lag and clock skew between hosts the cursor tolerates
INITIAL_LOOKBACK = 3600.0  # seconds of history a brand-new alerter considers
MAX_CATCH_UP = 24 * 3600.0  # an alerter down longer than this skips older runs
BATCH = 1000  # runs read per query
MAX_RUNS_PER_EVALUATION = 20_000
ADVISORY_LOCK_ID = 0x75706B616C  # "upkal": one alerter evaluates at a time on PostgreSQL

RUN_COLUMNS = (
    Run.id,
    Run.task_id,
    Run.task_name,
    Run.task_type,
    Run.origin,
    Run.status,
    Run.outcome,
    Run.attempt,
    Run.max_retries,
    Run.dry_run,
    Run.started_at,
    Run.finished_at,
    Run.error,
    Run.summary,
    Run.scheduled_for,
)
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


@dataclass
class _Cursor:
    at: datetime
    seen: dict[int, float]  # run id -> finished_at epoch, ids processed within the lookback
    pinged: set[int]  # runs whose start was pinged and whose end was not yet

    @classmethod
    def load(cls, value: dict | None, wall: datetime) -> _Cursor:
        if not value:
            return cls(wall - timedelta(seconds=INITIAL_LOOKBACK), {}, set())
        return cls(
            datetime.fromisoformat(value["at"]),
            {int(k): float(v) for k, v in value.get("seen", [])},
            {int(i) for i in value.get("pinged", [])},
        )

    def dump(self) -> dict:
        return {"at": self.at.isoformat(), "seen": sorted(self.seen.items()), "pinged": sorted(self.pinged)}


class Alerter:
    """Evaluates the notify rules of every task against the runs that finished since its cursor."""

    def __init__(
        self,
        store: Store,
        settings: Any,
        *,
        interval: float = 5.0,
        overdue_every: float = 60.0,
    ):
        self.store = store
        self.settings = settings
        self.interval = interval
        self.overdue_every = overdue_every
        self.link_base = base_url(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unknown_warned: set[tuple[str, str]] = set()

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alerter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        next_overdue = 0.0
        while not self._stop.is_set():
            try:
                check = time.monotonic() >= next_overdue
                if check:
                    next_overdue = time.monotonic() + self.overdue_every
                self.evaluate_once(utcnow(), check_overdue=check)
            except Exception:
                log.exception("alert evaluation failed; retrying in %gs", self.interval)
            self._stop.wait(self.interval)

    # --- one evaluation ---------------------------------------------------------------------

    def evaluate_once(self, now: datetime | None = None, *, check_overdue: bool = True) -> list[Notification]:
        """Process runs finished since the cursor (and overdue tasks); returns the notifications
        suppressed, sent or failed in this evaluation. ``now`` is the time the rules use (repeat
        intervals, silences, overdue); the cursor follows the runs' own timestamps."""
        now = now or utcnow()
        overdue = self._overdue(now) if check_overdue else None
        channels = load_channels(self.store)
        pings: list[Ping] = []
        suppressed: list[Notification] = []
        with self.store.write() as s:
            if not self._lock(s):
                return []
            cursor = _Cursor.load(_records.get(s, ALERTS_DOMAIN, "cursor", lock=True), utcnow())
            finished = self._finished_runs(s, cursor)
            tasks = self._tasks(s, {r.task_id for r in finished if r.task_id is not None}, overdue)
            states = self._states(s, {t.name for t in tasks.values()})
            silences = active_silences(s, now)
            retrying = self._retried(s, finished)
            evaluation = _Evaluation(
                self, s, now, channels, silences, states, suppressed, loaded={t.name for t in tasks.values()}
            )
            for run in finished:
                task = tasks.get(run.task_id) if run.task_id is not None else None
                if task is None or run.origin == "procedure" or run.dry_run:
                    continue
                pings.extend(self._run_pings(task, run, cursor, run.id in retrying))
                evaluation.run_finished(task, run, retrying=run.id in retrying)
            pings.extend(self._start_pings(s, cursor))
            if overdue is not None:
                evaluation.overdue(tasks, overdue)
                _records.put(s, ALERTS_DOMAIN, "overdue", {"at": now.isoformat(), "tasks": sorted(overdue)})
                checklist_alerts().evaluate(evaluation)
            heartbeat_alerts().evaluate(self, s, now, channels, silences, suppressed, prune=overdue is not None)
            evaluation.escalate()
            metrics.record_runs(s, finished)
            evaluation.save()
            add_history(s, suppressed)
            _records.put(s, ALERTS_DOMAIN, "cursor", cursor.dump())
            _records.put(s, ALERTS_DOMAIN, "last_evaluation", {"at": utcnow().isoformat()})
        send_pings(pings)
        delivered = deliver(self.store, channels, now)
        return suppressed + delivered

    def _lock(self, s: Session) -> bool:
        if not self.store.is_postgres:
            return True  # SQLite: the write transaction (BEGIN IMMEDIATE) serialises alerters
        return bool(s.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({ADVISORY_LOCK_ID})")).scalar())

    def _overdue(self, now: datetime) -> dict[str, str]:
        try:
            with self.store.read() as s:
                found = overdue_tasks(s, now)
        except Exception:
            log.exception("overdue check failed")
            return {}
        return {t["name"]: t["reason"] for t in found}

    def _finished_runs(self, s: Session, cursor: _Cursor) -> list[Any]:
        wall = utcnow()
        floor = max(cursor.at - timedelta(seconds=CURSOR_LOOKBACK), wall - timedelta(seconds=MAX_CATCH_UP))
        out: list[Any] = []
        while len(out) < MAX_RUNS_PER_EVALUATION:
            limit = BATCH + len(cursor.seen)
            rows = s.execute(
                sa.select(Run.id, Run.finished_at)
                .where(Run.finished_at >= floor)
                .order_by(Run.finished_at, Run.id)
                .limit(limit)
            ).all()
            fresh = [r for r in rows if r.id not in cursor.seen]
            for row in fresh:
                cursor.seen[row.id] = row.finished_at.timestamp()
                cursor.at = max(cursor.at, row.finished_at)
            out.extend(self._load_runs(s, [r.id for r in fresh]))
            if len(rows) < limit or not fresh:
                break
            floor = rows[-1].finished_at
        horizon = (cursor.at - timedelta(seconds=CURSOR_LOOKBACK)).timestamp()
        cursor.seen = {k: v for k, v in cursor.seen.items() if v >= horizon}
        return out

    @staticmethod
    def _load_runs(s: Session, ids: list[int]) -> list[Any]:
        """The columns the rules need, for ``ids``, ordered by finished_at (ids are read first, so
        runs already processed within the lookback are not loaded again)."""
        rows: list[Any] = []
        for i in range(0, len(ids), 500):
            rows.extend(s.execute(sa.select(*RUN_COLUMNS).where(Run.id.in_(ids[i : i + 500]))).all())
        rows.sort(key=lambda r: (r.finished_at, r.id))
        return rows

    @staticmethod
    def _tasks(s: Session, ids: set[int], overdue: dict[str, str] | None) -> dict[int, Any]:
        """The tasks involved (the columns the rules and messages need), by id."""
        found: dict[int, Any] = {}
        id_list = sorted(ids)
        for i in range(0, len(id_list), 500):
            chunk = id_list[i : i + 500]
            for task in s.execute(sa.select(*TASK_COLUMNS).where(ScheduledTask.id.in_(chunk))):
                found[task.id] = task
        names = set(overdue or {})
        names |= set(s.execute(sa.select(AlertState.task_name).where(AlertState.state == rules.OVERDUE)).scalars())
        names -= {t.name for t in found.values()}
        name_list = sorted(names)
        for i in range(0, len(name_list), 500):
            chunk = name_list[i : i + 500]
            for task in s.execute(sa.select(*TASK_COLUMNS).where(ScheduledTask.name.in_(chunk))):
                found[task.id] = task
        return found

    @staticmethod
    def _states(s: Session, names: set[str]) -> dict[tuple[str, str], AlertState]:
        out: dict[tuple[str, str], AlertState] = {}
        name_list = sorted(names)
        for i in range(0, len(name_list), 500):
            chunk = name_list[i : i + 500]
            for row in s.execute(sa.select(AlertState).where(AlertState.task_name.in_(chunk))).scalars():
                out[(row.task_name, row.channel)] = row
        return out

    @staticmethod
    def _retried(s: Session, finished: list[Any]) -> set[int]:
        """Failed runs for which a retry exists (created in the same transaction that ended them)."""
        failed = [r for r in finished if r.status in (FAILED, TIMED_OUT) and r.task_id is not None]
        if not failed:
            return set()
        ids = [r.id for r in failed]
        since = min(r.finished_at for r in failed)
        task_ids = sorted({r.task_id for r in failed})
        return set(
            s.execute(
                sa.select(Run.retry_of).where(Run.task_id.in_(task_ids), Run.created_at >= since, Run.retry_of.in_(ids))
            ).scalars()
        )

    # --- pings ------------------------------------------------------------------------------

    @staticmethod
    def _run_pings(task: Any, run: Any, cursor: _Cursor, retrying: bool) -> list[Ping]:
        if not task.ping_url:
            return []
        out = []
        if run.started_at is not None and run.id not in cursor.pinged:
            out.append(Ping(task.ping_url, "start", run.id))
        cursor.pinged.discard(run.id)
        kind = None if retrying else end_kind(run.status, run.outcome)
        if kind and (run.started_at is not None or run.status != "cancelled"):
            out.append(Ping(task.ping_url, kind, run.id, run.error or run.summary or run.status))
        return out

    @staticmethod
    def _start_pings(s: Session, cursor: _Cursor) -> list[Ping]:
        rows = s.execute(
            sa.select(Run.id, ScheduledTask.ping_url)
            .join(ScheduledTask, ScheduledTask.id == Run.task_id)
            .where(
                Run.status == RUNNING,
                ScheduledTask.ping_url.is_not(None),
                Run.dry_run.is_(False),
                Run.origin != "procedure",
            )
        ).all()
        running = {r.id for r in rows}
        out = [Ping(url, "start", run_id) for run_id, url in rows if run_id not in cursor.pinged]
        # forget runs that ended without our seeing them end (deleted, or beyond the catch-up horizon)
        cursor.pinged = {i for i in cursor.pinged if i in running or i in cursor.seen} | running
        return out


class _Evaluation:
    """The alert decisions of one evaluation, applied to the loaded ``alert_state`` rows."""

    def __init__(
        self,
        alerter: Alerter,
        s: Session,
        now: datetime,
        channels: dict[str, Channel],
        silences: list,
        states: dict[tuple[str, str], AlertState],
        suppressed: list[Notification],
        *,
        loaded: set[str],
    ):
        """``states`` holds every alert state row of the names in ``loaded``; others are read when
        first needed (a target's)."""
        self.alerter, self.s, self.now = alerter, s, now
        self.channels, self.silences, self.states, self.suppressed = channels, silences, states, suppressed
        self.dirty: set[tuple[str, str]] = set()
        self._specs: dict[int, NotifySpec] = {}
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
        if task.id not in self._specs:
            try:
                self._specs[task.id] = NotifySpec.model_validate(task.notify or {})
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
                msg = _WithRun(
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
                    cache[key] = _WithRun(
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
        return _WithRun(msg, run.id)

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
                    return _WithRun(msg, None)

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


class _WithRun:
    """A message together with the run it is about (and a note its alert keeps)."""

    def __init__(self, message, run_id: int | None, note: str = ""):
        self.title, self.body, self.notify_type = message.title, message.body, message.notify_type
        self.run_id, self.note = run_id, note


def msg_run_id(msg: Any) -> int | None:
    return getattr(msg, "run_id", None)


def heartbeat_alerts():
    """``upkeep.notify.heartbeats`` (imported late: it builds on this module's ``_Evaluation``)."""
    from upkeep.notify import heartbeats

    return heartbeats


def checklist_alerts():
    """``upkeep.notify.checklists`` (imported late: it builds on this module's ``_Evaluation``)."""
    from upkeep.notify import checklists

    return checklists


def evaluate(store: Store, settings: Any, now: datetime | None = None) -> list[Notification]:
    """One evaluation without a background thread (``upkeep notify evaluate``, tests)."""
    return Alerter(store, settings).evaluate_once(now or datetime.now(UTC))
