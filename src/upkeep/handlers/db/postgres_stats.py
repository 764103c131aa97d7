"""What ``db.inspect`` reads from one PostgreSQL database's statistics: tables (sizes, live and dead
tuples, vacuum and analyze times), indexes (size, scans, validity), duplicate indexes and the slowest
statements of ``pg_stat_statements``. Sizes never wait behind an ACCESS EXCLUSIVE lock (``LOCKED_CTE``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from upkeep.handlers.db.postgres_catalog import LOCKED_CTE, USER_SCHEMAS, iso, safe_size

if TYPE_CHECKING:
    import psycopg


def table_rows(conn: psycopg.Connection) -> list[dict]:
    rows = conn.execute(
        f"""WITH {LOCKED_CTE}
            SELECT n.nspname || '.' || c.relname,
                   {safe_size("pg_total_relation_size", "c.oid", "c.relpages")},
                   {safe_size("pg_relation_size", "c.oid", "c.relpages")},
                   {safe_size("pg_indexes_size", "c.oid", "0")},
                   coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0),
                   s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze, s.n_mod_since_analyze
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
             WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMAS}"""
    ).fetchall()
    return [
        {
            "table": r[0],
            "bytes": r[1],
            "heap_bytes": r[2],
            "index_bytes": r[3],
            "live_tuples": r[4],
            "dead_tuples": r[5],
            "last_vacuum": iso(r[6]),
            "last_autovacuum": iso(r[7]),
            "last_analyze": iso(r[8]),
            "last_autoanalyze": iso(r[9]),
            "modified_since_analyze": r[10],
        }
        for r in rows
    ]


def index_rows(conn: psycopg.Connection) -> list[dict]:
    rows = conn.execute(
        f"""WITH {LOCKED_CTE}
            SELECT n.nspname || '.' || ci.relname, n.nspname || '.' || ct.relname,
                   {safe_size("pg_relation_size", "ci.oid", "ci.relpages", "ct.oid")},
                   coalesce(s.idx_scan, 0), i.indisunique, i.indisprimary, i.indisvalid, am.amname
              FROM pg_index i
              JOIN pg_class ci ON ci.oid = i.indexrelid
              JOIN pg_class ct ON ct.oid = i.indrelid
              JOIN pg_namespace n ON n.oid = ci.relnamespace
              JOIN pg_am am ON am.oid = ci.relam
              LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
             WHERE {USER_SCHEMAS}"""
    ).fetchall()
    return [
        {
            "index": r[0],
            "table": r[1],
            "bytes": r[2],
            "scans": r[3],
            "unique": r[4],
            "primary": r[5],
            "valid": r[6],
            "method": r[7],
        }
        for r in rows
    ]


def duplicate_indexes(conn: psycopg.Connection) -> list[dict]:
    """Valid indexes identical to another on the same table: method, columns, operator classes,
    collations, expressions and predicate. The one kept is the unique/primary one, else the oldest."""
    rows = conn.execute(
        f"""
        WITH {LOCKED_CTE}, x AS (
          SELECT i.indexrelid, i.indrelid, n.nspname, ci.relname AS idx, ct.relname AS tbl,
                 i.indisprimary, i.indisunique,
                 concat_ws('|', ci.relam::text, i.indkey::text, i.indclass::text, i.indcollation::text,
                           coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
                           coalesce(pg_get_expr(i.indpred, i.indrelid), '')) AS sig
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_class ct ON ct.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = ci.relnamespace
           WHERE i.indisvalid AND {USER_SCHEMAS}
        ), ranked AS (
          SELECT x.*, first_value(nspname || '.' || idx) OVER w AS keep,
                 row_number() OVER w AS rn
            FROM x
          WINDOW w AS (PARTITION BY indrelid, sig
                       ORDER BY indisprimary DESC, indisunique DESC, indexrelid)
        )
        SELECT nspname || '.' || idx, nspname || '.' || tbl, keep,
               {safe_size("pg_relation_size", "indexrelid", "0", "indrelid")}
          FROM ranked WHERE rn > 1 ORDER BY 1
        """
    ).fetchall()
    return [{"index": r[0], "table": r[1], "duplicate_of": r[2], "bytes": r[3]} for r in rows]


def slow_queries(conn: psycopg.Connection, mean_ms: float, min_calls: int, top_n: int) -> list[dict]:
    """The ``top_n`` statements slower than ``mean_ms`` on average over at least ``min_calls`` calls."""
    rows = conn.execute(
        """SELECT s.queryid, s.calls, s.mean_exec_time, s.max_exec_time, s.total_exec_time, s.rows,
                  r.rolname, left(s.query, 500)
             FROM pg_stat_statements s
             LEFT JOIN pg_roles r ON r.oid = s.userid
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND s.mean_exec_time > %s AND s.calls >= %s
            ORDER BY s.mean_exec_time DESC LIMIT %s""",
        (mean_ms, min_calls, top_n),
    ).fetchall()
    return [
        {
            "queryid": r[0],
            "calls": r[1],
            "mean_ms": round(r[2], 2),
            "max_ms": round(r[3], 2),
            "total_ms": round(r[4], 1),
            "rows": r[5],
            "user": r[6],
            "query": r[7],
        }
        for r in rows
    ]
