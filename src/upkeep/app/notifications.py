"""The notification use cases of ``/alerts`` and ``/api/v1/channels``: the channels with a test
that really sends through one, and the recent notifications with what became of each.

A test goes through the channel exactly as an alert would (``upkeep.notify.channels.send``); its
outcome is kept in the notification history (kind ``test``) and the audit log, whether the channel
took it or not. Recent notifications are the outbox (messages waiting: queued, or pending a retry
after a failure, with the last error and when the next attempt is due) followed by the history
(delivered, suppressed by a silence, failed, dropped), newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from upkeep.notify import outbox
from upkeep.notify.channels import get_channel, load_channels, send
from upkeep.store.db import Store
from upkeep.store.models import AuditEntry

TEST_TITLE = "[upkeep] TEST {name}: test message"
TEST_BODY = (
    "This is a test message from upkeep to the channel {name!r}, sent by {actor}.\n"
    "If you can read it, alerts sent to this channel arrive."
)
# what the page calls a status of the history or the outbox
STATUS_LABEL = {
    "sent": "delivered",
    "suppressed": "suppressed",
    "failed": "failed",
    "dropped": "dropped",
    "queued": "queued",
    "retrying": "pending retry",
}


def list_channels(store: Store) -> list[dict[str, Any]]:
    """The channels ``upkeep apply`` stored, by name: URLs with references kept, passwords hidden."""
    return [
        {"name": c.name, "url": c.display_url, "default": c.default, "timeout": c.timeout}
        for c in sorted(load_channels(store).values(), key=lambda c: c.name)
    ]


def send_channel_test(store: Store, name: str, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Send a test message through channel ``name`` now and say what became of it: ``sent``, or
    ``failed`` with the channel's error (secrets scrubbed). NotFound for an unknown channel."""
    now = now or datetime.now(UTC)
    channel = get_channel(store, name)
    note = outbox.Notification(
        task=None,
        channel=name,
        kind="test",
        title=TEST_TITLE.format(name=name),
        body=TEST_BODY.format(name=name, actor=actor),
        at=now.isoformat(),
    )
    try:
        send(channel, note.title, note.body, "info")
        note.status = "sent"
    except Exception as exc:  # the outcome of a test is what the page shows, not an error of the call
        note.status, note.error = "failed", str(getattr(exc, "message", None) or exc)[:500]
    with store.write() as s:
        outbox.add_history(s, [note])
        s.add(
            AuditEntry(
                ts=now,
                actor=actor,
                action="test",
                object_type="channel",
                object_id=name,
                before=None,
                after={"status": note.status, "error": note.error},
                detail=None,
            )
        )
    return {"channel": name, "url": channel.display_url, "status": note.status, "error": note.error, "at": note.at}


def recent_notifications(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Messages waiting in the outbox (newest first), then the last ``limit`` of the history.

    Each: ``at``, ``channel``, ``kind``, ``title``, ``status`` (``queued`` | ``retrying`` |
    ``sent`` | ``suppressed`` | ``failed`` | ``dropped``), ``label`` (how the page says it),
    ``error``, ``attempts`` and ``next_attempt_at`` (waiting ones), ``run_id``, ``alert_id``."""
    rows = []
    for item in reversed(outbox.pending(store)):
        attempts = int(item.get("attempts") or 0)
        status = "retrying" if attempts else "queued"
        rows.append(
            {
                "at": item.get("created_at"),
                "channel": item.get("channel"),
                "kind": item.get("kind") or "",
                "title": item.get("title") or "",
                "status": status,
                "error": item.get("error"),
                "attempts": attempts,
                "next_attempt_at": item.get("next_attempt_at"),
                "run_id": item.get("run_id"),
                "alert_id": item.get("alert_id"),
            }
        )
    for item in outbox.history(store, limit):
        rows.append(
            {
                "at": item.get("at"),
                "channel": item.get("channel"),
                "kind": item.get("kind") or "",
                "title": item.get("title") or "",
                "status": item.get("status") or "",
                "error": item.get("error"),
                "attempts": None,
                "next_attempt_at": None,
                "run_id": item.get("run_id"),
                "alert_id": item.get("alert_id"),
            }
        )
    for row in rows:
        row["label"] = STATUS_LABEL.get(row["status"], row["status"])
    return rows
