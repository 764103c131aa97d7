"""Target alerts: every inventory target a health check observes (``services.api``,
``databases.main``) alerts on its own, as ``target/KIND.NAME``, under the notify section of the task
that checked it. Two things hold a failing check instead of alerting:

- **maintenance**: a run of a task that affects the target (``affects``, or a ``db:NAME`` lock for
  ``databases.NAME``, see ``upkeep.engine.targets``) overlapped the check, or ended less than its
  ``settle`` (10m by default) before the check began. The failure is recorded "during maintenance:
  run N of task X" and alerts nobody; the first failing check after that alerts and names the
  maintenance that preceded it.
- **dependencies**: a target it depends on (``depends_on``, directly or through others) is down
  (its last check was critical). The failure is recorded "because databases.main is down" and
  listed with the parent's alert (in its message when both failed in the same check); once the
  parent recovers, a child still failing alerts on its own.

A health check's inline checks (no inventory entry) still alert as the task, with the outcome of
those checks alone. Each target's last check, its annotation and what held it live in the
records domain ``_targets`` (key: the target id); ``overview`` shows them with the open alerts
and the maintenance in progress (the dashboard and the reports call it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.engine.targets import affected_targets, ancestors, dependencies, settle_seconds
from upkeep.notify.messages import NOTIFY_TYPE, Message, _clip
from upkeep.notify.silences import Subject
from upkeep.store import records as _records
from upkeep.store.models import OUTCOME_RANK, Run, ScheduledTask
from upkeep.store.records import CONFIG_DOMAIN

DOMAIN = "_targets"
PREFIX = "target/"  # alert_state and alerts name a target "target/KIND.NAME"
REPORTING_TYPES = ("health.check",)  # handlers whose results list inventory targets (``target``)
MAX_SETTLE = timedelta(days=1)
DOWN = "critical"


def subject_name(target: str) -> str:
    return f"{PREFIX}{target}"


@dataclass(frozen=True)
class MaintenanceRun:
    run_id: int
    task: str
    started_at: datetime
    finished_at: datetime | None
    settle: timedelta
    targets: frozenset[str]

    def covers(self, target: str, start: datetime, end: datetime) -> bool:
        """Whether this run, or its settle time, overlaps a check made between ``start`` and ``end``."""
        if target not in self.targets or self.started_at > end:
            return False
        return self.finished_at is None or self.finished_at + self.settle > start

    def describe(self) -> str:
        return f"run {self.run_id} of task {self.task}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "settle_seconds": self.settle.total_seconds(),
        }


def maintenance_runs(
    s: Session, inventory: dict[str, Any], since: datetime, *, running_only: bool = False
) -> list[MaintenanceRun]:
    """Runs of tasks that affect some target, running now or ended after ``since``."""
    tasks = s.execute(
        sa.select(ScheduledTask.id, ScheduledTask.name, ScheduledTask.affects, ScheduledTask.locks).where(
            sa.or_(ScheduledTask.affects.is_not(None), sa.cast(ScheduledTask.locks, sa.String).like("%db:%"))
        )
    ).all()
    affecting = {}
    for task in tasks:
        targets = affected_targets(task.affects, task.locks, inventory)
        if targets:
            affecting[task.id] = (task.name, frozenset(targets), timedelta(seconds=settle_seconds(task.affects)))
    if not affecting:
        return []
    ended = Run.finished_at.is_(None) if running_only else sa.or_(Run.finished_at.is_(None), Run.finished_at >= since)
    rows = s.execute(
        sa.select(Run.id, Run.task_id, Run.started_at, Run.finished_at)
        .where(Run.task_id.in_(sorted(affecting)), Run.started_at.is_not(None), Run.dry_run.is_(False), ended)
        .order_by(Run.started_at)
    ).all()
    out = []
    for row in rows:
        name, targets, settle = affecting[row.task_id]
        out.append(MaintenanceRun(row.id, name, row.started_at, row.finished_at, settle, targets))
    return out


@dataclass
class _Check:
    """One target's result in one health check run, and what the evaluation made of it."""

    target: str
    status: str
    kind: str
    detail: str
    note: str = ""
    held: dict[str, Any] | None = None
    dependents: list[str] = field(default_factory=list)


