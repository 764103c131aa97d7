"""Alerts as entities: one per problem of one subject (a task, ``heartbeat/NAME``,
``target/KIND.NAME``), from its first message to its resolution, with every message it caused.

- **open**: the alerter's rules sent the first problem message of a subject with no unresolved
  alert (a message a silence held opens it too: the problem is real, nobody was told);
- **acknowledged**: a person took it (UI, ``upkeep alerts ack``, API, or the signed link in its
  messages). Escalation stops, and so do reminders;
- **resolved**: the subject recovered. One resolution goes to every channel that received one of its
  problem messages (escalation channels included), whatever the task's channels are now.

While an alert is open (not acknowledged, not resolved), each step of ``notify.escalate``
(``[{after: 30m, channels: [pager]}]``, copied onto the alert when it opens) sends the alert once
to the step's channels when ``after`` has passed since it opened.

The signed link is ``{public_url}/alerts/ack/{token}``: the token holds the alert's id and a random
nonce of that alert, signed (itsdangerous) with the instance's link secret, which lives in the store
(records ``_alerts``/``link_secret``) so every scheduler and API process shares it. A token opens
only its own alert: changing the id breaks the signature, and another alert has another nonce.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from upkeep.store import records as _records
from upkeep.store.models import Alert, AlertDelivery

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATES = (OPEN, ACKNOWLEDGED, RESOLVED)
PROBLEM_DELIVERIES = ("alert", "repeat", "escalation")
LINK_SALT = "upkeep-alert-ack"
SECRET_DOMAIN, SECRET_KEY = "_alerts", "link_secret"


def unresolved(s: Session, subjects: list[str]) -> dict[str, Alert]:
    """The unresolved alert of each subject that has one."""
    out: dict[str, Alert] = {}
    for i in range(0, len(subjects), 500):
        chunk = subjects[i : i + 500]
        query = sa.select(Alert).where(Alert.subject.in_(chunk), Alert.state != RESOLVED)
        out.update({row.subject: row for row in s.execute(query).scalars()})
    return out


def unresolved_all(s: Session) -> list[Alert]:
    """Every unresolved alert (open or acknowledged): few, by nature."""
    return list(s.execute(sa.select(Alert).where(Alert.state != RESOLVED)).scalars())


def open_alert(
    s: Session,
    *,
    subject: str,
    task_name: str | None,
    kind: str,
    title: str,
    body: str,
    run_id: int | None,
    note: str,
    escalate: list[dict[str, Any]],
    now: datetime,
) -> Alert:
    row = Alert(
        subject=subject,
        task_name=task_name,
        kind=kind,
        state=OPEN,
        title=title,
        body=body,
        run_id=run_id,
        note=note,
        dependents=[],
        escalate=escalate,
        escalated=0,
        nonce=secrets.token_hex(16),
        opened_at=now,
        updated_at=now,
    )
    s.add(row)
    s.flush()
    return row


def add_delivery(s: Session, alert: Alert, channel: str, kind: str, title: str, status: str, now: datetime):
    row = AlertDelivery(
        alert_id=alert.id, channel=channel, kind=kind, title=title, status=status, created_at=now, updated_at=now
    )
    s.add(row)
    s.flush()
    return row


def alerted_channels(s: Session, alert_id: int) -> list[str]:
    """Channels that received (or are about to receive) a problem message of the alert."""
    query = (
        sa.select(AlertDelivery.channel)
        .where(
            AlertDelivery.alert_id == alert_id,
            AlertDelivery.kind.in_(PROBLEM_DELIVERIES),
            AlertDelivery.status.in_(("sent", "queued", "failed")),
        )
        .group_by(AlertDelivery.channel)
        .order_by(sa.func.min(AlertDelivery.id))
    )
    return list(s.execute(query).scalars())


def resolve(alert: Alert, now: datetime) -> None:
    alert.state = RESOLVED
    alert.resolved_at = now
    alert.updated_at = now


def add_dependents(alert: Alert, targets: list[str], now: datetime) -> None:
    """Record targets failing because this alert's target is down (shown with the alert)."""
    known = list(alert.dependents or [])
    fresh = [t for t in targets if t not in known]
    if fresh:
        alert.dependents = sorted(known + fresh)
        alert.updated_at = now


def escalation_due(alert: Alert, now: datetime) -> list[tuple[int, dict[str, Any]]]:
    """``(index, step)`` of the escalation steps of an open alert whose time has come."""
    from upkeep.engine.taskspec import parse_duration

    if alert.state != OPEN:
        return []
    steps = list(alert.escalate or [])
    due = []
    for index in range(alert.escalated, len(steps)):
        step = steps[index]
        if alert.opened_at + timedelta(seconds=parse_duration(step["after"])) > now:
            break
        due.append((index, step))
    return due


def open_alerts(s: Session) -> list[Alert]:
    return list(s.execute(sa.select(Alert).where(Alert.state == OPEN).order_by(Alert.id)).scalars())


# --- the signed acknowledge link -------------------------------------------------------------


def link_secret(s: Session, *, create: bool = True) -> str | None:
    """The instance's link secret, created in the store the first time a link is made."""
    value = _records.get(s, SECRET_DOMAIN, SECRET_KEY)
    if value and value.get("secret"):
        return value["secret"]
    if not create:
        return None
    secret = secrets.token_hex(32)
    _records.put(s, SECRET_DOMAIN, SECRET_KEY, {"secret": secret})
    return secret


def link_token(secret: str, alert: Alert) -> str:
    return URLSafeSerializer(secret, salt=LINK_SALT).dumps([alert.id, alert.nonce])


def read_token(secret: str, token: str) -> tuple[int, str] | None:
    """``(alert id, nonce)`` of a genuine token, None for anything else."""
    try:
        value = URLSafeSerializer(secret, salt=LINK_SALT).loads(token)
    except BadSignature:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str)):
        return None
    return value[0], value[1]


def ack_link(link_base: str, secret: str, alert: Alert) -> str:
    return f"{link_base}/alerts/ack/{link_token(secret, alert)}"


# --- views -----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def delivery_view(row: AlertDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "kind": row.kind,
        "status": row.status,
        "title": row.title,
        "error": row.error,
        "at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def alert_view(row: Alert, deliveries: list[AlertDelivery] | None = None) -> dict[str, Any]:
    view = {
        "id": row.id,
        "subject": row.subject,
        "task": row.task_name,
        "kind": row.kind,
        "state": row.state,
        "title": row.title,
        "body": row.body,
        "run_id": row.run_id,
        "note": row.note,
        "dependents": list(row.dependents or []),
        "escalate": list(row.escalate or []),
        "escalated": row.escalated,
        "opened_at": _iso(row.opened_at),
        "updated_at": _iso(row.updated_at),
        "acknowledged_at": _iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": _iso(row.resolved_at),
    }
    if deliveries is not None:
        view["deliveries"] = [delivery_view(d) for d in deliveries]
    return view
