"""The alert use cases, one function each (validate, audit, commit), called alike by the CLI
(``upkeep alerts``, ``upkeep notify silence``), the API (``/api/v1/alerts``, ``/api/v1/silences``),
the UI (``/alerts``, the signed acknowledge link) and ``upkeep apply`` (``silences:``).

What an alert and a silence are, and how the alerter uses them, is in ``upkeep.notify.alerts`` and
``upkeep.notify.silences``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.errors import Conflict, NotFound, UserError
from upkeep.notify import alerts
from upkeep.notify.silences import describe_match, silence_view, validate_silence
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.models import Alert, AlertDelivery, Heartbeat, ScheduledTask, Silence

MAX_LIST = 1000


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


# --- alerts ----------------------------------------------------------------------------------


def list_alerts(store: Store, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first, each with its deliveries (oldest first); ``state`` filters."""
    if state is not None and state not in alerts.STATES:
        raise UserError(f"unknown state {state!r}", hint=f"one of {', '.join(alerts.STATES)}", field="state")
    query = sa.select(Alert).order_by(Alert.id.desc()).limit(max(1, min(limit, MAX_LIST)))
    if state:
        query = query.where(Alert.state == state)
    with store.read() as s:
        rows = list(s.execute(query).scalars())
        deliveries: dict[int, list[AlertDelivery]] = {row.id: [] for row in rows}
        if rows:
            for delivery in s.execute(
                sa.select(AlertDelivery).where(AlertDelivery.alert_id.in_(list(deliveries))).order_by(AlertDelivery.id)
            ).scalars():
                deliveries[delivery.alert_id].append(delivery)
        return [alerts.alert_view(row, deliveries[row.id]) for row in rows]


def _alert(s: Session, alert_id: int, *, lock: bool = False) -> Alert:
    query = sa.select(Alert).where(Alert.id == alert_id)
    if lock and s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = s.execute(query).scalar()
    if row is None:
        raise NotFound(f"no alert {alert_id}", hint="`upkeep alerts list` shows the alerts", field="alert")
    return row


def _view(s: Session, row: Alert) -> dict[str, Any]:
    deliveries = list(
        s.execute(sa.select(AlertDelivery).where(AlertDelivery.alert_id == row.id).order_by(AlertDelivery.id)).scalars()
    )
    return alerts.alert_view(row, deliveries)


def get_alert(store: Store, alert_id: int) -> dict[str, Any]:
    with store.read() as s:
        return _view(s, _alert(s, alert_id))