class TargetEvaluation:
    """The target side of one alerter evaluation (``evaluation.Evaluation`` applies the rules and sends)."""

    def __init__(self, evaluation: Any):
        self.evaluation = evaluation
        self.s: Session = evaluation.s
        self.inventory: dict[str, Any] = _records.get(self.s, CONFIG_DOMAIN, "targets", {}) or {}
        self.graph = dependencies(self.inventory)
        self.records: dict[str, dict[str, Any]] = {}
        self.maintenance: list[MaintenanceRun] | None = None
        self.held: list[Any] = []  # Notification rows with status "held", for the history

    def _load(self, targets: set[str]) -> None:
        missing = sorted(t for t in targets if t not in self.records)
        for key, value in _records.get_many(self.s, DOMAIN, missing).items():
            self.records[key] = dict(value)

    def _maintenance(self, since: datetime) -> list[MaintenanceRun]:
        if self.maintenance is None:
            self.maintenance = maintenance_runs(self.s, self.inventory, since - MAX_SETTLE)
        return self.maintenance

    def observe(self, task: Any, run: Any) -> str | None:
        """Evaluate the targets of a finished health check run; return the outcome the task itself
        alerts on (that of its inline checks only)."""
        result = self.s.execute(sa.select(Run.result).where(Run.id == run.id)).scalar() or {}
        rows = [r for r in result.get("targets") or [] if isinstance(r, dict) and r.get("status") in OUTCOME_RANK]
        checks = [
            _Check(r["target"], r["status"], str(r.get("kind") or ""), str(r.get("detail") or ""))
            for r in rows
            if r.get("target")
        ]
        inline = [r["status"] for r in rows if not r.get("target")]
        residual = max(inline, key=OUTCOME_RANK.__getitem__) if inline else "ok"
        if not checks:
            return run.outcome if not rows else residual
        involved = {c.target for c in checks}
        for check in checks:
            involved.update(ancestors(check.target, self.graph))
        self._load(involved)
        start, end = run.started_at or run.finished_at, run.finished_at
        status = {t: r.get("status") for t, r in self.records.items()}
        status.update({c.target: c.status for c in checks})
        by_target = {c.target: c for c in checks}
        for check in checks:
            if check.status == "ok":
                continue
            covering = [m for m in self._maintenance(start) if m.covers(check.target, start, end)]
            if covering:
                check.note = f"during maintenance: {covering[-1].describe()}"
                check.held = {"reason": "maintenance", **covering[-1].as_dict()}
                continue
            root = _root_cause(check.target, self.graph, status)
            if root is not None:
                check.note = f"because {root} is down"
                check.held = {"reason": "dependency", "parent": root}
                if root in by_target:
                    by_target[root].dependents.append(check.target)
                else:
                    self._attach_dependent(root, check.target)
        self.evaluation.load_states([subject_name(c.target) for c in checks])
        written = {}
        for check in sorted(checks, key=lambda c: len(ancestors(c.target, self.graph))):
            written[check.target] = self._record(task, run, check)
        _records.put_many(self.s, DOMAIN, written)
        return residual

    def _attach_dependent(self, parent: str, child: str) -> None:
        """A child failing because of a parent checked in another run: listed on its record and
        on its unresolved alert, without a message."""
        from upkeep.notify import alerts

        record = self.records.setdefault(parent, {"target": parent})
        record["dependents"] = sorted(set(record.get("dependents") or []) | {child})
        _records.put(self.s, DOMAIN, parent, record)
        alert = self.evaluation.alert(subject_name(parent))
        if alert is not None:
            alerts.add_dependents(alert, [child], self.evaluation.now)

    def _record(self, task: Any, run: Any, check: _Check) -> dict[str, Any]:
        """Apply the rules to one check (or hold it); the target's new record."""
        previous = self.records.get(check.target) or {}
        now_iso = (run.finished_at or self.evaluation.now).isoformat()
        record = {
            "target": check.target,
            "kind": check.kind,
            "status": check.status,
            "detail": _clip(check.detail, 500),
            "checked_at": now_iso,
            "run_id": run.id,
            "task": task.name,
            "since": previous.get("since") if previous.get("status") == check.status else now_iso,
            "note": check.note,
            "held": check.held,
            "after_maintenance": None if check.status == "ok" else previous.get("after_maintenance"),
            "dependents": sorted(check.dependents) if check.status == DOWN else [],
        }
        if check.held and check.held["reason"] == "maintenance":
            record["after_maintenance"] = check.held
        self.records[check.target] = record
        subject = Subject(
            name=subject_name(check.target), task=task.name, tiers=tuple(task.tiers or ()), target=check.target
        )
        if check.held:
            self._hold(task, run, check, subject)
        else:
            self.evaluation.target_checked(_TargetTask(task, subject, check, record), run)
            if record["after_maintenance"] and self.evaluation.announced(subject.name):
                record["after_maintenance"] = None  # the alert named it
        return record

    def _hold(self, task: Any, run: Any, check: _Check, subject: Subject) -> None:
        from upkeep.notify.outbox import Notification

        self.held.append(
            Notification(
                task=subject.name,
                channel="",
                kind="held",
                title=f"[upkeep] {check.status.upper()} {check.target}: {_clip(check.detail, 120)}",
                body="",
                run_id=run.id,
                status="held",
                error=check.note,
                at=self.evaluation.now.isoformat(),
            )
        )


