"""db.inspect finds duplicate and invalid indexes; db.reindex drops leftovers and rebuilds under writes."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from support.contexts import run_handler


def _exec(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        for statement in statements:
            c.execute(statement)


def _failed_concurrent_build(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c, pytest.raises(psycopg.errors.UniqueViolation):
        c.execute(statement)


def _index(dsn: str, name: str) -> tuple[bool, int] | None:
    """(indisvalid, relfilenode) of an index, or None when it does not exist."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(
            "SELECT i.indisvalid, c.relfilenode FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            (name,),
        ).fetchone()


@pytest.fixture
def items_db(pg_server):
    """items with a duplicate index pair, an invalid index and a *_ccnew leftover of a failed build."""
    name = pg_server.create_database()
    dsn = pg_server.dsn(name)
    _exec(
        dsn,
        "CREATE TABLE items (id serial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL DEFAULT 0)",
        "INSERT INTO items (sku, qty) SELECT 'sku-' || (g % 2000), g FROM generate_series(1, 20000) g",
        "CREATE INDEX items_sku_idx ON items (sku)",
        "CREATE INDEX items_sku_again ON items (sku)",
        "CREATE INDEX items_qty_idx ON items (qty) WHERE qty > 10",
        "CREATE INDEX items_qty_partial ON items (qty) WHERE qty > 100",  # other predicate: not a duplicate
        "ANALYZE items",
    )
    _failed_concurrent_build(dsn, "CREATE UNIQUE INDEX CONCURRENTLY items_sku_unique ON items (sku)")
    _failed_concurrent_build(dsn, "CREATE UNIQUE INDEX CONCURRENTLY items_sku_idx_ccnew ON items (sku)")
    yield name
    pg_server.drop_database(name)


def test_inspect_reports_duplicate_and_invalid_indexes_and_missing_pg_stat_statements(
    sqlite_store, pg_server, items_db
):
    result = run_handler(sqlite_store, "db.inspect", {"target": pg_server.dsn(items_db), "databases": [items_db]})

    by_check: dict[str, list[dict]] = {}
    for f in result["findings"]:
        by_check.setdefault(f["check"], []).append(f)
    dups = by_check["duplicate_index"]
    assert [(d["item"], d["duplicate_of"]) for d in dups] == [("public.items_sku_again", "public.items_sku_idx")]
    assert sorted(f["item"] for f in by_check["invalid_index"]) == [
        "public.items_sku_idx_ccnew",
        "public.items_sku_unique",
    ]
    (note,) = [f for f in by_check["slow_queries"] if f["item"] == items_db]
    assert note["severity"] == "info" and "CREATE EXTENSION pg_stat_statements" in note["message"]
    assert result["outcome"] == "warning"
    report = result["databases"][items_db]
    assert report["tables"][0]["table"] == "public.items" and report["tables"][0]["bytes"] > 0
    assert {i["index"] for i in report["indexes"]} >= {"public.items_pkey", "public.items_sku_idx"}
    assert report["bloat"]["method"] == "estimate"
    assert any(r["name"] == "public.items" and r["estimated"] for r in report["bloat"]["relations"])
    server = result["server"]
    assert server["connections"]["max_connections"] == 200 and server["connections"]["used"] >= 1
    assert any(w["database"] == items_db for w in server["wraparound"])
    json.dumps(result)  # results are stored as JSON


