"""SQLite writers of one process take turns on a lock of their own (``upkeep.store.db``): a writer
that finds another thread's write transaction open waits for its commit, without retrying SQLite's
lock, and a forked child is not held by a turn its parent's thread had."""

from __future__ import annotations

import os
import threading
import time

import sqlalchemy as sa
from sqlalchemy import event

from upkeep.store.db import Store


def _count_begins(store: Store) -> dict[str, int]:
    """How many ``BEGIN IMMEDIATE`` each thread sent to SQLite, failed tries included."""
    counts: dict[str, int] = {}

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            name = threading.current_thread().name
            counts[name] = counts.get(name, 0) + 1

    event.listen(store.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(trace))
    store.engine.dispose()  # connections from now on are traced
    return counts


def _create_scratch(store: Store) -> None:
    with store.write_connection() as c:
        c.exec_driver_sql("CREATE TABLE scratch (who TEXT)")


def test_a_second_writer_waits_for_the_first_to_commit_without_retrying(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'upkeep.db'}")
    _create_scratch(store)
    begins = _count_begins(store)
    second_waiting = threading.Event()
    order: list[str] = []

    def second() -> None:
        second_waiting.set()
        with store.write_connection() as c:
            c.exec_driver_sql("INSERT INTO scratch VALUES ('second')")
            order.append("second")

    with store.write() as s:
        s.execute(sa.text("INSERT INTO scratch VALUES ('first')"))
        writer = threading.Thread(target=second, name="second")
        writer.start()
        second_waiting.wait(5)
        # long enough for a writer retrying SQLite's lock (every 0.1 to 1 ms) to try many times
        time.sleep(0.3)
        assert order == []
        order.append("first")
    writer.join(10)

    assert order == ["first", "second"]
    assert begins.get("second") == 1, begins
    with store.read_connection() as c:
        assert [r[0] for r in c.exec_driver_sql("SELECT who FROM scratch ORDER BY rowid")] == ["first", "second"]
    store.dispose()


def test_a_forked_child_is_not_held_by_the_turn_a_parent_thread_had(tmp_path):
    # the turn alone, without a transaction: a child forked while the parent held SQLite's lock
    # could not write anyway (SQLite's own lock state is per process, and the child inherits it)
    url = f"sqlite:///{tmp_path / 'upkeep.db'}"
    store = Store(url)
    _create_scratch(store)
    holding, release = threading.Event(), threading.Event()

    def parent_turn() -> None:
        with store._writer_turn():
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=parent_turn)
    holder.start()
    assert holding.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: its own store of the same database
            code = 1
            try:
                with Store(url).write_connection() as c:
                    c.exec_driver_sql("INSERT INTO scratch VALUES ('child')")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join(10)

    assert os.waitstatus_to_exitcode(status) == 0
    with store.read_connection() as c:
        assert [r[0] for r in c.exec_driver_sql("SELECT who FROM scratch")] == ["child"]
    store.dispose()