def _root_cause(target: str, graph: dict[str, list[str]], status: dict[str, Any]) -> str | None:
    """The down ancestor of ``target`` that has no down ancestor of its own (sorted first)."""
    down = [a for a in ancestors(target, graph) if status.get(a) == DOWN]
    roots = [a for a in down if not any(status.get(b) == DOWN for b in ancestors(a, graph))]
    return sorted(roots)[0] if roots else (sorted(down)[0] if down else None)


class _TargetTask:
    """A target as ``evaluation.Evaluation`` addresses a task: the checking task's notify section and config
    (for its secrets), the target's subject, and the check the message describes."""

    def __init__(self, task: Any, subject: Subject, check: _Check, record: dict[str, Any]):
        self.id = task.id
        self.name = subject.name
        self.task_name = task.name
        self.task_type = task.task_type
        self.notify = task.notify
        self.config = task.config
        self.subject = subject
        self.check = check
        self.record = record


def message(kind: str, target: _TargetTask, run: Any, link_base: str, *, repeat: bool = False) -> Message:
    """The message about a target: a problem (``outcome``) or its ``recovery``."""
    check, record = target.check, target.record
    tid = check.target
    if kind == "recovery":
        title = f"[upkeep] RESOLVED {tid}: ok again"
        severity = "RESOLVED"
    else:
        severity = "CRITICAL" if check.status == "critical" else "WARNING"
        more = f" (+{len(check.dependents)} dependent targets failing)" if check.dependents else ""
        title = f"[upkeep] {severity} {tid}: {_clip(check.detail, 120)}{more}" + (" (still)" if repeat else "")
    lines = [
        f"Target: {tid} ({check.kind})" if check.kind else f"Target: {tid}",
        f"Status: {check.status}   Since: {record.get('since')}",
        f"Checked by: task {target.task_name} (run {run.id})",
    ]
    if check.detail:
        lines.append(f"Detail: {_clip(check.detail)}")
    after = record.get("after_maintenance")
    if kind != "recovery" and after:
        from upkeep.heartbeats.spec import format_duration

        ended = after.get("finished_at") or "?"
        settle = format_duration(after.get("settle_seconds") or 0)
        lines.append(
            f"Still failing after maintenance: run {after['run_id']} of task {after['task']} "
            f"(ended {ended}, settle {settle})"
        )
    if kind != "recovery" and check.dependents:
        lines.append(f"Also failing because {tid} is down ({len(check.dependents)}):")
        lines.extend(f"- {child}" for child in sorted(check.dependents))
    lines.append(f"Run: {link_base}/runs/{run.id}")
    return Message(title, "\n".join(lines), NOTIFY_TYPE[severity])


# --- the view the dashboard and the reports show ----------------------------------------------


def overview(s: Session, now: datetime) -> list[dict[str, Any]]:
    """Every target (inventory entries, and targets checked before): its last check, the
    annotation of that check, what it depends on, the maintenance running on it now and its
    unresolved alert. Problems first."""
    from upkeep.notify.alerts import unresolved

    inventory = _records.get(s, CONFIG_DOMAIN, "targets", {}) or {}
    graph = dependencies(inventory)
    records = dict(_records.items(s, DOMAIN))
    ids = set(records)
    for kind in ("services", "databases"):
        ids.update(f"{kind}.{name}" for name in (inventory.get(kind) or {}))
    running: dict[str, MaintenanceRun] = {}
    for run in maintenance_runs(s, inventory, now, running_only=True):
        for target in run.targets:
            running.setdefault(target, run)
    open_alerts = unresolved(s, [subject_name(t) for t in sorted(ids)])
    out = []
    for target in sorted(ids):
        record = records.get(target) or {}
        alert = open_alerts.get(subject_name(target))
        maintenance = running.get(target)
        out.append(
            {
                "target": target,
                "status": record.get("status"),
                "detail": record.get("detail", ""),
                "checked_at": record.get("checked_at"),
                "since": record.get("since"),
                "task": record.get("task"),
                "run_id": record.get("run_id"),
                "note": record.get("note", ""),
                "dependents": record.get("dependents") or [],
                "depends_on": graph.get(target, []),
                "maintenance": f"in maintenance: {maintenance.describe()}" if maintenance else "",
                "alert": {"id": alert.id, "state": alert.state, "title": alert.title} if alert else None,
            }
        )
    out.sort(key=lambda t: (-OUTCOME_RANK.get(t["status"] or "ok", 0), t["target"]))
    return out
