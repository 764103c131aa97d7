"""Heartbeat monitors: every use case the CLI, the API, the UI and ``apply`` perform on them.

Plain functions over a store. Each change validates first, writes an audit entry (object type
``heartbeat``) in the same transaction, and returns the monitor's view. A monitor's token is
made once, at creation, and never changes: not by an edit, not by ``apply``, not by a restart;
it lives in the ``heartbeats`` table, so a backup of the store keeps it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.engine.schedules import explain_schedule
from upkeep.errors import Conflict, NotFound, UserError
from upkeep.heartbeats.spec import HeartbeatSpec, format_duration, normalized, validate_heartbeat
from upkeep.heartbeats.state import alert_name, effective_timeout, expectation, schedule_for, status_of
from upkeep.settings import base_url
from upkeep.store.db import Store
from upkeep.store.models import AlertState, AuditEntry, Heartbeat, HeartbeatPing

RECENT_PINGS = 20


def new_token() -> str:
    """192 random bits, URL-safe: unguessable, and short enough for a crontab line."""
    return secrets.token_urlsafe(24)


def ping_url(settings: Any, token: str) -> str:
    """``{UPKEEP_PUBLIC_URL}/ping/{token}`` (without a public URL: this server's host and port)."""
    return f"{base_url(settings)}/ping/{token}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def spec_of(row: Heartbeat) -> dict[str, Any]:
    """The monitor as the file and the API write it (normalized)."""
    return {
        "name": row.name,
        "description": row.description,
        "schedule": row.schedule,
        "timezone": row.timezone,
        "grace": format_duration(row.grace_seconds),
        "timeout": format_duration(row.timeout_seconds) if row.timeout_seconds else None,
        "notify": row.notify or {},
    }


def view(row: Heartbeat, now: datetime, *, settings: Any = None, with_url: bool = False) -> dict[str, Any]:
    """A monitor for people and programs; the ping URL (which holds the token) only when asked."""
    status, reason = status_of(row, now)
    try:
        schedule = schedule_for(row.schedule, row.timezone)
        if schedule.kind == "every":  # a monitor counts from the previous ping, not from an anchor
            schedule_text = f"Within {format_duration(schedule.period_seconds or 0)} of the previous ping"
        else:
            schedule_text = explain_schedule(row.schedule, row.timezone, count=0)["text"]
    except UserError as exc:
        schedule_text = f"invalid schedule: {exc}"
    out = {
        "id": row.id,
        **spec_of(row),
        "schedule_text": schedule_text,
        "paused": row.paused,
        "managed_by": row.managed_by,
        "status": status,
        "status_reason": reason,
        "expected_at": _iso(row.expected_at),
        "overdue_at": _iso(row.overdue_at),
        "started_at": _iso(row.started_at),
        "last_ping_at": _iso(row.last_ping_at),
        "last_ping_kind": row.last_ping_kind,
        "last_exit_status": row.last_exit_status,
        "last_success_at": _iso(row.last_success_at),
        "last_failure_at": _iso(row.last_failure_at),
        "ping_count": row.ping_count,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "ping_url": ping_url(settings, row.token) if with_url else None,
    }
    return out


def ping_view(ping: HeartbeatPing) -> dict[str, Any]:
    return {
        "id": ping.id,
        "received_at": _iso(ping.received_at),
        "kind": ping.kind,
        "exit_status": ping.exit_status,
        "method": ping.method,
        "source": ping.source,
        "user_agent": ping.user_agent,
        "body": ping.body,
        "body_size": ping.body_size,
    }


def _audit(s: Session, now: datetime, actor: str, action: str, name: str, before: Any, after: Any) -> None:
    s.add(
        AuditEntry(
            ts=now, actor=actor, action=action, object_type="heartbeat", object_id=name, before=before, after=after
        )
    )


def _find(s: Session, ref: str | int, *, lock: bool = False) -> Heartbeat:
    text = str(ref)
    query = sa.select(Heartbeat)
    if text.isdigit():
        query = query.where(sa.or_(Heartbeat.id == int(text), Heartbeat.name == text))
    else:
        query = query.where(Heartbeat.name == text)
    if lock and s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = s.execute(query).scalars().first()
    if row is None:
        raise NotFound(f"no heartbeat monitor {ref!r}", hint="`upkeep heartbeats list` shows them", field="heartbeat")
    return row


def _set_spec(row: Heartbeat, spec: HeartbeatSpec) -> None:
    data = normalized(spec)
    row.description = data["description"]
    row.schedule = data["schedule"]
    row.timezone = data["timezone"]
    row.grace_seconds = spec.grace_seconds
    row.timeout_seconds = spec.timeout_seconds
    row.notify = data["notify"]


def _expect_from(row: Heartbeat, after: datetime) -> None:
    row.expected_at, row.overdue_at = expectation(row.schedule, row.timezone, row.grace_seconds, after)


# --- reads ------------------------------------------------------------------------------------


def list_heartbeats(
    store: Store, now: datetime, *, status: str | None = None, search: str | None = None
) -> list[dict[str, Any]]:
    query = sa.select(Heartbeat).order_by(Heartbeat.name)
    if search:
        query = query.where(Heartbeat.name.contains(search))
    with store.read() as s:
        views = [view(row, now) for row in s.execute(query).scalars()]
    return [v for v in views if status is None or v["status"] == status]


def get_heartbeat(
    store: Store, ref: str | int, now: datetime, *, settings: Any = None, with_url: bool = False, pings: int = 0
) -> dict[str, Any]:
    with store.read() as s:
        row = _find(s, ref)
        out = view(row, now, settings=settings, with_url=with_url)
        if pings:
            out["pings"] = [
                ping_view(p)
                for p in s.execute(
                    sa.select(HeartbeatPing)
                    .where(HeartbeatPing.heartbeat_id == row.id)
                    .order_by(HeartbeatPing.id.desc())
                    .limit(pings)
                ).scalars()
            ]
    return out


def list_pings(store: Store, ref: str | int, *, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    with store.read() as s:
        row = _find(s, ref)
        where = HeartbeatPing.heartbeat_id == row.id
        total = s.execute(sa.select(sa.func.count(HeartbeatPing.id)).where(where)).scalar_one()
        rows = s.execute(
            sa.select(HeartbeatPing).where(where).order_by(HeartbeatPing.id.desc()).offset(offset).limit(limit)
        ).scalars()
        return [ping_view(p) for p in rows], total


def ping_urls(store: Store, settings: Any) -> dict[str, str]:
    """Every monitor's ping URL, by name (for the local CLI, whose user is trusted with them)."""
    with store.read() as s:
        return {
            name: ping_url(settings, token) for name, token in s.execute(sa.select(Heartbeat.name, Heartbeat.token))
        }


def specs(store: Store, *, file_only: bool = False) -> list[tuple[dict[str, Any], str, dict | None]]:
    """Every monitor's normalized spec, who made it, and the spec the file last applied."""
    query = sa.select(Heartbeat).order_by(Heartbeat.name)
    if file_only:
        query = query.where(Heartbeat.managed_by == "file")
    with store.read() as s:
        return [(spec_of(row), row.managed_by, row.file_spec) for row in s.execute(query).scalars()]


# --- changes ----------------------------------------------------------------------------------


def create_heartbeat(
    store: Store, data: dict[str, Any], *, actor: str, now: datetime, managed_by: str = "api"
) -> dict[str, Any]:
    spec = validate_heartbeat(data)
    with store.write() as s:
        if s.execute(sa.select(Heartbeat.id).where(Heartbeat.name == spec.name)).first():
            raise Conflict(
                f"a heartbeat monitor named {spec.name!r} already exists", hint="choose another name", field="name"
            )
        row = Heartbeat(name=spec.name, token=new_token(), managed_by=managed_by, created_at=now, updated_at=now)
        row.paused, row.ping_count = False, 0
        _set_spec(row, spec)
        _expect_from(row, now)
        if managed_by == "file":
            row.file_spec = spec_of(row)
        s.add(row)
        s.flush()
        _audit(s, now, actor, "create", row.name, None, spec_of(row))
        return view(row, now)


def update_heartbeat(
    store: Store,
    ref: str | int,
    changes: dict[str, Any],
    *,
    actor: str,
    now: datetime,
    managed_by: str | None = None,
) -> dict[str, Any]:
    """Change a monitor's spec (its token and pings stay). A new schedule or time zone expects
    the next ping from now on; a new grace moves the overdue time of the awaited ping."""
    with store.write() as s:
        row = _find(s, ref, lock=True)
        before = spec_of(row)
        if "name" in changes and changes["name"] != row.name:
            raise UserError("a heartbeat monitor cannot be renamed", hint="create a new one", field="name")
        spec = validate_heartbeat({**before, **changes})
        _set_spec(row, spec)
        after = spec_of(row)
        if (before["schedule"], before["timezone"]) != (after["schedule"], after["timezone"]):
            _expect_from(row, now)
        elif row.expected_at is not None:
            row.overdue_at = row.expected_at + timedelta(seconds=row.grace_seconds)
        if row.started_at is not None:
            timeout = effective_timeout(row.timeout_seconds, row.grace_seconds)
            row.start_deadline_at = row.started_at + timedelta(seconds=timeout)
        if managed_by == "file":
            row.managed_by = "file"
            row.file_spec = after
        if after != before or managed_by:
            row.updated_at = now
        if after != before:
            _audit(s, now, actor, "update", row.name, before, after)
        return view(row, now)


def delete_heartbeat(store: Store, ref: str | int, *, actor: str, now: datetime) -> None:
    with store.write() as s:
        row = _find(s, ref, lock=True)
        before = spec_of(row)
        s.execute(sa.delete(HeartbeatPing).where(HeartbeatPing.heartbeat_id == row.id))
        s.execute(sa.delete(AlertState).where(AlertState.task_name == alert_name(row.name)))
        s.delete(row)
        _audit(s, now, actor, "delete", before["name"], before, None)


def set_paused(store: Store, ref: str | int, paused: bool, *, actor: str, now: datetime) -> dict[str, Any]:
    """Pause (pings are still recorded, nothing alerts) or resume (the next ping is expected from now)."""
    with store.write() as s:
        row = _find(s, ref, lock=True)
        if row.paused != paused:
            row.paused = paused
            row.updated_at = now
            if not paused:
                _expect_from(row, now)
            _audit(s, now, actor, "pause" if paused else "resume", row.name, {"paused": not paused}, {"paused": paused})
        return view(row, now)


def digest(store: Store, since: datetime, now: datetime) -> dict[str, Any]:
    """Every monitor's status now and its pings in the period (for reports). Pings are kept per
    monitor up to the alerter's limit, so a chatty monitor's counts cover its latest pings only."""
    with store.read() as s:
        rows = list(s.execute(sa.select(Heartbeat).order_by(Heartbeat.name)).scalars())
        counts = s.execute(
            sa.select(HeartbeatPing.heartbeat_id, HeartbeatPing.kind, sa.func.count())
            .where(HeartbeatPing.received_at >= since, HeartbeatPing.received_at < now)
            .group_by(HeartbeatPing.heartbeat_id, HeartbeatPing.kind)
        ).all()
    per: dict[int, dict[str, int]] = {}
    for heartbeat_id, kind, n in counts:
        per.setdefault(heartbeat_id, {})[kind] = n
    items = []
    for row in rows:
        status, reason = status_of(row, now)
        kinds = per.get(row.id, {})
        items.append(
            {
                "name": row.name,
                "schedule": row.schedule,
                "status": status,
                "reason": reason,
                "last_ping_at": _iso(row.last_ping_at),
                "successes": kinds.get("success", 0),
                "failures": kinds.get("fail", 0) + kinds.get("timeout", 0),
            }
        )
    return {"monitors": items, "down": [i["name"] for i in items if i["status"] == "down"]}