def acknowledge(store: Store, alert_id: int, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Take an open alert: its escalation and reminders stop; it resolves when the problem ends.
    Acknowledging it again changes nothing; a resolved alert cannot be acknowledged (409)."""
    now = _now(now)
    with store.write() as s:
        row = _alert(s, alert_id, lock=True)
        if row.state == alerts.RESOLVED:
            raise Conflict(f"alert {alert_id} is resolved already", field="alert")
        if row.state == alerts.OPEN:
            row.state = alerts.ACKNOWLEDGED
            row.acknowledged_at = row.updated_at = now
            row.acknowledged_by = actor
            change = {"before": {"state": alerts.OPEN}, "after": {"state": row.state}, "detail": row.title}
            add_audit(s, ts=now, actor=actor, action="acknowledge", object_type="alert", object_id=row.id, **change)
        return _view(s, row)


def _linked(s: Session, token: str) -> Alert:
    secret = alerts.link_secret(s, create=False)  # none yet: no link was ever made
    found = alerts.read_token(secret, token) if secret else None
    row = s.get(Alert, found[0]) if found else None
    if row is None or row.nonce != found[1]:
        raise NotFound("this acknowledge link is not valid", hint="open the alert from /alerts instead", field="link")
    return row


def alert_for_link(store: Store, token: str) -> dict[str, Any]:
    """The alert a signed link opens (NotFound for a forged or foreign one)."""
    with store.read() as s:
        return alerts.alert_view(_linked(s, token))


def acknowledge_link(store: Store, token: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Acknowledge the alert of a signed link; the audit names the link, not a person."""
    with store.read() as s:
        alert_id = _linked(s, token).id
    return acknowledge(store, alert_id, actor=f"link:alert-{alert_id}", now=now)


def targets_overview(store: Store, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every target's last check with its annotation (during maintenance, because a parent is
    down), the maintenance running on it now and its unresolved alert (``upkeep.notify.targets``)."""
    from upkeep.notify.targets import overview

    with store.read() as s:
        return overview(s, _now(now))


def open_alert_count(store: Store) -> dict[str, int]:
    """How many alerts are open and acknowledged (the dashboard's figures)."""
    with store.read() as s:
        counts = dict(
            s.execute(
                sa.select(Alert.state, sa.func.count(Alert.id))
                .where(Alert.state != alerts.RESOLVED)
                .group_by(Alert.state)
            ).all()
        )
    return {state: counts.get(state, 0) for state in (alerts.OPEN, alerts.ACKNOWLEDGED)}


# --- silences --------------------------------------------------------------------------------


def _check_references(s: Session, store: Store, match: dict[str, str]) -> None:
    """A silence made through the API or the CLI names things that exist (the file's references are
    checked against the file by ``upkeep apply``)."""
    from upkeep.notify.channels import load_channels
    from upkeep.store.records import load_targets

    if (
        "task" in match
        and s.execute(sa.select(ScheduledTask.id).where(ScheduledTask.name == match["task"])).first() is None
    ):
        raise NotFound(f"no task {match['task']!r}", hint="`upkeep tasks list` shows the tasks", field="match.task")
    if (
        "heartbeat" in match
        and s.execute(sa.select(Heartbeat.id).where(Heartbeat.name == match["heartbeat"])).first() is None
    ):
        raise NotFound(f"no heartbeat monitor {match['heartbeat']!r}", field="match.heartbeat")
    if "target" in match:
        kind, _, name = match["target"].partition(".")
        if name not in (load_targets(store).get(kind) or {}):
            raise NotFound(
                f"no target {match['target']!r}", hint="write KIND.NAME, e.g. services.api", field="match.target"
            )
    if "channel" in match and match["channel"] not in load_channels(store):
        raise NotFound(f"no channel {match['channel']!r}", hint="channels: in upkeep.yaml", field="match.channel")


def create_silence(
    store: Store,
    *,
    match: dict[str, Any],
    windows: list[str] | None = None,
    until: datetime | None = None,
    reason: str = "",
    actor: str,
    now: datetime | None = None,
    managed_by: str = "api",
) -> dict[str, Any]:
    """A silence of the alerts ``match`` fits: during ``windows`` (recurring), until ``until``, or
    both. Made by the API, UI or CLI, its references must exist; made by the file, ``upkeep apply``
    checked them."""
    now = _now(now)
    match, windows = validate_silence(match, windows or [], until)
    if until is not None and until <= now:
        raise UserError(f"until {until.isoformat()} is not in the future", field="until")
    with store.write() as s:
        if managed_by != "file":
            _check_references(s, store, match)
        row = Silence(
            match=match,
            windows=windows,
            until=until.astimezone(UTC) if until else None,
            reason=reason or "",
            managed_by=managed_by,
            created_by=actor,
            created_at=now,
        )
        s.add(row)
        s.flush()
        view = silence_view(row, now)
        detail = reason or describe_match(match)
        add_audit(
            s, ts=now, actor=actor, action="silence", object_type="silence", object_id=row.id, after=view, detail=detail
        )
    return view


def _silence(s: Session, silence_id: int) -> Silence:
    row = s.get(Silence, silence_id)
    if row is None:
        raise NotFound(f"no silence {silence_id}", hint="`upkeep notify silences list`", field="silence")
    return row


def update_silence(
    store: Store,
    silence_id: int,
    *,
    reason: str,
    actor: str,
    now: datetime | None = None,
    managed_by: str | None = None,
) -> dict[str, Any]:
    """Change a silence's reason (and, for ``upkeep apply``, take it over as file-made)."""
    now = _now(now)
    with store.write() as s:
        row = _silence(s, silence_id)
        before = silence_view(row, now)
        row.reason = reason
        if managed_by:
            row.managed_by = managed_by
        after = silence_view(row, now)
        if after != before:
            add_audit(
                s,
                ts=now,
                actor=actor,
                action="update",
                object_type="silence",
                object_id=row.id,
                before=before,
                after=after,
            )
    return after


def expire_silence(store: Store, silence_id: int, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """End a silence now (kept, ended, for the history). A silence from upkeep.yaml is ended in
    the file: remove it there and run ``upkeep apply --prune``."""
    now = _now(now)
    with store.write() as s:
        row = _silence(s, silence_id)
        if row.managed_by == "file":
            raise Conflict(
                f"silence {silence_id} comes from upkeep.yaml",
                hint="remove it from silences: in upkeep.yaml and run `upkeep apply --prune`",
                field="silence",
            )
        before = silence_view(row, now)
        if row.until is None or row.until > now:
            row.until = now
        after = silence_view(row, now)
        add_audit(
            s,
            ts=now,
            actor=actor,
            action="unsilence",
            object_type="silence",
            object_id=row.id,
            before=before,
            after=after,
        )
    return after


def delete_silence(store: Store, silence_id: int, *, actor: str, now: datetime | None = None) -> None:
    """Delete a silence (``upkeep apply --prune`` of one the file no longer lists)."""
    now = _now(now)
    with store.write() as s:
        row = _silence(s, silence_id)
        add_audit(
            s,
            ts=now,
            actor=actor,
            action="delete",
            object_type="silence",
            object_id=row.id,
            before=silence_view(row, now),
        )
        s.delete(row)


def list_silences(store: Store, *, include_ended: bool = False, now: datetime | None = None) -> list[dict]:
    """Silences that have not ended (with ``include_ended``, all), newest first."""
    now = _now(now)
    query = sa.select(Silence).order_by(Silence.id.desc())
    if not include_ended:
        query = query.where(sa.or_(Silence.until.is_(None), Silence.until > now))
    with store.read() as s:
        return [silence_view(r, now) for r in s.execute(query.limit(MAX_LIST)).scalars()]
