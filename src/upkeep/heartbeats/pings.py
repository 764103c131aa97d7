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

_MONITORS = Heartbeat.__table__
_PINGS = HeartbeatPing.__table__
# Core statements built once: a ping is the hot path, and the ORM's per-statement work would be
# a third of its cost. Bind names differ from the column names (UPDATE reserves those).
_FIND = sa.select(
    _MONITORS.c.id, _MONITORS.c.schedule, _MONITORS.c.timezone, _MONITORS.c.grace_seconds, _MONITORS.c.timeout_seconds
).where(_MONITORS.c.token == sa.bindparam("b_token"))
_LOCK = sa.select(_MONITORS.c.id).where(_MONITORS.c.id == sa.bindparam("b_id")).with_for_update()
_COMMON = {"last_ping_at": sa.bindparam("b_now"), "last_ping_kind": sa.bindparam("b_kind")}
_STARTED = (
    sa.update(_MONITORS)
    .where(_MONITORS.c.id == sa.bindparam("b_id"))
    .values(
        **_COMMON,
        ping_count=_MONITORS.c.ping_count + 1,
        started_at=sa.bindparam("b_now"),
        start_deadline_at=sa.bindparam("b_deadline"),
    )
)
_ENDED = {
    kind: sa.update(_MONITORS)
    .where(_MONITORS.c.id == sa.bindparam("b_id"))
    .values(
        **_COMMON,
        ping_count=_MONITORS.c.ping_count + 1,
        started_at=None,
        start_deadline_at=None,
        expected_at=sa.bindparam("b_expected"),
        overdue_at=sa.bindparam("b_overdue"),
        last_exit_status=sa.bindparam("b_exit"),
        **{column: sa.bindparam("b_now")},
    )
    for kind, column in (("success", "last_success_at"), ("fail", "last_failure_at"))
}
_INSERT = sa.insert(_PINGS)


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
    with store.read_connection() as conn:  # an unknown token costs a read, never the write lock
        row = conn.execute(_FIND, {"b_token": token}).first()
    if row is None:
        return False
    params: dict[str, Any] = {"b_id": row.id, "b_now": now, "b_kind": ping.kind}
    if ping.kind == "start":
        update = _STARTED
        params["b_deadline"] = now + timedelta(seconds=effective_timeout(row.timeout_seconds, row.grace_seconds))
    else:
        update = _ENDED[ping.kind]
        params["b_expected"], params["b_overdue"] = expectation(row.schedule, row.timezone, row.grace_seconds, now)
        params["b_exit"] = ping.exit_status
    with store.write_connection() as conn:
        if store.is_postgres:
            conn.execute(_LOCK, {"b_id": row.id})  # pings of one monitor apply in order
        if not conn.execute(update, params).rowcount:
            return False  # deleted since the lookup
        conn.execute(
            _INSERT,
            {
                "heartbeat_id": row.id,
                "received_at": now,
                "kind": ping.kind,
                "exit_status": ping.exit_status,
                "method": ping.method,
                "source": (ping.source or None) and ping.source[:100],
                "user_agent": ping.user_agent[:USER_AGENT_LIMIT],
                "body": ping.body[:BODY_LIMIT].decode("utf-8", "replace"),
                "body_size": ping.body_size,
                # a start ends nothing: there is nothing to evaluate
                "evaluated_at": now if ping.kind == "start" else None,
            },
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
