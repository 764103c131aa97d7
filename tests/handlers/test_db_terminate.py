"""db.terminate_sessions on a real cluster: ends a long pg_sleep, spares a running pg_dump."""

from __future__ import annotations

import json
import subprocess
import threading

import psycopg
import pytest

from support.contexts import run_handler
from support.polling import eventually


def _pid_of(dsn: str, application: str, db: str) -> int | None:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s "
            "AND state = 'active' "
            "AND (wait_event_type = 'Lock' OR query LIKE '%%pg_sleep%%')",
            (application, db),
        ).fetchone()
    return row[0] if row else None


def _alive(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None


@pytest.fixture
def busy_db(pg_server, tmp_path):
    """A database where pg_dump runs (held on a lock) and a session sleeps in a long query."""
    db = pg_server.create_database()
    dsn = pg_server.dsn(db)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        c.execute("INSERT INTO accounts SELECT g, g FROM generate_series(1, 1000) g")
    locker = psycopg.connect(dsn, application_name="locker")
    locker.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")  # pg_dump waits on it: it stays running
    dump = subprocess.Popen(
        [pg_server.bin("pg_dump"), "-d", dsn, "-f", str(tmp_path / "dump.sql")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sleeper_errors: list[BaseException] = []

    def sleeper() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name="sleeper") as c:
                c.execute("SELECT pg_sleep(120)")
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            sleeper_errors.append(exc)

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    state = {
        "db": db,
        "dsn": dsn,
        "dump": dump,
        "thread": thread,
        "sleeper_errors": sleeper_errors,
        "locker": locker,
        "dump_pid": eventually(lambda: _pid_of(dsn, "pg_dump", db), "pg_dump's session", timeout=20),
        "sleep_pid": eventually(lambda: _pid_of(dsn, "sleeper", db), "the sleeper's session", timeout=20),
    }
    try:
        yield state
    finally:
        locker.close()
        dump.wait(30)
        with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
        thread.join(10)
        pg_server.drop_database(db)


def test_terminate_ends_a_long_query_and_spares_a_running_pg_dump(sqlite_store, pg_server, busy_db):
    config = {
        "target": pg_server.dsn(),
        "databases": [busy_db["db"]],
        "active_minutes": 0,
        "idle_in_transaction_minutes": None,
        "idle_minutes": None,
        "include_superusers": True,
    }

    dry = run_handler(sqlite_store, "db.terminate_sessions", config, dry_run=True)
    assert [(t["pid"], t["status"]) for t in dry["terminated"]] == [(busy_db["sleep_pid"], "planned")]
    assert "pg_sleep" in dry["terminated"][0]["query"]
    assert _alive(busy_db["dsn"], busy_db["sleep_pid"])  # dry run ends nobody

    result = run_handler(sqlite_store, "db.terminate_sessions", config)

    assert [(t["pid"], t["status"]) for t in result["terminated"]] == [(busy_db["sleep_pid"], "terminated")]
    spared = {s["pid"]: s["spared_because"] for s in result["spared"]}
    assert "pg_dump" in spared[busy_db["dump_pid"]]
    busy_db["thread"].join(10)
    assert isinstance(busy_db["sleeper_errors"][0], psycopg.errors.AdminShutdown)
    assert busy_db["dump"].poll() is None and _alive(busy_db["dsn"], busy_db["dump_pid"])
    busy_db["locker"].rollback()  # let pg_dump finish: it must succeed
    assert busy_db["dump"].wait(30) == 0, busy_db["dump"].stderr.read()
    assert result["outcome"] == "warning" and "terminated 1 of 1" in result["summary"]
    json.dumps(result)


def test_terminate_spares_superusers_unless_told(sqlite_store, pg_server, busy_db):
    config = {
        "target": pg_server.dsn(),
        "databases": [busy_db["db"]],
        "active_minutes": 0,
        "idle_in_transaction_minutes": None,
        "idle_minutes": None,
    }
    result = run_handler(sqlite_store, "db.terminate_sessions", config)
    assert result["terminated"] == []
    spared = {s["pid"]: s["spared_because"] for s in result["spared"]}
    assert "superuser" in spared[busy_db["sleep_pid"]]
    assert _alive(busy_db["dsn"], busy_db["sleep_pid"])
    assert result["outcome"] == "ok"
