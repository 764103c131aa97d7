"""Receiving pings: ``record_ping`` writes one ping and moves its monitor's state, in one transaction.

A success or failure ping ends a run: the next ping is then expected at the schedule's next slot
(``@every``: that long after this ping), and an open ``/start`` closes. A ``/start`` opens a run
that must end within the monitor's timeout. The alerter reads the ``heartbeat_pings`` rows that
end runs (``evaluated_at`` NULL) and applies the notify rules; a ping never sends anything itself.

Pings to unknown tokens are counted (``UnknownPings``), never stored one by one: whoever sprays
random tokens costs upkeep a counter increment each, and one write per ``FLUSH_SECONDS``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.heartbeats.state import effective_timeout, expectation
from upkeep.store.db import Store
from upkeep.store.models import Heartbeat, HeartbeatPing
from upkeep.store.records import Records

BODY_LIMIT = 10_000  # bytes of a ping's body kept (a script's last output lines, typically)
USER_AGENT_LIMIT = 200
DOMAIN = "_heartbeats"  # records: the unknown-token counter
UNKNOWN_KEY = "unknown_pings"
UNKNOWN_RECENT = 20
FLUSH_SECONDS = 5.0

_COLUMNS = (
    Heartbeat.id,
    Heartbeat.schedule,
    Heartbeat.timezone,
    Heartbeat.grace_seconds,
    Heartbeat.timeout_seconds,
    Heartbeat.started_at,
)


@dataclass(frozen=True)
class Ping:
    kind: str  # success | fail | start
    exit_status: int | None = None
    method: str = "GET"
    source: str | None = None
    user_agent: str = ""
    body: bytes = b""
    body_size: int = 0


def record_ping(store: Store, token: str, ping: Ping, now: datetime) -> bool:
    """Record ``ping`` for the monitor holding ``token``; False (and nothing written) when none does."""
    with store.write() as s:
        query = sa.select(*_COLUMNS).where(Heartbeat.token == token)
        if store.is_postgres:
            query = query.with_for_update()  # pings of one monitor apply in order
        row = s.execute(query).first()
        if row is None:
            return False
        values: dict[str, Any] = {
            "last_ping_at": now,
            "last_ping_kind": ping.kind,
            "ping_count": Heartbeat.ping_count + 1,
        }
        if ping.kind == "start":
            timeout = effective_timeout(row.timeout_seconds, row.grace_seconds)
            values.update(started_at=now, start_deadline_at=now + timedelta(seconds=timeout))
        else:
            expected_at, overdue_at = expectation(row.schedule, row.timezone, row.grace_seconds, now)
            values.update(
                started_at=None,
                start_deadline_at=None,
                expected_at=expected_at,
                overdue_at=overdue_at,
                last_exit_status=ping.exit_status,
                **({"last_success_at": now} if ping.kind == "success" else {"last_failure_at": now}),
            )
        s.execute(sa.update(Heartbeat).where(Heartbeat.id == row.id).values(**values))
        s.execute(
            sa.insert(HeartbeatPing).values(
                heartbeat_id=row.id,
                received_at=now,
                kind=ping.kind,
                exit_status=ping.exit_status,
                method=ping.method,
                source=(ping.source or None) and ping.source[:100],
                user_agent=ping.user_agent[:USER_AGENT_LIMIT],
                body=ping.body[:BODY_LIMIT].decode("utf-8", "replace"),
                body_size=ping.body_size,
                # a start ends nothing: there is nothing to evaluate
                evaluated_at=now if ping.kind == "start" else None,
            )
        )
    return True


class UnknownPings:
    """Counts pings to tokens no monitor holds, in memory, written to the store at most every
    ``FLUSH_SECONDS`` (records domain ``_heartbeats``, key ``unknown_pings``: the total, and the
    latest few with a token prefix, the source address and the time, for admins)."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._count = 0
        self._recent: deque[dict[str, Any]] = deque(maxlen=UNKNOWN_RECENT)
        self._flushed_at: datetime | None = None

    def note(self, token: str, source: str | None, now: datetime) -> None:
        with self._lock:
            self._count += 1
            self._recent.appendleft({"at": now.isoformat(), "token": f"{token[:6]}…", "source": source})
            due = self._flushed_at is None or (now - self._flushed_at).total_seconds() >= FLUSH_SECONDS
        if due:
            self.flush(now)

    def flush(self, now: datetime) -> None:
        with self._lock:
            count, recent = self._count, list(self._recent)
            self._count = 0
            self._recent.clear()
            self._flushed_at = now
        if not count:
            return

        def add(value: dict | None) -> dict:
            value = value or {"count": 0, "recent": []}
            return {
                "count": int(value.get("count", 0)) + count,
                "recent": (recent + list(value.get("recent") or []))[:UNKNOWN_RECENT],
                "last_at": recent[0]["at"],
            }

        Records(self.store, DOMAIN).update(UNKNOWN_KEY, add)

    def summary(self, now: datetime) -> dict[str, Any]:
        """What admins see: every unknown ping counted so far (this process's unwritten ones too)."""
        self.flush(now)
        return read_unknown(self.store)


def read_unknown(store: Store) -> dict[str, Any]:
    value = Records(store, DOMAIN).get(UNKNOWN_KEY) or {}
    return {"count": int(value.get("count", 0)), "last_at": value.get("last_at"), "recent": value.get("recent", [])}
