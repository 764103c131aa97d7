"""Bad input for db.* handlers: one clear message each, never the password."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from support.contexts import events_of, make_context, run_handler
from support.servers import free_port
from upkeep.errors import ConfigError, ConnectionFailed, UserError
from upkeep.handlers.db.postgres import connect, list_databases, server_version
from upkeep.handlers.db.targets import target_from_ctx

PASSWORD = "Sup3r-Secret-pw"


def test_unreachable_server_is_one_clear_error_without_the_password(sqlite_store):
    url = f"postgresql://maint:{PASSWORD}@127.0.0.1:{free_port()}/postgres"
    for task in ("db.vacuum", "db.inspect", "db.reindex", "db.terminate_sessions", "db.analyze"):
        with pytest.raises(ConnectionFailed) as info:
            run_handler(sqlite_store, task, {"target": url})
        text = str(info.value)
        assert "connection refused" in text and "127.0.0.1" in text
        assert PASSWORD not in text and "\n" not in text


def test_missing_database_is_named(sqlite_store, pg_server):
    with pytest.raises(ConnectionFailed, match="database 'no_such_db' does not exist"):
        run_handler(sqlite_store, "db.inspect", {"target": pg_server.dsn("no_such_db")})
    with pytest.raises(UserError, match="database 'no_such_db' does not exist") as info:
        run_handler(sqlite_store, "db.vacuum", {"target": pg_server.dsn(), "databases": ["no_such_db"]})
    assert "connectable databases: " in str(info.value) and "postgres" in str(info.value)


@pytest.fixture
def password_role(pg_server):
    """A role that must log in with a password (scram) although the cluster trusts everyone else."""
    hba = Path(pg_server.data_dir) / "pg_hba.conf"
    original = hba.read_text()
    pg_server.psql(f"CREATE ROLE pwtest LOGIN PASSWORD '{PASSWORD}'")
    hba.write_text("host all pwtest 127.0.0.1/32 scram-sha-256\n" + original)
    pg_server.psql("SELECT pg_reload_conf()")
    try:
        yield "pwtest"
    finally:
        hba.write_text(original)
        pg_server.psql("SELECT pg_reload_conf()")
        pg_server.psql("DROP ROLE pwtest")


def test_wrong_password_is_reported_without_any_password(sqlite_store, pg_server, password_role, monkeypatch):
    monkeypatch.setenv("PG_TEST_PW", "wrong-" + PASSWORD)
    targets = {
        "databases": {
            "app": {"url": f"postgresql://{password_role}:${{env:PG_TEST_PW}}@127.0.0.1:{pg_server.port}/postgres"}
        }
    }
    with pytest.raises(ConnectionFailed) as info:
        run_handler(sqlite_store, "db.inspect", {"target": "app"}, targets=targets)
    assert "rejected the password for user 'pwtest'" in str(info.value)
    assert PASSWORD not in str(info.value)

    monkeypatch.setenv("PG_TEST_PW", PASSWORD)  # the right one works, through the same reference
    ctx = make_context(sqlite_store, targets=targets)
    with connect(target_from_ctx(ctx, "app")) as conn:
        assert server_version(conn) >= 150000
        assert "postgres" in list_databases(conn) and "template0" not in list_databases(conn)


def test_password_in_a_plain_url_never_reaches_events_or_results(sqlite_store, pg_server):
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg_server.port}/postgres"  # trust auth ignores it
    result = run_handler(sqlite_store, "db.analyze", {"target": url, "databases": ["postgres"]}, dry_run=True)
    assert PASSWORD not in repr(result)
    assert PASSWORD not in repr(events_of(sqlite_store, result["_run_id"]))


def test_invalid_timeouts_and_sqlite_sessions_are_config_errors(sqlite_store, pg_server, tmp_path):
    with pytest.raises(ConfigError, match="lock_timeout"):
        run_handler(
            sqlite_store,
            "db.vacuum",
            {"target": pg_server.dsn(), "databases": ["postgres"], "lock_timeout": "soon"},
        )
    with pytest.raises(ConfigError, match="PostgreSQL targets only"):
        run_handler(sqlite_store, "db.terminate_sessions", {"target": f"sqlite:///{tmp_path / 'x.db'}"})
    with pytest.raises(ConnectionFailed, match="does not exist"):
        run_handler(sqlite_store, "db.vacuum", {"target": f"sqlite:///{tmp_path / 'missing.db'}"})
    assert not (tmp_path / "missing.db").exists()  # never created by looking at it
    with pytest.raises(UserError, match="unknown databases target 'nope'"):
        run_handler(sqlite_store, "db.inspect", {"target": "nope"})
    with psycopg.connect(pg_server.dsn(), autocommit=True):  # the server is still fine
        pass
