"""A run's events: each takes the next sequence number from ``runs.event_count``."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from upkeep.store.run_tables import run_events, runs

MAX_MESSAGE = 8000

RUNS = runs
EVENTS = run_events
EVENTS_INSERT = sa.insert(EVENTS)
_NEXT_SEQ = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .values(event_count=RUNS.c.event_count + 1)
    .returning(RUNS.c.event_count)
)


def event_row(run_id: int, seq: int, level: str, event: str, message: str, data: dict | None, ts=None) -> dict:
    """The column values of one event (``seq`` taken from ``runs.event_count`` by the caller)."""
    return {
        "run_id": run_id,
        "seq": seq,
        "ts": ts or datetime.now(UTC),
        "level": level,
        "event": event[:100],
        "message": (message or "")[:MAX_MESSAGE],
        "data": data,
    }


def insert_event(
    session, run_id: int, seq: int, level: str, event: str, message: str, data: dict | None, ts=None
) -> None:
    """Insert an event whose sequence number the caller already took from ``runs.event_count``."""
    session.execute(EVENTS_INSERT, event_row(run_id, seq, level, event, message, data, ts))


def append_event(session, run_id: int, level: str, event: str, message: str, data: dict | None, ts=None) -> int:
    """Append one event with the run's next sequence number; returns the sequence number."""
    seq = session.execute(_NEXT_SEQ, {"run_id": run_id}).scalar_one()
    insert_event(session, run_id, seq, level, event, message, data, ts)
    return seq
