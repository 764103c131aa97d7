"""db.vacuum / db.analyze on a real PostgreSQL cluster: dead tuples made by mass updates go away."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from support.contexts import events_of, run_handler


def _stats(dsn: str, table: str = "churn") -> tuple[int, object, object]:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(
            "SELECT n_dead_tup, last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = %s",
            (table,),
        ).fetchone()
    return row


def _make_churn(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS churn, other, events")
        c.execute("CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off)")
        c.execute("CREATE TABLE other (id int)")
        c.execute("INSERT INTO churn SELECT g, 0 FROM generate_series(1, %s) g", (rows,))
        c.execute("UPDATE churn SET v = v + 1")
        c.execute("UPDATE churn SET v = v + 1")
        c.execute("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + 15
    while _stats(dsn)[0] == 0 and time.monotonic() < deadline:  # statistics reach shared memory shortly after
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_databases(pg_server):
    names = [pg_server.create_database(), pg_server.create_database()]
    yield names
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture
def churned(request, pg_server, two_databases):
    """Both databases get a table ``churn`` (autovacuum off) updated twice: dead tuples."""
    rows = getattr(request, "param", 3000)
    for name in two_databases:
        _make_churn(pg_server.dsn(name), rows)
    return two_databases


@pytest.mark.parametrize("churned", [50_000], indirect=True)
def test_vacuum_removes_dead_tuples_of_mass_updates_in_every_chosen_database(sqlite_store, pg_server, churned):
    targets = {"databases": {"main": {"url": pg_server.dsn("postgres")}}}
    for name in churned:
        assert _stats(pg_server.dsn(name))[0] > 10_000

    result = run_handler(
        sqlite_store,
        "db.vacuum",
        {"target": "main", "databases": churned, "tables": ["public.churn"]},
        targets=targets,
    )

    assert result["outcome"] == "ok", result["findings"]
    assert [d["database"] for d in result["databases"]] == sorted(churned)
    for db in result["databases"]:
        (row,) = db["tables"]  # the table filter left public.other out
        assert row["table"] == "public.churn" and row["status"] == "done"
        assert row["dead_tuples_before"] > 10_000
        assert row["dead_tuples_after"] == 0
        assert row["bytes_before"] > 0 and row["bytes_after"] > 0
        dead, last_vacuum, last_analyze = _stats(pg_server.dsn(db["database"]))
        assert dead == 0 and last_vacuum is not None and last_analyze is not None
    assert result["totals"]["dead_tuples_before"] > 20_000
    assert result["totals"]["dead_tuples_after"] == 0
    json.dumps(result)


def test_vacuum_dry_run_of_databases_all_lists_every_database_and_changes_nothing(sqlite_store, pg_server, churned):
    before = {name: _stats(pg_server.dsn(name)) for name in churned}

    result = run_handler(
        sqlite_store,
        "db.vacuum",
        {"target": pg_server.dsn("postgres"), "databases": "all", "full": True},
        dry_run=True,
    )

    planned = {d["database"]: {t["table"] for t in d["tables"]} for d in result["databases"]}
    assert set(churned) <= set(planned) and "postgres" in planned  # databases: all, not just the target's
    for name in churned:
        assert planned[name] == {"public.churn", "public.other"}
        assert before[name][0] > 0
        assert _stats(pg_server.dsn(name)) == before[name]  # still dead tuples, never vacuumed
    events = events_of(sqlite_store, result["_run_id"])
    assert any(e["event"] == "vacuum_full" and e["level"] == "warning" for e in events)
    plans = [e for e in events if e["event"] == "plan"]
    assert any("VACUUM (FULL, ANALYZE)" in e["message"] and "churn" in e["message"] for e in plans)
    assert result["summary"].startswith("dry run")


def test_analyze_updates_statistics_of_chosen_tables_only(sqlite_store, pg_server, churned):
    name = churned[0]
    with psycopg.connect(pg_server.dsn(name), autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS events")
        c.execute("CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)")
        c.execute("CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    result = run_handler(
        sqlite_store,
        "db.analyze",
        {"target": pg_server.dsn("postgres"), "databases": [name], "exclude_tables": ["other"]},
    )
    assert result["outcome"] == "ok"
    # partitioned parents too: autovacuum never analyzes them
    assert [t["table"] for t in result["databases"][0]["tables"]] == [
        "public.churn",
        "public.events",
        "public.events_2024",
    ]
    assert _stats(pg_server.dsn(name))[2] is not None
    assert _stats(pg_server.dsn(name), "other")[2] is None
    assert _stats(pg_server.dsn(name))[1] is None  # ANALYZE is not VACUUM


def test_vacuum_skips_a_locked_table_after_lock_timeout_with_a_warning(sqlite_store, pg_server, churned):
    name = churned[0]
    with psycopg.connect(pg_server.dsn(name)) as locker:
        locker.execute("LOCK TABLE churn IN ACCESS EXCLUSIVE MODE")
        result = run_handler(
            sqlite_store,
            "db.vacuum",
            {"target": pg_server.dsn(name), "databases": [name], "lock_timeout": "200ms"},
        )
        locker.rollback()
    rows = {t["table"]: t for t in result["databases"][0]["tables"]}
    assert rows["public.churn"]["status"] == "skipped"
    assert rows["public.other"]["status"] == "done"
    assert result["outcome"] == "warning"
    assert "locked" in result["findings"][0]["message"]
