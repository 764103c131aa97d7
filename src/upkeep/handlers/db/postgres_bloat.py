"""PostgreSQL bloat of tables and B-tree indexes, for ``db.inspect`` and ``db.reindex``.

Bloat method (``bloat_method``):

- ``estimate`` (default, cheap): statistics-based, in the manner of ioguide's pgsql-bloat-estimation
  queries. Expected pages come from ``pg_class.reltuples``, the average column widths and null
  fractions in ``pg_stats``, tuple header and alignment (8 bytes), the page header (24 bytes; B-tree
  special space 16 bytes), 4-byte line pointers and the fillfactor (tables 100, B-tree indexes 90
  unless set); bloat = pages on disk - expected pages. Tables or indexes without statistics (never
  analyzed) get no estimate; only B-tree indexes are estimated; B-tree deduplication can make an
  index smaller than expected (reported as 0).
- ``pgstattuple``: exact figures from the ``pgstattuple`` extension (``pgstattuple_approx`` for tables,
  ``pgstatindex`` for B-tree indexes). Reads the relations: slower on big databases.
- ``auto``: ``pgstattuple`` where that extension is installed in the database, else ``estimate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upkeep.handlers.db.postgres_catalog import USER_SCHEMAS, has_extension

if TYPE_CHECKING:
    import psycopg


def measure_bloat(conn: psycopg.Connection, method: str) -> list[dict]:
    """Bloat rows (``kind``, ``name``, ``bytes``, ``wasted_bytes``, ``bloat_percent``, ``estimated``) by
    ``method``: ``pgstattuple``, ``estimate``, or ``auto`` (pgstattuple where it is installed)."""
    if method == "auto":
        method = "pgstattuple" if has_extension(conn, "pgstattuple") else "estimate"
    return bloat_pgstattuple(conn) if method == "pgstattuple" else bloat_estimate(conn)


_FILLFACTOR = (
    "coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int FROM unnest({rel}.reloptions) o "
    "WHERE o LIKE 'fillfactor=%' LIMIT 1), {default})"
)


def bloat_estimate(conn: psycopg.Connection) -> list[dict]:
    """Statistics-based bloat of tables and B-tree indexes (see the module docstring)."""
    table_sql = f"""
        WITH t AS (
          SELECT c.oid, n.nspname, c.relname, c.relpages, c.reltuples,
                 {_FILLFACTOR.format(rel="c", default=100)} AS ff, current_setting('block_size')::int AS bs
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'm') AND c.relpages > 0 AND c.reltuples >= 0 AND {USER_SCHEMAS}
        ), w AS (
          SELECT t.oid, sum((1 - coalesce(s.null_frac, 0)) * s.avg_width) AS width, count(*) AS ncols,
                 count(s.avg_width) AS nstats, max(coalesce(s.null_frac, 0)) > 0 AS has_nulls
            FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_stats s ON s.schemaname = t.nspname AND s.tablename = t.relname
                                AND s.attname = a.attname AND NOT s.inherited
           GROUP BY t.oid
        )
        SELECT 'table', t.nspname || '.' || t.relname, t.relpages::bigint * t.bs, t.relpages, t.bs,
               CASE WHEN w.nstats = w.ncols THEN ceil(t.reltuples / greatest(1, floor(
                 (t.bs - 24) * t.ff / 100.0 /
                 (4 + ceil((23 + CASE WHEN w.has_nulls THEN ceil(w.ncols / 8.0) ELSE 0 END) / 8.0) * 8
                    + ceil(w.width / 8.0) * 8)))) END
          FROM t JOIN w ON w.oid = t.oid
    """
    index_sql = f"""
        WITH i AS (
          SELECT x.indexrelid, x.indrelid, n.nspname, ci.relname AS idxname, ct.relname AS tblname,
                 ci.relpages, ci.reltuples, x.indnatts, x.indkey,
                 {_FILLFACTOR.format(rel="ci", default=90)} AS ff, current_setting('block_size')::int AS bs
            FROM pg_index x
            JOIN pg_class ci ON ci.oid = x.indexrelid
            JOIN pg_class ct ON ct.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = ci.relnamespace
            JOIN pg_am am ON am.oid = ci.relam
           WHERE am.amname = 'btree' AND ci.relpages > 1 AND ci.reltuples >= 0 AND {USER_SCHEMAS}
        ), c AS (
          SELECT i.indexrelid,
                 CASE WHEN i.indkey[k.pos] = 0 THEN i.idxname ELSE i.tblname END AS statrel,
                 CASE WHEN i.indkey[k.pos] = 0
                      THEN (SELECT attname FROM pg_attribute
                             WHERE attrelid = i.indexrelid AND attnum = k.pos + 1)
                      ELSE (SELECT attname FROM pg_attribute
                             WHERE attrelid = i.indrelid AND attnum = i.indkey[k.pos])
                 END AS attname
            FROM i, generate_series(0, i.indnatts - 1) AS k(pos)
        ), w AS (
          SELECT c.indexrelid, sum((1 - coalesce(s.null_frac, 0)) * s.avg_width) AS width, count(*) AS ncols,
                 count(s.avg_width) AS nstats, max(coalesce(s.null_frac, 0)) > 0 AS has_nulls
            FROM c JOIN i ON i.indexrelid = c.indexrelid
            LEFT JOIN pg_stats s ON s.schemaname = i.nspname AND s.tablename = c.statrel
                                AND s.attname = c.attname AND NOT s.inherited
           GROUP BY c.indexrelid
        )
        SELECT 'index', i.nspname || '.' || i.idxname, i.relpages::bigint * i.bs, i.relpages, i.bs,
               CASE WHEN w.nstats = w.ncols THEN 1 + ceil(i.reltuples / greatest(1, floor(
                 (i.bs - 24 - 16) * i.ff / 100.0 /
                 (4 + ceil((8 + CASE WHEN w.has_nulls THEN 8 ELSE 0 END + w.width) / 8.0) * 8)))) END
          FROM i JOIN w ON w.indexrelid = i.indexrelid
    """
    out = []
    for query in (table_sql, index_sql):
        for kind, name, size, pages, bs, expected in conn.execute(query).fetchall():
            if expected is None:
                out.append(
                    {
                        "kind": kind,
                        "name": name,
                        "bytes": size,
                        "wasted_bytes": 0,
                        "bloat_percent": 0.0,
                        "estimated": False,
                        "note": "no statistics: run ANALYZE",
                    }
                )
                continue
            extra = max(0, int(pages) - int(expected))
            out.append(
                {
                    "kind": kind,
                    "name": name,
                    "bytes": size,
                    "wasted_bytes": extra * bs,
                    "bloat_percent": round(100.0 * extra / pages, 1) if pages else 0.0,
                    "estimated": True,
                }
            )
    return out


def bloat_pgstattuple(conn: psycopg.Connection) -> list[dict]:
    """Exact bloat through the pgstattuple extension (installed in this database)."""
    out = []
    rows = conn.execute(
        f"""SELECT n.nspname || '.' || c.relname, s.table_len, s.approx_free_space + s.dead_tuple_len
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                   LATERAL pgstattuple_approx(c.oid) s
             WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMAS}"""
    ).fetchall()
    for name, size, wasted in rows:
        out.append(
            {
                "kind": "table",
                "name": name,
                "bytes": size,
                "wasted_bytes": int(wasted),
                "bloat_percent": round(100.0 * wasted / size, 1) if size else 0.0,
                "estimated": False,
            }
        )
    rows = conn.execute(
        f"""SELECT n.nspname || '.' || ci.relname, s.index_size, s.avg_leaf_density,
                   {_FILLFACTOR.format(rel="ci", default=90)}
              FROM pg_index x JOIN pg_class ci ON ci.oid = x.indexrelid
              JOIN pg_namespace n ON n.oid = ci.relnamespace JOIN pg_am am ON am.oid = ci.relam,
                   LATERAL pgstatindex(ci.oid) s
             WHERE am.amname = 'btree' AND x.indisvalid AND ci.relpages > 1 AND {USER_SCHEMAS}"""
    ).fetchall()
    for name, size, density, ff in rows:
        share = 0.0 if density != density else max(0.0, 1.0 - float(density) / float(ff))  # NaN for empty
        out.append(
            {
                "kind": "index",
                "name": name,
                "bytes": size,
                "wasted_bytes": int(size * share),
                "bloat_percent": round(100.0 * share, 1),
                "estimated": False,
            }
        )
    return out
