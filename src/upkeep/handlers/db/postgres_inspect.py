"""PostgreSQL health inspection: the checks behind ``db.inspect`` (and, later, ``performance.review``).

``inspect_server(conn, thresholds, databases)`` covers what the server keeps for all databases
(connections; transaction ID wraparound, long-running queries and idle-in-transaction sessions of
``databases`` only, so a task never reports on other people's databases); ``inspect_database(conn, thresholds)``
what lives in one database (sizes, bloat, dead tuples, vacuum/analyze times, unused, duplicate and
invalid indexes, cache hit ratio, slow queries from ``pg_stat_statements``). Both return a dict
with a ``findings`` list of ``{"severity", "check", "item", "message", ...}``.

Bloat is measured by ``postgres_bloat`` (``bloat_method``: estimate, pgstattuple or auto).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from upkeep.bounds import MAX_BYTES, MAX_CALL_MS, MAX_COUNT, MAX_MINUTES
from upkeep.engine.registry import HandlerConfig
from upkeep.handlers.db.postgres_bloat import measure_bloat
from upkeep.handlers.db.postgres_catalog import has_extension
from upkeep.handlers.db.postgres_stats import duplicate_indexes, index_rows, slow_queries, table_rows
from upkeep.handlers.findings import finding as _finding

if TYPE_CHECKING:
    import psycopg

GIB = 1024**3
MIB = 1024**2
PGSS_NOT_INSTALLED = (
    "pg_stat_statements is not installed in database {db}: run CREATE EXTENSION pg_stat_statements; "
    "in it and add pg_stat_statements to shared_preload_libraries (server restart) to see slow queries"
)


class InspectThresholds(HandlerConfig):
    """Thresholds of the PostgreSQL inspection; defaults follow check_postgres and PgHero."""

    top_n: int = Field(
        10,
        ge=1,
        le=1000,
        description="How many of the largest tables/indexes, most bloated "
        "relations and slowest queries the report lists.",
    )
    bloat_method: Literal["estimate", "pgstattuple", "auto"] = Field(
        "estimate",
        description="How bloat is measured: 'estimate' from statistics (cheap, ioguide method), "
        "'pgstattuple' (exact, reads the relations; the extension must be installed in the database), "
        "'auto' (pgstattuple where installed).",
    )
    bloat_warning_bytes: int = Field(
        GIB,
        ge=0,
        le=MAX_BYTES,
        description="Wasted bytes in one table or index that make a warning (check_postgres 'bloat' default: 1 GB).",
    )
    bloat_critical_bytes: int = Field(
        5 * GIB, ge=0, le=MAX_BYTES, description="Wasted bytes that make it critical (check_postgres default: 5 GB)."
    )
    bloat_min_percent: float = Field(
        20.0,
        ge=0,
        le=100,
        description="Bloat below this share of the relation never makes a finding, whatever its size.",
    )
    dead_tuples_warning_ratio: float = Field(
        0.2,
        ge=0,
        le=1000,
        description="Warn when dead / (live + dead) tuples of a "
        "table exceeds this (autovacuum_vacuum_scale_factor default 0.2: "
        "autovacuum is not keeping up).",
    )
    dead_tuples_min: int = Field(
        10_000, ge=0, le=MAX_COUNT, description="...and the table has at least this many dead tuples."
    )
    unused_index_min_bytes: int = Field(
        MIB,
        ge=0,
        le=MAX_BYTES,
        description="Warn about an index never scanned since the "
        "statistics were reset (idx_scan = 0), not unique/primary, at least "
        "this large (PgHero's unused indexes).",
    )
    cache_hit_warning_ratio: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Warn when a database's buffer cache "
        "hit ratio (blks_hit / (blks_hit + blks_read)) is below this "
        "(PgHero: 0.99)...",
    )
    cache_hit_min_reads: int = Field(
        10_000,
        ge=0,
        le=MAX_COUNT,
        description="...once it has at least this many block accesses (a fresh database proves nothing).",
    )
    connections_warning_ratio: float = Field(
        0.8, ge=0, le=1, description="Warn when client connections reach this share of max_connections."
    )
    connections_critical_ratio: float = Field(0.95, ge=0, le=1, description="Critical at this share.")
    wraparound_warning_age: int = Field(
        1_300_000_000,
        ge=0,
        le=2**31,
        description="Warn when age(datfrozenxid) of a "
        "database reaches this many transactions (check_postgres "
        "txn_wraparound default 1.3 billion; the server stops accepting "
        "writes near 2^31 = 2.1 billion).",
    )
    wraparound_critical_age: int = Field(
        1_400_000_000, ge=0, le=2**31, description="Critical at this age (check_postgres default 1.4 billion)."
    )
    long_query_warning_minutes: float = Field(
        5.0, ge=0, le=MAX_MINUTES, description="Warn about queries active longer."
    )
    long_query_critical_minutes: float = Field(
        60.0, ge=0, le=MAX_MINUTES, description="Critical for queries active longer."
    )
    idle_in_transaction_warning_minutes: float = Field(
        1.0,
        ge=0,
        le=MAX_MINUTES,
        description="Warn about sessions idle in a transaction longer (they hold locks and stop vacuum).",
    )
    idle_in_transaction_critical_minutes: float = Field(30.0, ge=0, le=MAX_MINUTES, description="Critical beyond this.")
    slow_query_mean_ms: float = Field(
        100.0,
        ge=0,
        le=MAX_CALL_MS,
        description="pg_stat_statements: warn about statements whose "
        "mean execution time exceeds this (the runbook's 100 ms)...",
    )
    slow_query_min_calls: int = Field(
        5,
        ge=1,
        le=MAX_COUNT,
        description="...and that ran at least this many times (one-off reports are not slow queries).",
    )


def _severity(value: float, warning: float, critical: float | None) -> str | None:
    if critical is not None and value >= critical:
        return "critical"
    if value >= warning:
        return "warning"
    return None


def _minutes(seconds: float | None) -> float:
    return round((seconds or 0.0) / 60.0, 1)


# --- server-wide ------------------------------------------------------------------------------


def inspect_server(
    conn: psycopg.Connection, t: InspectThresholds, databases: list[str] | None = None
) -> dict[str, Any]:
    """Server-level checks; per-database rows (wraparound, sessions) of ``databases`` only (None: all)."""
    findings: list[dict] = []
    only = "" if databases is None else " AND datname = ANY(%(dbs)s)"
    args = None if databases is None else {"dbs": list(databases)}
    max_conn = int(conn.execute("SELECT current_setting('max_connections')").fetchone()[0])
    reserved = int(conn.execute("SELECT current_setting('superuser_reserved_connections')").fetchone()[0])
    used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
    ratio = used / max_conn if max_conn else 0.0
    sev = _severity(ratio, t.connections_warning_ratio, t.connections_critical_ratio)
    if sev:
        findings.append(
            _finding(
                sev,
                "connections",
                "server",
                f"{used} of max_connections {max_conn} in use ({ratio:.0%}; {reserved} reserved for superusers)",
                used=used,
                max=max_conn,
            )
        )

    wrap = []
    for db, xid_age, mxid_age in conn.execute(
        "SELECT datname, age(datfrozenxid), mxid_age(datminmxid) FROM pg_database WHERE true"
        + only
        + " ORDER BY 2 DESC",
        args,
    ).fetchall():
        wrap.append({"database": db, "xid_age": xid_age, "mxid_age": mxid_age})
        sev = _severity(xid_age, t.wraparound_warning_age, t.wraparound_critical_age)
        if sev:
            findings.append(
                _finding(
                    sev,
                    "wraparound",
                    db,
                    f"transaction ID age {xid_age:,} of database {db} "
                    "(wraparound protection stops writes near 2.1 billion): VACUUM (FREEZE) it",
                    database=db,
                    age=xid_age,
                )
            )

    sessions = conn.execute(
        """SELECT pid, datname, usename, application_name, state, left(query, 300),
                  extract(epoch FROM clock_timestamp() - query_start)::float8,
                  extract(epoch FROM clock_timestamp() - state_change)::float8,
                  wait_event_type, wait_event
             FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"""
        + only,
        args,
    ).fetchall()
    long_queries, idle_tx = [], []
    for pid, db, user, app, state, query, q_age, s_age, wtype, wevent in sessions:
        row = {
            "pid": pid,
            "database": db,
            "user": user,
            "application": app,
            "state": state,
            "query": query,
            "wait": f"{wtype}:{wevent}" if wtype else None,
        }
        if state == "active":
            minutes = _minutes(q_age)
            sev = _severity(minutes, t.long_query_warning_minutes, t.long_query_critical_minutes)
            if sev:
                long_queries.append({**row, "minutes": minutes})
                findings.append(
                    _finding(
                        sev,
                        "long_query",
                        f"pid {pid}",
                        f"query active for {minutes} min in {db} by {user}: {(query or '')[:80]}",
                        pid=pid,
                        database=db,
                    )
                )
        else:
            minutes = _minutes(s_age)
            sev = _severity(minutes, t.idle_in_transaction_warning_minutes, t.idle_in_transaction_critical_minutes)
            if sev:
                idle_tx.append({**row, "minutes": minutes})
                findings.append(
                    _finding(
                        sev,
                        "idle_in_transaction",
                        f"pid {pid}",
                        f"session idle in transaction "
                        f"for {minutes} min in {db} by {user} ({app or 'no application name'})",
                        pid=pid,
                        database=db,
                    )
                )
    return {
        "server_version": conn.info.server_version,
        "connections": {
            "used": used,
            "max_connections": max_conn,
            "superuser_reserved": reserved,
            "ratio": round(ratio, 4),
        },
        "wraparound": wrap,
        "long_queries": long_queries,
        "idle_in_transaction": idle_tx,
        "findings": findings,
    }


# --- one database -----------------------------------------------------------------------------


def inspect_database(conn: psycopg.Connection, t: InspectThresholds) -> dict[str, Any]:
    """Everything the inspection checks inside the database ``conn`` is connected to."""
    import psycopg

    db = conn.info.dbname
    findings: list[dict] = []
    conn.execute("SELECT pg_stat_clear_snapshot()")
    size, hit, read, stats_reset = conn.execute(
        "SELECT pg_database_size(datname), blks_hit, blks_read, stats_reset FROM pg_stat_database "
        "WHERE datname = current_database()"
    ).fetchone()

    tables = table_rows(conn)
    idx = index_rows(conn)
    out: dict[str, Any] = {
        "database": db,
        "size_bytes": size,
        "stats_reset": stats_reset.isoformat() if stats_reset else None,
        "tables": sorted(tables, key=lambda r: r["bytes"], reverse=True)[: t.top_n],
        "indexes": sorted(idx, key=lambda r: r["bytes"], reverse=True)[: t.top_n],
    }

    # dead tuples and vacuum/analyze times
    dead = []
    for row in tables:
        total = row["live_tuples"] + row["dead_tuples"]
        ratio = row["dead_tuples"] / total if total else 0.0
        if row["dead_tuples"] >= t.dead_tuples_min and ratio > t.dead_tuples_warning_ratio:
            dead.append({**row, "dead_ratio": round(ratio, 4)})
            last = row["last_autovacuum"] or row["last_vacuum"] or "never"
            findings.append(
                _finding(
                    "warning",
                    "dead_tuples",
                    row["table"],
                    f"{row['dead_tuples']:,} dead tuples "
                    f"({ratio:.0%}) in {row['table']}, last vacuum {last}: run db.vacuum or "
                    "tune autovacuum for it",
                    database=db,
                )
            )
    out["dead_tuples"] = dead

    # bloat
    method = t.bloat_method
    if method == "auto":
        method = "pgstattuple" if has_extension(conn, "pgstattuple") else "estimate"
    elif method == "pgstattuple" and not has_extension(conn, "pgstattuple"):
        findings.append(
            _finding(
                "info",
                "bloat",
                db,
                f"pgstattuple is not installed in database {db}: bloat is "
                "estimated from statistics (CREATE EXTENSION pgstattuple; for exact figures)",
                database=db,
            )
        )
        method = "estimate"
    bloat = measure_bloat(conn, method)
    bloat.sort(key=lambda r: r["wasted_bytes"], reverse=True)
    for row in bloat:
        sev = _severity(row["wasted_bytes"], t.bloat_warning_bytes, t.bloat_critical_bytes)
        if sev and row["bloat_percent"] >= t.bloat_min_percent:
            fix = "db.reindex" if row["kind"] == "index" else "db.vacuum (full: true, or pg_repack)"
            findings.append(
                _finding(
                    sev,
                    "bloat",
                    row["name"],
                    f"{row['kind']} {row['name']} has about "
                    f"{row['wasted_bytes'] / MIB:,.0f} MiB ({row['bloat_percent']:.0f}%) of bloat: "
                    f"{fix}",
                    database=db,
                )
            )
    out["bloat"] = {"method": method, "relations": bloat[: t.top_n]}

    # indexes: unused, duplicate, invalid
    unused = [
        r
        for r in idx
        if r["scans"] == 0
        and not r["unique"]
        and not r["primary"]
        and r["valid"]
        and r["bytes"] >= t.unused_index_min_bytes
    ]
    for r in unused:
        findings.append(
            _finding(
                "warning",
                "unused_index",
                r["index"],
                f"index {r['index']} "
                f"({r['bytes'] / MIB:,.1f} MiB) was never scanned since the statistics reset "
                f"({out['stats_reset'] or 'server start'}): consider dropping it",
                database=db,
            )
        )
    out["unused_indexes"] = unused

    dups = duplicate_indexes(conn)
    for d in dups:
        findings.append(
            _finding(
                "warning",
                "duplicate_index",
                d["index"],
                f"index {d['index']} duplicates "
                f"{d['duplicate_of']} on {d['table']} (same columns, expressions and predicate): "
                f"drop one of them",
                database=db,
                duplicate_of=d["duplicate_of"],
            )
        )
    out["duplicate_indexes"] = dups

    invalid = [r for r in idx if not r["valid"]]
    for r in invalid:
        findings.append(
            _finding(
                "warning",
                "invalid_index",
                r["index"],
                f"index {r['index']} on {r['table']} is "
                "INVALID (a failed CREATE INDEX/REINDEX CONCURRENTLY): queries ignore it but "
                "writes still maintain it; drop it (DROP INDEX CONCURRENTLY) and rebuild, or run "
                "db.reindex for *_ccnew/*_ccold leftovers",
                database=db,
            )
        )
    out["invalid_indexes"] = invalid

    # cache hit ratio
    reads = (hit or 0) + (read or 0)
    ratio = (hit or 0) / reads if reads else None
    out["cache_hit_ratio"] = round(ratio, 5) if ratio is not None else None
    if ratio is not None and reads >= t.cache_hit_min_reads and ratio < t.cache_hit_warning_ratio:
        findings.append(
            _finding(
                "warning",
                "cache_hit",
                db,
                f"cache hit ratio of {db} is {ratio:.2%} (below "
                f"{t.cache_hit_warning_ratio:.0%}): shared_buffers or memory may be too small "
                "for the working set",
                database=db,
            )
        )

    # slow queries
    out["pg_stat_statements"] = has_extension(conn, "pg_stat_statements")
    out["slow_queries"] = []
    if not out["pg_stat_statements"]:
        findings.append(_finding("info", "slow_queries", db, PGSS_NOT_INSTALLED.format(db=db), database=db))
    else:
        try:
            out["slow_queries"] = slow_queries(conn, t.slow_query_mean_ms, t.slow_query_min_calls, t.top_n)
        except psycopg.Error as exc:
            findings.append(
                _finding(
                    "info",
                    "slow_queries",
                    db,
                    f"pg_stat_statements cannot be read in {db}: "
                    f"{(exc.diag.message_primary or str(exc)).strip()} (add it to "
                    "shared_preload_libraries and restart)",
                    database=db,
                )
            )
        for q in out["slow_queries"]:
            findings.append(
                _finding(
                    "warning",
                    "slow_query",
                    f"queryid {q['queryid']}",
                    f"mean {q['mean_ms']:.0f} ms over {q['calls']} calls: {q['query'][:100]}",
                    database=db,
                )
            )
    out["findings"] = findings
    return out
