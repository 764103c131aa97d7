"""``WalCheckpointer``: SQLite's WAL checkpoints of ``upkeep serve`` in a thread of their own.

SQLite checkpoints on the commit that takes the WAL past 1000 pages: that commit copies the WAL's
pages into the database and fsyncs it before it returns. At 10,000 runs a minute it was a commit of
the scheduler's tick or of the executor's hand-over every 0.2 s or so, 3-7 ms each on a quiet disk
and up to 100 ms beside other disk work, and the slots due meanwhile waited (the measurements:
benchmarks/README.md). Serve's connections leave the checkpoints to this thread, whose PASSIVE
checkpoints wait for no reader or writer; the commits stay as durable as they were
(``synchronous=NORMAL``: a checkpoint moves pages, it does not make a commit durable).
"""

from __future__ import annotations

import logging

from upkeep.engine.background import Background
from upkeep.store.db import Store

log = logging.getLogger(__name__)

# the WAL grows by about this many seconds of writes between two checkpoints (a few MB at 10,000
# runs a minute); an idle store's checkpoint finds nothing to copy
CHECKPOINT_SECONDS = 0.5


class WalCheckpointer(Background):
    """Checkpoints ``store`` every ``every`` seconds while its own commits do not."""

    thread_name = "wal-checkpoint"

    def __init__(self, store: Store, every: float = CHECKPOINT_SECONDS):
        super().__init__()
        self.store, self.every = store, every

    def start(self) -> None:
        self.store.defer_checkpoints()
        super().start()

    def run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.store.checkpoint()
            except Exception:
                log.exception("WAL checkpoint failed; trying again in %gs", self.every)
