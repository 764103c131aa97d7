"""The store survives a PostgreSQL restart: idle pooled connections are pinged and replaced, a
busy one fails once and the operation is retried on a new connection."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from support.servers import start_postgres
from upkeep.store import db
from upkeep.store.db import Store, once_more_if_disconnected


@pytest.fixture(scope="module")
def own_pg():
    server = start_postgres()  # restarted by these tests: not the session's shared server
    try:
        yield server
    finally:
        server.remove()


def _one(store: Store) -> int:
    with store.read_connection() as c:
        return c.execute(sa.text("SELECT 1")).scalar()


def _backend_pid(store: Store) -> int:
    with store.read_connection() as c:
        return c.execute(sa.text("SELECT pg_backend_pid()")).scalar()


def test_a_connection_idle_across_a_restart_is_replaced_before_use(own_pg):
    store = Store(own_pg.url())
    try:
        before = _backend_pid(store)
        own_pg.restart()
        time.sleep(db.PING_AFTER_IDLE_SECONDS + 0.1)
        assert _backend_pid(store) != before  # no error: the ping found it dead and reconnected
    finally:
        store.dispose()


def test_a_connection_in_steady_use_is_not_pinged_an_idle_one_is(own_pg, monkeypatch):
    store = Store(own_pg.url(), pool_size=1)
    pings: list[int] = []
    real_ping = store.engine.dialect.do_ping

    def counting_ping(dbapi_connection):
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(store.engine.dialect, "do_ping", counting_ping)
    try:
        for _ in range(20):
            _one(store)
        assert pings == []  # a round trip saved per transaction
        time.sleep(db.PING_AFTER_IDLE_SECONDS + 0.1)
        _one(store)
        assert pings == [1]
    finally:
        store.dispose()


def test_an_operation_whose_connection_broke_is_retried_once_on_a_new_one(own_pg, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no ping: the statement meets the dead socket
    store = Store(own_pg.url())
    try:
        before = _backend_pid(store)
        own_pg.restart()
        with pytest.raises(sa.exc.OperationalError):
            _one(store)  # without the retry, the caller sees the broken connection
        _one(store)  # the pool holds a live connection again
        own_pg.restart()
        attempts: list[int] = []

        def operation() -> int:
            attempts.append(1)
            return _backend_pid(store)

        after = once_more_if_disconnected(operation)
        assert after != before
        assert len(attempts) == 2
    finally:
        store.dispose()
