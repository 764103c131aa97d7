"""PostgreSQL maintenance primitives for ``db.vacuum`` / ``db.analyze`` / ``db.reindex``.

Each function takes an open autocommit psycopg connection to one database. Selection by globs:
a pattern with a dot (``public.orders``, ``audit.*``) matches ``schema.name``; one without a dot
matches the bare name in any schema.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

LEFTOVER_RE = re.compile(r"_cc(new|old)[0-9]*$")
USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)


# Sizing a relation takes an ACCESS SHARE lock, which would queue behind an ACCESS EXCLUSIVE one
# (VACUUM FULL, ALTER TABLE, LOCK TABLE): for relations locked that way, the size comes from
# pg_class.relpages (as of the last VACUUM/ANALYZE) instead of waiting.
LOCKED_CTE = """locked AS MATERIALIZED (
    SELECT DISTINCT relation FROM pg_locks
     WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock'
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"""


def safe_size(fn: str, oid: str, relpages: str, *also_locked: str) -> str:
    """SQL for ``fn(oid)`` (pg_total_relation_size, ...) that never waits on a lock (needs LOCKED_CTE)."""
    oids = ", ".join((oid, *also_locked))
    return (
        f"(CASE WHEN EXISTS (SELECT 1 FROM locked WHERE relation IN ({oids})) "
        f"THEN {relpages}::bigint * current_setting('block_size')::bigint ELSE {fn}({oid}) END)"
    )


def matches(schema: str, name: str, patterns: Iterable[str]) -> bool:
    qualified = f"{schema}.{name}"
    return any(fnmatchcase(qualified if "." in pattern else name, pattern) for pattern in patterns)


def select(schema: str, name: str, include: list[str], exclude: list[str]) -> bool:
    """True when ``schema.name`` passes the include globs (empty = all) and no exclude glob."""
    if include and not matches(schema, name, include):
        return False
    return not matches(schema, name, exclude)


def set_timeouts(conn: psycopg.Connection, lock_timeout: str | None, statement_timeout: str | None) -> None:
    """Session settings (``'5s'``, ``'10min'``, ``'0'`` = none); an invalid value is a config error."""
    for name, value in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
        if value is not None:
            conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))


@contextlib.contextmanager
def notices(conn: psycopg.Connection) -> Iterator[list[tuple[str, str]]]:
    """Collect server notices (VACUUM VERBOSE output, 'skipping ...' warnings) while inside."""
    collected: list[tuple[str, str]] = []

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        collected.append((diag.severity or "NOTICE", diag.message_primary or ""))

    conn.add_notice_handler(on_notice)
    try:
        yield collected
    finally:
        conn.remove_notice_handler(on_notice)


def tables(
    conn: psycopg.Connection,
    include: list[str],
    exclude: list[str],
    catalogs: bool = False,
    partitioned: bool = False,
) -> list[dict]:
    """Ordinary tables and materialized views (and partitioned parents when asked: ANALYZE needs them,
    autovacuum never analyzes them) with size and dead-tuple statistics."""
    where = "TRUE" if catalogs else USER_SCHEMAS
    kinds = "'r', 'm', 'p'" if partitioned else "'r', 'm'"
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute(
        f"""
        WITH {LOCKED_CTE}
        SELECT c.oid, n.nspname, c.relname, c.relkind,
               {safe_size("pg_total_relation_size", "c.oid", "c.relpages")},
               coalesce(s.n_dead_tup, 0), coalesce(s.n_live_tup, 0),
               s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
         WHERE c.relkind IN ({kinds}) AND c.relpersistence <> 't'
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' AND {where}
         ORDER BY n.nspname, c.relname
        """
    ).fetchall()
    out = []
    for oid, schema, name, kind, size, dead, live, lv, lav, la, laa in rows:
        if select(schema, name, include, exclude):
            out.append(
                {
                    "oid": oid,
                    "schema": schema,
                    "name": name,
                    "table": f"{schema}.{name}",
                    "kind": {"m": "matview", "p": "partitioned"}.get(kind, "table"),
                    "bytes": size,
                    "dead_tuples": dead,
                    "live_tuples": live,
                    "last_vacuum": iso(lv),
                    "last_autovacuum": iso(lav),
                    "last_analyze": iso(la),
                    "last_autoanalyze": iso(laa),
                }
            )
    return out


def table_stats(conn: psycopg.Connection, oid: int) -> dict[str, Any]:
    """Fresh size and dead tuples of one table (clears this backend's statistics snapshot first)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        f"""WITH {LOCKED_CTE}
           SELECT {safe_size("pg_total_relation_size", "c.oid", "c.relpages")},
                  coalesce(s.n_dead_tup, 0), coalesce(s.n_live_tup, 0),
                  s.last_vacuum, s.last_analyze
             FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = %s""",
        (oid,),
    ).fetchone()
    if row is None:
        return {"bytes": None, "dead_tuples": None, "live_tuples": None}
    return {
        "bytes": row[0],
        "dead_tuples": row[1],
        "live_tuples": row[2],
        "last_vacuum": iso(row[3]),
        "last_analyze": iso(row[4]),
    }


def vacuum_statement(
    schema: str, name: str, *, full: bool, analyze: bool, verbose: bool, only_analyze: bool = False
) -> sql.Composed:
    from psycopg import sql

    options = [o for o, on in (("FULL", full), ("ANALYZE", analyze), ("VERBOSE", verbose)) if on]
    if only_analyze:
        options = ["VERBOSE"] if verbose else []
    verb = "ANALYZE" if only_analyze else "VACUUM"
    opts = f" ({', '.join(options)})" if options else ""
    return sql.SQL(verb + opts + " {}").format(sql.Identifier(schema, name))


def indexes(conn: psycopg.Connection) -> list[dict]:
    """Indexes of user tables with size, validity and kind."""
    rows = conn.execute(
        f"""
        WITH {LOCKED_CTE}
        SELECT i.indexrelid, n.nspname, ci.relname, ct.relname,
               {safe_size("pg_relation_size", "i.indexrelid", "ci.relpages", "i.indrelid")},
               i.indisvalid, i.indisunique, i.indisprimary, am.amname,
               EXISTS (SELECT 1 FROM pg_constraint x WHERE x.conindid = i.indexrelid AND x.contype = 'x'),
               EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid)
          FROM pg_index i
          JOIN pg_class ci ON ci.oid = i.indexrelid
          JOIN pg_class ct ON ct.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = ci.relnamespace
          JOIN pg_am am ON am.oid = ci.relam
         WHERE ci.relkind = 'i' AND ct.relkind IN ('r', 'm') AND {USER_SCHEMAS}
         ORDER BY n.nspname, ct.relname, ci.relname
        """
    ).fetchall()
    return [
        {
            "oid": r[0],
            "schema": r[1],
            "name": r[2],
            "index": f"{r[1]}.{r[2]}",
            "table": f"{r[1]}.{r[3]}",
            "table_name": r[3],
            "bytes": r[4],
            "valid": r[5],
            "unique": r[6],
            "primary": r[7],
            "method": r[8],
            "exclusion": r[9],
            "build_in_progress": r[10],
        }
        for r in rows
    ]


def is_leftover(index: dict) -> bool:
    """An invalid index left by a failed REINDEX CONCURRENTLY (``*_ccnew``, ``*_ccold``)."""
    return not index["valid"] and bool(LEFTOVER_RE.search(index["name"]))


def index_size(conn: psycopg.Connection, schema: str, name: str) -> int | None:
    row = conn.execute(
        f"""WITH {LOCKED_CTE}
           SELECT {safe_size("pg_relation_size", "c.oid", "c.relpages")}
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s""",
        (schema, name),
    ).fetchone()
    return row[0] if row else None


def index_valid(conn: psycopg.Connection, schema: str, name: str) -> bool | None:
    row = conn.execute(
        """SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s""",
        (schema, name),
    ).fetchone()
    return row[0] if row else None


def has_extension(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (name,)).fetchone() is not None


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
