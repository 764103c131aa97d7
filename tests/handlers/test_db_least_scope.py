"""Least scope: a database task works on the database its target names and opens no connection to
any other database of the server (read from the server's own log), leaving their statistics alone.
"""

from __future__ import annotations

import re
import time

import psycopg
import pytest

from support.contexts import events_of, run_handler
from support.servers import start_postgres

HANDLERS = ("db.vacuum", "db.analyze", "db.reindex", "db.inspect")


@pytest.fixture(scope="module")
def logged_server():
    server = start_postgres({"autovacuum": "off", "log_connections": "on"})
    try:
        for name in ("mine", "theirs"):
            server.create_database(name)
            with psycopg.connect(server.dsn(name), autocommit=True) as c:
                c.execute("CREATE TABLE churn (id int PRIMARY KEY, pad text)")
                c.execute("INSERT INTO churn SELECT g, repeat('x', 50) FROM generate_series(1, 20000) g")
                c.execute("DELETE FROM churn WHERE id % 2 = 0")
        yield server
    finally:
        server.remove()


def _log_size(server) -> int:
    return (server.base / "server.log").stat().st_size


def _connected_databases(server, since: int) -> set[str]:
    with open(server.base / "server.log", encoding="utf-8", errors="replace") as handle:
        handle.seek(since)
        text = handle.read()
    return set(re.findall(r"connection authorized: user=\S+ database=(\S+)", text))


def _table_stats(server, name: str) -> tuple:
    with psycopg.connect(server.dsn(name)) as c:
        return c.execute(
            "SELECT n_dead_tup, vacuum_count, analyze_count, last_vacuum, last_analyze "
            "FROM pg_stat_user_tables WHERE relname = 'churn'"
        ).fetchone()


def _database_stats(server, name: str) -> tuple:
    """The database's counters once no session is left in it and its last one's stats are flushed."""
    previous = None
    deadline = time.monotonic() + 10
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as c:
        while True:
            row = c.execute(
                "SELECT numbackends, xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched "
                "FROM pg_stat_database WHERE datname = %s",
                (name,),
            ).fetchone()
            c.execute("SELECT pg_stat_clear_snapshot()")
            if row == previous and row[0] == 0:
                return row
            assert time.monotonic() < deadline, "the statistics of a database did not settle"
            previous = row
            time.sleep(0.3)


def test_a_database_target_means_that_database_and_no_other(sqlite_store, logged_server):
    theirs_tables, theirs_database = _table_stats(logged_server, "theirs"), _database_stats(logged_server, "theirs")
    assert theirs_tables[0] >= 10_000  # dead tuples that a vacuum of "theirs" would remove
    targets = {"databases": {"main": {"url": logged_server.dsn("mine")}}}
    start = _log_size(logged_server)

    results = {name: run_handler(sqlite_store, name, {"target": "main"}, targets=targets) for name in HANDLERS}

    connected = _connected_databases(logged_server, start)
    assert connected == {"mine"}, connected
    assert _database_stats(logged_server, "theirs") == theirs_database  # before the test reads it again
    assert _table_stats(logged_server, "theirs") == theirs_tables
    mine = _table_stats(logged_server, "mine")
    assert mine[0] == 0 and mine[1] >= 1 and mine[2] >= 2  # vacuumed (with analyze) and analyzed

    assert [d["database"] for d in results["db.vacuum"]["databases"]] == ["mine"]
    assert [d["database"] for d in results["db.analyze"]["databases"]] == ["mine"]
    assert {r["database"] for r in results["db.reindex"]["rebuilt"]} == {"mine"}
    inspect = results["db.inspect"]
    assert list(inspect["databases"]) == ["mine"]
    assert {w["database"] for w in inspect["server"]["wraparound"]} == {"mine"}
    assert "1 databases" in inspect["summary"]
    for name, result in results.items():
        scope = [e for e in events_of(sqlite_store, result["_run_id"]) if e["event"] == "scope"]
        assert len(scope) == 1, name
        assert scope[0]["data"]["chosen"] == ["mine"]
        assert "the database target main names" in scope[0]["message"]


def test_databases_all_or_a_list_widens_the_scope_from_the_file(sqlite_store, logged_server):
    targets = {
        "databases": {
            "main": {"url": logged_server.dsn("mine")},
            "theirs": {"url": logged_server.dsn("theirs")},
        }
    }
    start = _log_size(logged_server)
    listed = run_handler(sqlite_store, "db.inspect", {"target": "main", "databases": ["theirs"]}, targets=targets)
    assert list(listed["databases"]) == ["theirs"]  # an inventory name on the same server: its database
    everything = run_handler(sqlite_store, "db.inspect", {"target": "main", "databases": "all"}, targets=targets)
    assert {"mine", "theirs", "postgres"} <= set(everything["databases"])
    assert {"mine", "theirs"} <= _connected_databases(logged_server, start)
    scope = [e for e in events_of(sqlite_store, everything["_run_id"]) if e["event"] == "scope"]
    assert "databases: all" in scope[0]["message"]
