"""Silences: suppress alerts of one task, one channel, or one task on one channel, until a time.

A silenced alert is not sent; the alerter records it as ``suppressed`` in its history and the
task's alert state still moves (so the silence ending does not replay old alerts: the next run
that still shows the problem alerts again). Every silence added or removed writes an audit entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.engine.taskspec import parse_duration
from upkeep.errors import NotFound, UserError
from upkeep.store.db import Store
from upkeep.store.models import AuditEntry, ScheduledTask, Silence


def parse_until(text: str, now: datetime) -> datetime:
    """``2h``/``1d``/``90m`` from now, or an ISO-8601 time (UTC when it has no offset)."""
    value = (text or "").strip()
    if not value:
        raise UserError("--until is empty", hint="e.g. --until 2h or --until 2030-01-01T08:00+01:00", field="until")
    try:
        return now + timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"cannot read {value!r} as a time",
            hint="use a duration (2h, 1d) or an ISO-8601 time (2030-01-01T08:00+01:00)",
            field="until",
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def silence_view(row: Silence, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "id": row.id,
        "task": row.task_name,
        "channel": row.channel,
        "until": row.until.isoformat(),
        "reason": row.reason,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "active": row.until > now,
    }


def _silenceable(s, name: str) -> bool:
    """A task, or a heartbeat monitor named as its alerts name it (``heartbeat/NAME``)."""
    from upkeep.heartbeats.state import ALERT_PREFIX
    from upkeep.store.models import Heartbeat

    if name.startswith(ALERT_PREFIX):
        query = sa.select(Heartbeat.id).where(Heartbeat.name == name[len(ALERT_PREFIX) :])
    else:
        query = sa.select(ScheduledTask.id).where(ScheduledTask.name == name)
    return s.execute(query).first() is not None


def add_silence(
    store: Store,
    *,
    until: datetime,
    task: str | None = None,
    channel: str | None = None,
    reason: str = "",
    actor: str = "system",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Silence ``task`` (on every channel), ``channel`` (for every task) or both together."""
    now = now or datetime.now(UTC)
    if not task and not channel:
        raise UserError("a silence needs a task or a channel", hint="give TASK or --channel NAME", field="task")
    if until.tzinfo is None:
        raise UserError("the end of a silence needs a time zone", field="until")
    if until <= now:
        raise UserError(f"--until {until.isoformat()} is not in the future", field="until")
    with store.write() as s:
        if task and not _silenceable(s, task):
            raise NotFound(
                f"no task {task!r}",
                hint="`upkeep tasks list` shows the tasks; a heartbeat monitor is heartbeat/NAME",
                field="task",
            )
        row = Silence(
            task_name=task, channel=channel, until=until, reason=reason or "", created_by=actor, created_at=now
        )
        s.add(row)
        s.flush()
        view = silence_view(row, now)
        s.add(
            AuditEntry(
                ts=now,
                actor=actor,
                action="silence",
                object_type="silence",
                object_id=str(row.id),
                before=None,
                after=view,
                detail=reason or None,
            )
        )
    return view


def remove_silence(store: Store, silence_id: int, *, actor: str = "system", now: datetime | None = None) -> dict:
    """End a silence now (the row is kept, with ``until`` set to now, for the history)."""
    now = now or datetime.now(UTC)
    with store.write() as s:
        row = s.get(Silence, silence_id)
        if row is None:
            raise NotFound(f"no silence {silence_id}", hint="`upkeep notify silences list`", field="silence")
        before = silence_view(row, now)
        if row.until > now:
            row.until = now
        after = silence_view(row, now)
        s.add(
            AuditEntry(
                ts=now,
                actor=actor,
                action="unsilence",
                object_type="silence",
                object_id=str(row.id),
                before=before,
                after=after,
            )
        )
    return after


def list_silences(store: Store, *, include_expired: bool = False, now: datetime | None = None) -> list[dict]:
    now = now or datetime.now(UTC)
    query = sa.select(Silence).order_by(Silence.until.desc(), Silence.id.desc())
    if not include_expired:
        query = query.where(Silence.until > now)
    with store.read() as s:
        return [silence_view(r, now) for r in s.execute(query.limit(1000)).scalars()]


def active_silences(session, now: datetime) -> list[Silence]:
    return list(session.execute(sa.select(Silence).where(Silence.until > now)).scalars())


def matching_silence(silences: Iterable[Silence], task: str | None, channel: str, now: datetime) -> Silence | None:
    """The silence covering ``task`` on ``channel`` at ``now``, if any."""
    for row in silences:
        if row.until <= now:
            continue
        if row.task_name and row.task_name != task:
            continue
        if row.channel and row.channel != channel:
            continue
        if row.task_name or row.channel:
            return row
    return None
