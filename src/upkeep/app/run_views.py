"""What the adapters show of a run and of its events (plain dicts, secrets redacted), from an ORM
object or a Core row alike: ``upkeep run`` reads runs without the ORM."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from upkeep.secrets import redact


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def run_view(run: Any) -> dict[str, Any]:
    duration = None
    if run.started_at and run.finished_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    return {
        "id": run.id,
        "task_id": run.task_id,
        "task_name": run.task_name,
        "task_type": run.task_type,
        "requested_type": run.requested_type,
        "origin": run.origin,
        "status": run.status,
        "outcome": run.outcome,
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "parent_run_id": run.parent_run_id,
        "scheduled_for": _iso(run.scheduled_for),
        "due_at": _iso(run.due_at),
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "heartbeat_at": _iso(run.heartbeat_at),
        "duration_seconds": duration,
        "dry_run": run.dry_run,
        "config": redact(run.config or {}),
        "queue": run.queue,
        "timeout_seconds": run.timeout_seconds,
        "worker": run.worker,
        "progress": run.progress,
        "progress_message": run.progress_message,
        "summary": run.summary,
        "result": redact(run.result) if run.result is not None else None,
        "error": run.error,
        "cancel_requested": run.cancel_requested_at is not None,
        "triggered_by": run.triggered_by,
        "trigger_run_id": run.trigger_run_id,
        "upstream_runs": run.upstream_runs,
    }


def event_view(e: Any) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "ts": e.ts.isoformat(),
        "level": e.level,
        "event": e.event,
        "message": e.message,
        "data": e.data,
    }
