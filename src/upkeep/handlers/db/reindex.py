"""``db.reindex``: REINDEX CONCURRENTLY one index at a time, and dropping the leftovers of failed
concurrent rebuilds (SQLite: REINDEX)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from upkeep.bounds import MAX_BYTES
from upkeep.engine.context import RunContext
from upkeep.engine.registry import handler, overridable
from upkeep.handlers.db import postgres_catalog as maint
from upkeep.handlers.db.common import (
    TargetConfig,
    chosen_databases,
    each_database,
    error_text,
)
from upkeep.handlers.db.sqlite import sqlite_maintain
from upkeep.handlers.db.targets import is_sqlite, target_from_ctx
from upkeep.handlers.findings import outcome_of

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    import psycopg


class ReindexConfig(TargetConfig):
    indexes: list[str] = overridable([], description="Index globs (schema-qualified or bare) to rebuild.")
    tables: list[str] = overridable([], description="Rebuild every index of these tables (globs).")
    bloated_only: bool = Field(
        False,
        description="Only indexes whose bloat (see db.inspect's bloat_method) is at "
        "least bloat_threshold_percent and bloat_min_bytes. With no indexes/tables given, "
        "every index is a candidate.",
    )
    bloat_threshold_percent: float = Field(30.0, ge=0, le=100, description="Bloat share for bloated_only.")
    bloat_min_bytes: int = Field(
        10 * 1024**2, ge=0, le=MAX_BYTES, description="Wasted bytes for bloated_only (default 10 MiB)."
    )
    bloat_method: str = Field(
        "auto",
        pattern="^(estimate|pgstattuple|auto)$",
        description="How bloat is measured for bloated_only (as in db.inspect).",
    )
    concurrently: bool = Field(
        True,
        description="REINDEX ... CONCURRENTLY (writes go on). False blocks writes to "
        "each table while its index is rebuilt.",
    )
    drop_leftovers: bool = Field(
        True,
        description="Drop INVALID *_ccnew/*_ccold indexes left by failed concurrent "
        "rebuilds (DROP INDEX CONCURRENTLY), except on tables where a build is running.",
    )
    lock_timeout: str | None = Field(
        "5s",
        description="Per-session lock_timeout for each REINDEX/DROP; a failed rebuild's leftover is dropped again.",
    )
    statement_timeout: str | None = Field("0", description="Per-session statement_timeout ('0' = none).")


# --- REINDEX ----------------------------------------------------------------------------------


def _wanted(ix: dict, config: ReindexConfig) -> bool:
    if not config.indexes and not config.tables:
        return True
    schema, table = ix["table"].split(".", 1)
    return (bool(config.indexes) and maint.matches(ix["schema"], ix["name"], config.indexes)) or (
        bool(config.tables) and maint.matches(schema, table, config.tables)
    )


def _bloat_by_index(conn: psycopg.Connection, method: str) -> dict[str, dict]:
    from upkeep.handlers.db.postgres_bloat import measure_bloat

    return {r["name"]: r for r in measure_bloat(conn, method) if r["kind"] == "index"}


def _drop_index(ctx: RunContext, conn: psycopg.Connection, db: str, ix: dict, why: str) -> dict:
    import psycopg
    from psycopg import sql

    name = sql.Identifier(ix["schema"], ix["name"])
    entry = {"database": db, "index": ix["index"], "table": ix["table"], "bytes": ix["bytes"], "reason": why}
    if ctx.dry_run:
        ctx.info(
            "plan",
            f"would DROP INDEX CONCURRENTLY {ix['index']} in {db} ({why})",
            action="drop_index",
            database=db,
            index=ix["index"],
            bytes=ix["bytes"],
        )
        return {**entry, "status": "planned"}
    try:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))
    except psycopg.Error as exc:
        ctx.warning("drop_failed", f"could not drop {ix['index']} in {db}: {error_text(exc)}", database=db)
        return {**entry, "status": "failed", "problem": error_text(exc)}
    ctx.info("index_dropped", f"dropped {ix['index']} in {db} ({why})", database=db, index=ix["index"])
    return {**entry, "status": "dropped"}


def _reindex_one(
    ctx: RunContext, conn: psycopg.Connection, db: str, ix: dict, config: ReindexConfig, dropped: list[dict]
) -> dict:
    import psycopg
    from psycopg import sql

    entry = {"database": db, "index": ix["index"], "table": ix["table"], "bytes_before": ix["bytes"]}
    word = "REINDEX INDEX CONCURRENTLY" if config.concurrently else "REINDEX INDEX"
    if ctx.dry_run:
        ctx.info(
            "plan",
            f"would run {word} {ix['index']} in {db} ({ix['bytes']:,} bytes)",
            action="reindex",
            database=db,
            index=ix["index"],
            bytes=ix["bytes"],
        )
        return {**entry, "status": "planned"}
    before = {i["oid"] for i in maint.indexes(conn)}
    try:
        conn.execute(sql.SQL(word + " {}").format(sql.Identifier(ix["schema"], ix["name"])))
        status, problem = "rebuilt", None
    except psycopg.errors.LockNotAvailable:
        status, problem = "failed", "lock_timeout: the table is locked by another session"
    except psycopg.errors.QueryCanceled:
        status, problem = "failed", "cancelled by statement_timeout"
    except psycopg.Error as exc:
        status, problem = "failed", error_text(exc)
    if problem:
        ctx.warning(
            "reindex_failed",
            f"{word} {ix['index']} in {db} failed: {problem}",
            database=db,
            index=ix["index"],
        )
        for left in maint.indexes(conn):  # the failed rebuild's own leftover, if any
            if left["oid"] not in before and maint.is_leftover(left) and left["table"] == ix["table"]:
                dropped.append(_drop_index(ctx, conn, db, left, "left by the failed rebuild"))
    after = maint.index_size(conn, ix["schema"], ix["name"])
    result = {
        **entry,
        "status": status,
        "bytes_after": after,
        "valid": maint.index_valid(conn, ix["schema"], ix["name"]),
    }
    if problem:
        result["problem"] = problem
    else:
        ctx.info(
            "index_rebuilt",
            f"{ix['index']} in {db}: {ix['bytes']:,} -> {after or 0:,} bytes",
            database=db,
            index=ix["index"],
            bytes_before=ix["bytes"],
            bytes_after=after,
        )
    return result


@handler("db.reindex", config=ReindexConfig, aliases=["postgres.reindex", "sqlite.reindex"], destructive=True)
def reindex(ctx: RunContext, config: ReindexConfig) -> dict:
    """Rebuild indexes with REINDEX CONCURRENTLY and drop leftovers of failed concurrent rebuilds."""
    target = target_from_ctx(ctx, config.target)
    if is_sqlite(target):
        return sqlite_maintain(ctx, target, "REINDEX", with_vacuum=False, with_analyze=False, with_reindex=True)
    if not config.concurrently:
        ctx.warning(
            "reindex_blocking",
            "concurrently is off: REINDEX blocks writes to each table while its indexes are rebuilt",
        )
    findings: list[dict] = []
    dropped: list[dict] = []
    rebuilt: list[dict] = []
    skipped: list[dict] = []
    dbs = chosen_databases(ctx, target, config, "reindex")
    for db, conn in each_database(ctx, target, config, "reindex", findings, dbs):
        all_indexes = maint.indexes(conn)
        if config.drop_leftovers:
            for ix in filter(maint.is_leftover, all_indexes):
                if ix["build_in_progress"]:
                    skipped.append(
                        {
                            "database": db,
                            "index": ix["index"],
                            "reason": "an index build is running on its table (it may be that build's own new index)",
                        }
                    )
                    continue
                dropped.append(_drop_index(ctx, conn, db, ix, "INVALID leftover of a failed concurrent rebuild"))
        chosen = [ix for ix in all_indexes if not maint.is_leftover(ix) and _wanted(ix, config)]
        if config.bloated_only:
            bloat = _bloat_by_index(conn, config.bloat_method)
            keep = []
            for ix in chosen:
                b = bloat.get(ix["index"])
                if (
                    b
                    and b["bloat_percent"] >= config.bloat_threshold_percent
                    and b["wasted_bytes"] >= config.bloat_min_bytes
                ):
                    keep.append({**ix, "bloat_percent": b["bloat_percent"]})
            chosen = keep
        for ix in chosen:
            ctx.check_cancelled()
            reason = None
            if not ix["valid"] and not config.indexes:
                reason = "INVALID (a failed CREATE INDEX CONCURRENTLY?): name it in indexes to rebuild it"
            elif ix["exclusion"] and config.concurrently:
                reason = "exclusion-constraint indexes cannot be rebuilt concurrently"
            if reason:
                skipped.append({"database": db, "index": ix["index"], "reason": reason})
                continue
            row = _reindex_one(ctx, conn, db, ix, config, dropped)
            rebuilt.append(row)
            if row["status"] == "failed":
                findings.append(
                    {
                        "severity": "warning",
                        "item": f"{db}:{ix['index']}",
                        "message": f"rebuild of {ix['index']} in {db} failed: {row['problem']}",
                    }
                )
    for d in dropped:
        if d["status"] == "failed":
            findings.append(
                {
                    "severity": "warning",
                    "item": f"{d['database']}:{d['index']}",
                    "message": f"could not drop leftover {d['index']}: {d.get('problem')}",
                }
            )
    ctx.progress(1.0, "reindex done")
    ok = [r for r in rebuilt if r["status"] == "rebuilt"]
    before = sum(r["bytes_before"] or 0 for r in ok)
    after = sum(r["bytes_after"] or 0 for r in ok)
    if ctx.dry_run:
        summary = (
            f"dry run: would rebuild {len(rebuilt)} indexes and drop {len(dropped)} leftovers in {len(dbs)} databases"
        )
    else:
        summary = (
            f"rebuilt {len(ok)}/{len(rebuilt)} indexes ({before:,} -> {after:,} bytes), dropped "
            f"{sum(d['status'] == 'dropped' for d in dropped)} leftovers in {len(dbs)} databases"
        )
    return {
        "outcome": outcome_of(findings),
        "summary": summary,
        "target": target["name"],
        "dry_run": ctx.dry_run,
        "rebuilt": rebuilt,
        "dropped": dropped,
        "skipped": skipped,
        "findings": findings,
        "bytes_before": before,
        "bytes_after": after,
    }