def test_inspect_lists_slow_queries_from_pg_stat_statements_when_installed(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    _exec(
        dsn,
        "CREATE EXTENSION pg_stat_statements",
        "SELECT pg_stat_statements_reset()",
        "SELECT pg_sleep(0.15)",
        "SELECT pg_sleep(0.15)",
        "SELECT count(*) FROM items",
    )

    result = run_handler(
        sqlite_store,
        "db.inspect",
        {"target": dsn, "databases": [items_db], "slow_query_min_calls": 2, "slow_query_mean_ms": 100},
    )

    slow = result["databases"][items_db]["slow_queries"]
    assert [q["query"] for q in slow] == ["SELECT pg_sleep($1)"]
    assert slow[0]["calls"] == 2 and slow[0]["mean_ms"] >= 100
    assert any(f["check"] == "slow_query" and f["severity"] == "warning" for f in result["findings"])
    assert not any(f["check"] == "slow_queries" for f in result["findings"])


def test_reindex_dry_run_lists_every_action_and_changes_nothing(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    before = {n: _index(dsn, n) for n in ("items_sku_idx", "items_pkey", "items_sku_idx_ccnew")}

    result = run_handler(
        sqlite_store,
        "db.reindex",
        {"target": dsn, "databases": [items_db], "tables": ["public.items"]},
        dry_run=True,
    )

    assert [d["index"] for d in result["dropped"]] == ["public.items_sku_idx_ccnew"]
    assert all(d["status"] == "planned" for d in result["dropped"] + result["rebuilt"])
    assert {r["index"] for r in result["rebuilt"]} == {
        "public.items_pkey",
        "public.items_sku_idx",
        "public.items_sku_again",
        "public.items_qty_idx",
        "public.items_qty_partial",
    }
    assert [s["index"] for s in result["skipped"]] == ["public.items_sku_unique"]  # invalid, not named
    assert {n: _index(dsn, n) for n in before} == before


def test_reindex_drops_leftover_and_rebuilds_while_another_connection_writes(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    old_sku, old_pkey = _index(dsn, "items_sku_idx"), _index(dsn, "items_pkey")
    stop = threading.Event()
    errors: list[BaseException] = []
    writes = [0]

    def writer() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                while not stop.is_set():
                    c.execute("INSERT INTO items (sku, qty) VALUES ('new-' || random(), 1)")
                    c.execute("UPDATE items SET qty = qty + 1 WHERE id = (SELECT max(id) FROM items)")
                    writes[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while writes[0] < 20 and thread.is_alive():
            stop.wait(0.01)
        writes_at_start = writes[0]
        result = run_handler(
            sqlite_store,
            "db.reindex",
            {"target": dsn, "databases": [items_db], "indexes": ["items_sku_idx", "public.items_pkey"]},
        )
        writes_during = writes[0] - writes_at_start
    finally:
        stop.set()
        thread.join(10)

    assert errors == []
    assert writes_during > 0
    assert result["outcome"] == "ok", result["findings"]
    assert [(d["index"], d["status"]) for d in result["dropped"]] == [("public.items_sku_idx_ccnew", "dropped")]
    assert _index(dsn, "items_sku_idx_ccnew") is None
    rebuilt = {r["index"]: r for r in result["rebuilt"]}
    assert set(rebuilt) == {"public.items_sku_idx", "public.items_pkey"}
    for r in rebuilt.values():
        assert r["status"] == "rebuilt" and r["valid"] is True
        assert r["bytes_before"] > 0 and r["bytes_after"] > 0
    new_sku, new_pkey = _index(dsn, "items_sku_idx"), _index(dsn, "items_pkey")
    assert new_sku[0] and new_pkey[0]
    assert new_sku[1] != old_sku[1] and new_pkey[1] != old_pkey[1]  # new files: really rebuilt
    assert _index(dsn, "items_sku_unique") is not None  # an invalid index not named is left for a person


def test_reindex_drops_the_leftover_of_its_own_failed_rebuild(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    result = run_handler(
        sqlite_store, "db.reindex", {"target": dsn, "databases": [items_db], "indexes": ["items_sku_unique"]}
    )
    (row,) = result["rebuilt"]
    assert row["status"] == "failed" and "could not create unique index" in row["problem"]
    assert result["outcome"] == "warning"
    with psycopg.connect(dsn, autocommit=True) as c:
        names = {r[0] for r in c.execute("SELECT relname FROM pg_class WHERE relname LIKE 'items_sku_unique%'")}
    assert names == {"items_sku_unique"}  # no items_sku_unique_ccnew left behind


def test_reindex_bloated_only_rebuilds_just_the_bloated_index(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    _exec(
        dsn,
        "CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off)",
        "CREATE INDEX churn_v ON churn (v)",
        "INSERT INTO churn SELECT g, g FROM generate_series(1, 30000) g",
        "UPDATE churn SET v = v + 100000",  # not HOT: every update adds an entry to both indexes
        "UPDATE churn SET v = v + 100000",
        "VACUUM ANALYZE churn",  # entries of dead rows are gone, their pages stay: bloat
    )
    config = {
        "target": dsn,
        "databases": [items_db],
        "tables": ["churn", "items"],
        "bloated_only": True,
        "bloat_threshold_percent": 40,
        "bloat_min_bytes": 0,
        "bloat_method": "estimate",
    }

    result = run_handler(sqlite_store, "db.reindex", config)

    rebuilt = {r["index"]: r for r in result["rebuilt"]}
    assert set(rebuilt) == {"public.churn_v", "public.churn_pkey"}  # items' fresh indexes are not bloated
    for r in rebuilt.values():
        assert r["status"] == "rebuilt" and r["bytes_after"] < r["bytes_before"] / 2
    json.dumps(result)


def test_inspect_measures_bloat_exactly_with_pgstattuple_when_installed(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    _exec(dsn, "CREATE EXTENSION pgstattuple", "DELETE FROM items WHERE id % 2 = 0")
    result = run_handler(sqlite_store, "db.inspect", {"target": dsn, "databases": [items_db], "bloat_method": "auto"})
    bloat = result["databases"][items_db]["bloat"]
    assert bloat["method"] == "pgstattuple"
    (items,) = [r for r in bloat["relations"] if r["name"] == "public.items"]
    assert 30 < items["bloat_percent"] < 70 and not items["estimated"]  # half the rows are dead
    json.dumps(result)


def test_inspect_reports_sessions_idle_in_transaction_past_the_threshold(sqlite_store, pg_server, items_db):
    dsn = pg_server.dsn(items_db)
    with psycopg.connect(dsn, application_name="forgotten-tx") as idle:
        idle.execute("SELECT count(*) FROM items")  # opens a transaction and leaves it open
        pid = idle.info.backend_pid
        config = {"target": dsn, "databases": [items_db], "idle_in_transaction_warning_minutes": 0}
        result = run_handler(sqlite_store, "db.inspect", config)
        calm = run_handler(sqlite_store, "db.inspect", {"target": dsn, "databases": [items_db]})
    (session,) = [s for s in result["server"]["idle_in_transaction"] if s["pid"] == pid]
    assert session["application"] == "forgotten-tx"
    assert any(f["check"] == "idle_in_transaction" and f["item"] == f"pid {pid}" for f in result["findings"])
    assert not any(f["check"] == "idle_in_transaction" for f in calm["findings"])  # under the default 1 min
