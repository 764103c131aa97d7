"""``ctx.services``: what handlers may ask of upkeep beyond their own run (``engine.context.Services``).

A facade over the store and the layers above the handlers (alert channels, approvals, checklists,
reports, the config file), so handlers never touch SQLAlchemy nor import those layers. Whoever starts
an executor passes ``RunServices`` down as its ``services`` factory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.engine import lifecycle
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.records import Records
from upkeep.store.run_tables import instances as INSTANCES
from upkeep.store.run_tables import run_events, runs
from upkeep.store.states import ACTIVE_STATUSES, COMPLETED, FAILED_STATUSES, PENDING, SUBMITTED, TERMINAL_STATUSES
from upkeep.store.tables import scheduled_tasks

# Core statements on Core tables, and what only some services need (the reaper, the shared
# queries) imported by them: every worker process builds this facade, most of them for handlers
# that never call on it, and none then imports the ORM for it.


class RunServices:
    def __init__(self, store: Store, settings: Settings, registry: Registry = REGISTRY):
        self.store = store
        self.settings = settings
        self.registry = registry

    @property
    def database_url(self) -> str:
        return self.store.url

    @property
    def config_file(self) -> str | None:
        return str(self.settings.config or "") or None

    def reap(self, *, dry_run: bool) -> dict[str, Any]:
        # asked for now, by someone who sees the store answer: heartbeats are judged at once
        from upkeep.engine.reaper import Reaper

        return Reaper(self.store, self.settings).reap(dry_run=dry_run, judge_heartbeats=True).as_dict()

    def cleanup_expired(
        self, *, retention_days: int, batch_size: int, dry_run: bool, now: datetime | None = None
    ) -> dict[str, Any]:
        """Delete terminal runs (and their events) that ended before the retention period."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(days=retention_days)
        with self.store.write() as s:
            ids = list(
                s.execute(
                    sa.select(runs.c.id)
                    .where(runs.c.status.in_(TERMINAL_STATUSES), runs.c.finished_at < cutoff)
                    .order_by(runs.c.id)
                    .limit(batch_size)
                ).scalars()
            )
            remaining = s.execute(
                sa.select(sa.func.count(runs.c.id)).where(
                    runs.c.status.in_(TERMINAL_STATUSES), runs.c.finished_at < cutoff
                )
            ).scalar_one() - len(ids)
            events = 0
            if ids:
                events = s.execute(
                    sa.select(sa.func.count(run_events.c.id)).where(run_events.c.run_id.in_(ids))
                ).scalar_one()
            if ids and not dry_run:
                lifecycle.delete_ended(s, ids)  # never a run that is not terminal, even if it changed since
        return {
            "cutoff": cutoff.isoformat(),
            "runs": len(ids),
            "events": events,
            "remaining": max(0, remaining),
            "run_ids": ids[:50],
        }

    def health_summary(self, now: datetime | None = None, *, window_hours: int = 24) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        since = now - timedelta(hours=window_hours)
        from upkeep.store.runs import count_by_status

        with self.store.read() as s:
            by_status = count_by_status(s, created_since=since)
            depth = count_by_status(s, statuses=(PENDING, SUBMITTED), due_by=now)
            active = s.execute(
                sa.select(sa.func.count(runs.c.id)).where(runs.c.status.in_(ACTIVE_STATUSES))
            ).scalar_one()
            failing = [
                {"name": n, "status": st, "outcome": o, "consecutive_failures": c}
                for n, st, o, c in s.execute(
                    sa.select(
                        scheduled_tasks.c.name,
                        scheduled_tasks.c.last_status,
                        scheduled_tasks.c.last_outcome,
                        scheduled_tasks.c.consecutive_failures,
                    )
                    .where(
                        scheduled_tasks.c.enabled.is_(True),
                        sa.or_(
                            scheduled_tasks.c.last_status.in_(FAILED_STATUSES),
                            scheduled_tasks.c.last_outcome == "critical",
                        ),
                    )
                    .order_by(scheduled_tasks.c.name)
                ).all()
            ]
            instances = [
                {
                    "id": i.id,
                    "role": i.role,
                    "host": i.host,
                    "pid": i.pid,
                    "queues": i.queues,
                    "last_seen_at": i.last_seen_at.isoformat(),
                    "age_seconds": (now - i.last_seen_at).total_seconds(),
                }
                for i in s.execute(sa.select(INSTANCES).order_by(INSTANCES.c.role, INSTANCES.c.id))
            ]
        schedulers = [i for i in instances if i["role"] == "scheduler"]
        last_tick = max((i["last_seen_at"] for i in schedulers), default=None)
        from upkeep.queries import Queries

        overdue = Queries(self.store).overdue(now)
        return {
            "store": {"reachable": True, "dialect": self.store.dialect},
            "last_scheduler_tick": last_tick,
            "scheduler_age_seconds": min((i["age_seconds"] for i in schedulers), default=None),
            "queue_depth": {"pending": depth.get("pending", 0), "submitted": depth.get("submitted", 0)},
            "active_runs": active,
            "runs_by_status_24h": by_status,
            "failing_tasks": failing,
            "overdue_tasks": overdue,
            "instances": instances,
        }

    def not_ok_in_a_row(self, names: list[str], *, most: int = 100) -> dict[str, int]:
        """Per task name: its latest finished runs in a row that failed, timed out or found something
        critical (``consecutive_failures`` counts failures only, and a check that finds a target down
        completes). Counted up to ``most``."""
        out: dict[str, int] = {}
        with self.store.read() as s:
            for task_id, name in s.execute(
                sa.select(scheduled_tasks.c.id, scheduled_tasks.c.name).where(scheduled_tasks.c.name.in_(names))
            ).all():
                streak = 0
                for status, outcome in s.execute(
                    sa.select(runs.c.status, runs.c.outcome)
                    .where(runs.c.task_id == task_id, runs.c.status.in_((COMPLETED, *FAILED_STATUSES)))
                    .order_by(runs.c.created_at.desc(), runs.c.id.desc())
                    .limit(most)
                ).all():
                    if status == "completed" and outcome != "critical":
                        break
                    streak += 1
                out[name] = streak
        return out

    def records(self, domain: str) -> Records:
        return Records(self.store, domain)

    def heartbeats(self, *, since: datetime, now: datetime) -> dict[str, Any]:
        """Heartbeat monitors: status now, pings in the period (``upkeep.heartbeats.monitors.digest``)."""
        from upkeep.heartbeats.monitors import digest

        return digest(self.store, since, now)

    def targets(self, now: datetime) -> list[dict[str, Any]]:
        """Every target's last check and its annotation (``upkeep.notify.targets.overview``)."""
        from upkeep.notify.targets import overview

        with self.store.read() as s:
            return overview(s, now)

    def run_history(self, *, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
        """Finished runs in a period (for reports and performance reviews)."""
        query = sa.select(
            runs.c.task_name, runs.c.task_type, runs.c.status, runs.c.outcome, runs.c.started_at, runs.c.finished_at
        ).where(runs.c.finished_at >= since)
        if until:
            query = query.where(runs.c.finished_at < until)
        with self.store.read() as s:
            return [
                {
                    "task": t,
                    "type": ty,
                    "status": st,
                    "outcome": o,
                    "duration_seconds": (f - b).total_seconds() if b and f else None,
                    "finished_at": f.isoformat() if f else None,
                }
                for t, ty, st, o, b, f in s.execute(query)
            ]

    # --- audits and reports (config.audit, security.audit, report.send) ------------------------

    def api_keys(self) -> list[dict[str, Any]]:
        """upkeep's own API keys (name, role, created_at, last_used_at, revoked_at; never a hash)."""
        from upkeep.auth import list_keys

        return list_keys(self.store)

    def validate_config_file(self, path: str) -> list[dict[str, Any]]:
        """Problems of an upkeep.yaml: ``[{severity, check, line, key, message}]`` (empty when valid)."""
        from upkeep.config_file import load_config, plain_secret_warnings, validate_tasks
        from upkeep.errors import UserError

        try:
            loaded = load_config(path)
            validate_tasks(loaded, self.registry)
        except UserError as exc:
            return [{"severity": "critical", "check": "upkeep_config", "line": None, "key": None, "message": str(exc)}]
        data = loaded.model.model_dump(mode="python")
        found: list[str] = []
        for section in ("server", "targets", "channels"):
            found += plain_secret_warnings(data.get(section) or {}, section)
        for index, task in enumerate(data.get("tasks") or []):
            found += plain_secret_warnings(task, f"tasks[{index}]")
        return [
            {
                "severity": "warning",
                "check": "plain_secret",
                "line": None,
                "key": where,
                "message": f"{path}: {where}: plain-text secret (write it as ${{env:NAME}})",
            }
            for where in found
        ]

    def send_to_channel(self, name: str, title: str, body: str, notify_type: str = "info") -> None:
        """Send one message to a named alert channel (``DeliveryFailed``/``NotFound`` when it cannot)."""
        from upkeep.notify.channels import get_channel, send

        send(get_channel(self.store, name), title, body, notify_type)

    def digest(self, period: str, now: datetime) -> dict[str, Any]:
        """The day/week/month digest ending at ``now`` (``upkeep.reports.build_digest``)."""
        from upkeep.reports import build_digest

        return build_digest(self, period, now)

    def render_digest(self, digest: dict[str, Any], form: str) -> str:
        """A digest as ``markdown`` (the message) or ``html`` (the saved report)."""
        from upkeep.reports import render_html, render_markdown

        return {"markdown": render_markdown, "html": render_html}[form](digest)

    # --- approval steps (procedure.execute) ----------------------------------------------------

    def approvals_of(self, run_id: int) -> dict[int, dict[str, Any]]:
        """The run's approvals by 0-based step (``upkeep.people.approvals.decisions``)."""
        from upkeep.people.approvals import decisions

        return decisions(self.store, run_id)

    def request_approval(self, *, channels: list[str] | None, **fields: Any) -> tuple[dict[str, Any], list[str]]:
        """Ask for an approval and tell ``channels`` (default: the task's notify channels) once;
        returns the approval and the channels that could not be told, with why."""
        from upkeep.people.approvals import request

        approval, new = request(self.store, **fields)
        if not new:
            return approval, []
        if channels is None:
            with self.store.read() as s:
                notify = s.execute(
                    sa.select(scheduled_tasks.c.notify).where(scheduled_tasks.c.name == approval["task_name"])
                ).scalar()
            channels = list((notify or {}).get("channels", []))
        title = f"upkeep: approval needed for {approval['task_name'] or 'a procedure'}, step {approval['step']}"
        body = (
            f"{approval['message'] or approval['step_name']}\n\nRun {approval['run_id']} waits for a person with the "
            f"{approval['role']} role until {approval['expires_at']}: `upkeep approvals approve {approval['id']} "
            f"--as NAME` (or reject), the API or the UI's run page."
        )
        failed = []
        for name in channels:
            try:
                self.send_to_channel(name, title, body, "warning")
            except Exception as exc:
                failed.append(f"{name}: {exc}")
        return approval, failed

    # --- checklists (checklist.run) ------------------------------------------------------------

    def task_title(self, name: str | None) -> str | None:
        """A task's description, else its name (what a checklist it opens is called)."""
        if name is None:
            return None
        with self.store.read() as s:
            description = s.execute(
                sa.select(scheduled_tasks.c.description).where(scheduled_tasks.c.name == name)
            ).scalar()
        return description or name

    def open_checklist(self, **fields: Any) -> dict[str, Any]:
        """Open a checklist instance (``upkeep.people.checklists.open_checklist``)."""
        from upkeep.people.checklists import open_checklist

        return open_checklist(self.store, **fields)

    def preview_checklist(self, items: list, now: datetime) -> list[dict[str, Any] | None]:
        """What each automatic item would be judged now (a dry run), writing nothing."""
        from upkeep.people.checklists import preview

        return preview(self.store, items, now)
