"""The outbox: alert messages waiting to be delivered, kept in the store until a channel takes them.

The alerter decides and enqueues in one transaction (with the alert state and its cursor), then
delivers after the commit. A channel that fails keeps its messages: they are retried at the next
evaluation, then with backoff (``RETRY_BACKOFF``, capped at ``RETRY_BACKOFF_MAX``); a message still
undelivered after ``MAX_AGE_SECONDS`` is dropped with an error in the log and the history. A
message is leased while it is being sent, so two alerters never send it twice. A silence that
starts before delivery still suppresses it. A message of an alert (``upkeep.notify.alerts``) updates
that alert's delivery row with what became of it.

The last ``HISTORY_SIZE`` deliveries (sent, suppressed, failed, dropped) are kept in the records
domain ``_alerts``, key ``history``, newest first.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.notify.channels import Channel, send
from upkeep.notify.silences import Subject, active_silences, matching_silence
from upkeep.store import records as _records
from upkeep.store.db import Store
from upkeep.store.models import AlertDelivery

log = logging.getLogger(__name__)

OUTBOX_DOMAIN = "_alerts_outbox"
ALERTS_DOMAIN = "_alerts"
HISTORY_SIZE = 200
RETRY_BACKOFF = 30.0  # seconds before the 2nd retry; doubles each time
RETRY_BACKOFF_MAX = 900.0
MAX_AGE_SECONDS = 24 * 3600.0
BATCH = 200


@dataclass
class Notification:
    """One message for one channel and what became of it."""

    task: str | None
    channel: str
    kind: str  # failure | outcome | recovery | overdue | test
    title: str
    body: str
    notify_type: str = "info"
    run_id: int | None = None
    status: str = "queued"  # queued | sent | suppressed | failed | dropped
    error: str | None = None
    at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    alert_id: int | None = None
    delivery_id: int | None = None
    subject: dict[str, Any] | None = None  # ``silences.Subject.as_dict()``, to match silences at delivery

    def as_history(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("body", "extra", "delivery_id", "subject"):
            data.pop(key)
        return data


def _iso(value: datetime) -> str:
    return value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_seq = 0


def enqueue(s, note: Notification, now: datetime) -> str:
    global _seq
    _seq = (_seq + 1) % 10_000
    key = f"{time.time_ns():020d}-{_seq:04d}"
    value = {
        "task": note.task,
        "channel": note.channel,
        "kind": note.kind,
        "title": note.title,
        "body": note.body,
        "notify_type": note.notify_type,
        "run_id": note.run_id,
        "alert_id": note.alert_id,
        "delivery_id": note.delivery_id,
        "subject": note.subject,
        "created_at": _iso(now),
        "attempts": 0,
        "next_attempt_at": _iso(now),
        "lease_until": None,
        "error": None,
    }
    _records.put(s, OUTBOX_DOMAIN, key, value)
    return key


def add_history(s, notes: list[Notification]) -> None:
    if not notes:
        return
    history = _records.get(s, ALERTS_DOMAIN, "history", [], lock=True) or []
    history = [n.as_history() for n in reversed(notes)] + history
    _records.put(s, ALERTS_DOMAIN, "history", history[:HISTORY_SIZE])


def history(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    with store.read() as s:
        return (_records.get(s, ALERTS_DOMAIN, "history", []) or [])[:limit]


def pending(store: Store) -> list[dict[str, Any]]:
    with store.read() as s:
        return [{"key": k, **v} for k, v in _records.items(s, OUTBOX_DOMAIN, limit=1000)]


def _claim(store: Store, key: str, now: datetime, lease_seconds: float) -> dict | None:
    with store.write() as s:
        item = _records.get(s, OUTBOX_DOMAIN, key, lock=True)
        if item is None:
            return None
        lease = _parse(item.get("lease_until"))
        due = _parse(item.get("next_attempt_at")) or now
        if due > now or (lease is not None and lease > now):
            return None
        item["lease_until"] = _iso(now + timedelta(seconds=lease_seconds))
        _records.put(s, OUTBOX_DOMAIN, key, item)
        return item


def _note_of(item: dict) -> Notification:
    return Notification(
        task=item.get("task"),
        channel=item["channel"],
        kind=item.get("kind", ""),
        title=item.get("title", ""),
        body=item.get("body", ""),
        notify_type=item.get("notify_type", "info"),
        run_id=item.get("run_id"),
        alert_id=item.get("alert_id"),
        delivery_id=item.get("delivery_id"),
        subject=item.get("subject"),
    )


def deliver(store: Store, channels: dict[str, Channel], now: datetime) -> list[Notification]:
    """Send every due message; one thread per channel, messages of a channel in order."""
    with store.read() as s:
        queued = _records.items(s, OUTBOX_DOMAIN, limit=BATCH)
        silences = active_silences(s, now)
    by_channel: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for key, item in queued:
        due = _parse(item.get("next_attempt_at")) or now
        lease = _parse(item.get("lease_until"))
        if due <= now and (lease is None or lease <= now):
            by_channel[item["channel"]].append((key, item))
    if not by_channel:
        return []

    def channel_worker(name: str) -> list[tuple[str, dict, Notification]]:
        done = []
        channel = channels.get(name)
        for key, _ in by_channel[name]:
            item = _claim(store, key, now, (channel.timeout if channel else 30.0) + 30.0)
            if item is None:
                continue
            note = _note_of(item)
            note.at = _iso(now)
            if matching_silence(silences, Subject.from_dict(note.subject, note.task), name, now) is not None:
                note.status = "suppressed"
                done.append((key, item, note))
                continue
            try:
                if channel is None:
                    raise LookupError(f"no channel {name!r} is configured (see channels: in upkeep.yaml)")
                send(channel, note.title, note.body, note.notify_type)
                note.status = "sent"
            except Exception as exc:  # a failing channel never stops the loop
                note.status, note.error = "failed", str(exc)[:500]
                log.warning("alert %r to channel %s not delivered: %s", note.title, name, note.error)
                done.append((key, item, note))
                break  # the channel is down: its other messages wait for the next evaluation
            done.append((key, item, note))
        return done

    with ThreadPoolExecutor(max_workers=min(8, len(by_channel)), thread_name_prefix="alert-send") as pool:
        results = [r for chunk in pool.map(channel_worker, list(by_channel)) for r in chunk]
    notes = []
    with store.write() as s:
        for key, item, note in results:
            if note.status in ("sent", "suppressed"):
                _records.delete(s, OUTBOX_DOMAIN, key)
            else:
                attempts = int(item.get("attempts", 0)) + 1
                created = _parse(item.get("created_at")) or now
                if (now - created).total_seconds() >= MAX_AGE_SECONDS:
                    note.status = "dropped"
                    log.error(
                        "alert %r to channel %s dropped after %d attempts: %s",
                        note.title,
                        note.channel,
                        attempts,
                        note.error,
                    )
                    _records.delete(s, OUTBOX_DOMAIN, key)
                else:
                    delay = 0.0 if attempts == 1 else min(RETRY_BACKOFF * 2 ** (attempts - 2), RETRY_BACKOFF_MAX)
                    item.update(
                        attempts=attempts,
                        error=note.error,
                        lease_until=None,
                        next_attempt_at=_iso(now + timedelta(seconds=delay)),
                    )
                    _records.put(s, OUTBOX_DOMAIN, key, item)
            notes.append(note)
            if note.delivery_id is not None:
                s.execute(
                    sa.update(AlertDelivery)
                    .where(AlertDelivery.id == note.delivery_id)
                    .values(status=note.status, error=note.error, updated_at=now)
                )
        add_history(s, notes)
    return notes
