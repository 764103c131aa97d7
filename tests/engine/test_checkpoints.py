"""SQLite's WAL checkpoints under ``upkeep serve``: its commits leave them to a thread of its own."""

from __future__ import annotations

import time

from upkeep.engine.checkpoints import WalCheckpointer
from upkeep.store.db import Store
from upkeep.store.records import put_many

PAGE_SIZED = "x" * 3500  # a record of about one 4 KiB page


def _store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path}/upkeep.db")
    store.upgrade()
    store.checkpoint()
    return store


def _write_pages(store: Store, count: int, prefix: str = "p") -> None:
    """About ``count`` pages of records, 100 records a transaction."""
    for first in range(0, count, 100):
        with store.write() as s:
            put_many(s, "test", {f"{prefix}{i}": PAGE_SIZED for i in range(first, first + 100)})


def test_a_store_checkpoints_when_a_commit_takes_the_wal_past_1000_pages(tmp_path):
    store = _store(tmp_path)
    _write_pages(store, 1500)
    busy, frames, done = store.checkpoint()
    assert busy == 0 and frames < 1000  # a commit checkpointed and the WAL started again
    store.dispose()


def test_a_store_that_defers_checkpoints_leaves_the_whole_wal_to_its_checkpoint(tmp_path):
    store = _store(tmp_path)
    store.defer_checkpoints()
    _write_pages(store, 1500)
    busy, frames, done = store.checkpoint()
    assert busy == 0 and frames >= 1500 and done == frames  # no commit checkpointed; this one copied it all
    _write_pages(store, 100, prefix="q")
    assert store.checkpoint()[1] < 1500  # after a complete checkpoint the WAL starts again
    store.dispose()


def test_the_checkpointer_copies_the_wal_into_the_database_while_serve_commits_do_not(tmp_path):
    store = _store(tmp_path)
    database = tmp_path / "upkeep.db"
    before = database.stat().st_size
    checkpointer = WalCheckpointer(store, every=0.05)
    checkpointer.start()
    try:
        _write_pages(store, 1500)
        deadline = time.monotonic() + 30
        while database.stat().st_size < before + 1500 * 4096 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size >= before + 1500 * 4096
    finally:
        checkpointer.stop()
        store.dispose()
