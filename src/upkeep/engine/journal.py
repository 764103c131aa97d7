"""The store-backed journal a ``RunContext`` writes to: events, progress, heartbeats, cancel flags.

Every write goes through the lifecycle's named operations.
"""

from __future__ import annotations

from upkeep.engine import lifecycle
from upkeep.store.db import Store


class StoreJournal:
    def __init__(self, store: Store):
        self.store = store

    def event(self, run_id: int, level: str, event: str, message: str, data: dict | None) -> None:
        lifecycle.event(self.store, run_id, level, event, message, data)

    def progress(self, run_id: int, fraction: float | None, message: str | None) -> None:
        lifecycle.progress(self.store, run_id, fraction, message)

    def heartbeat(self, run_id: int) -> None:
        lifecycle.heartbeat_many(self.store, [run_id])

    def cancel_requested(self, run_id: int) -> bool:
        return lifecycle.cancel_requested(self.store, run_id)
