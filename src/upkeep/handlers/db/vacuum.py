"""``db.vacuum`` and ``db.analyze``: VACUUM (ANALYZE) or ANALYZE per table, dead tuples and sizes
before and after (SQLite: the whole file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from upkeep.engine.context import RunContext
from upkeep.engine.registry import handler, overridable
from upkeep.handlers.db import postgres_catalog as maint
from upkeep.handlers.db.common import (
    TablesConfig,
    chosen_databases,
    each_database,
    error_text,
)
from upkeep.handlers.db.postgres import describe
from upkeep.handlers.db.sqlite import sqlite_maintain
from upkeep.handlers.db.targets import is_sqlite, target_from_ctx
from upkeep.handlers.findings import outcome_of

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    import psycopg
    from psycopg import sql


class VacuumConfig(TablesConfig):
    full: bool = overridable(
        False,
        description="VACUUM FULL: rewrites each table to give space back to the OS, "
        "under an ACCESS EXCLUSIVE lock (no reads or writes meanwhile). Only when asked.",
    )
    analyze: bool = Field(True, description="Also update planner statistics (VACUUM (ANALYZE)).")
    verbose: bool = Field(False, description="VACUUM VERBOSE; its output becomes debug events.")
    sqlite_integrity_check: Literal["full", "quick", "off"] = Field(
        "full",
        description="SQLite: PRAGMA integrity_check ('full', also matches indexes against tables) or "
        "quick_check ('quick', faster on big files) before VACUUM; a damaged file is not vacuumed and "
        "the run is critical.",
    )


class AnalyzeConfig(TablesConfig):
    verbose: bool = Field(False, description="ANALYZE VERBOSE; its output becomes debug events.")


def _per_table(ctx: RunContext, config: Any, *, verb: str, statement, partitioned: bool = False) -> dict:
    import psycopg

    target = target_from_ctx(ctx, config.target)
    where = describe(target)
    findings: list[dict] = []
    report: list[dict] = []
    dbs = chosen_databases(ctx, target, config, verb)
    for db, conn in each_database(ctx, target, config, verb, findings, dbs):
        try:
            tables = maint.tables(
                conn,
                config.tables,
                config.exclude_tables,
                catalogs=config.include_catalogs and not config.tables,
                partitioned=partitioned,
            )
        except psycopg.Error as exc:
            findings.append(
                {
                    "severity": "warning",
                    "item": db,
                    "message": f"cannot list the tables of {db}: {error_text(exc)}",
                }
            )
            continue
        rows = []
        for t in tables:
            ctx.check_cancelled()
            stmt = statement(t)
            row = {
                "table": t["table"],
                "bytes_before": t["bytes"],
                "dead_tuples_before": t["dead_tuples"],
            }
            if ctx.dry_run:
                ctx.info(
                    "plan",
                    f"would run {stmt.as_string(conn)} in {db}",
                    action=verb,
                    database=db,
                    table=t["table"],
                    bytes=t["bytes"],
                    dead_tuples=t["dead_tuples"],
                )
                rows.append({**row, "status": "planned"})
                continue
            rows.append(_run_one(ctx, conn, db, t, stmt, row, findings))
        report.append({"database": db, "tables": rows})
    ctx.progress(1.0, f"{verb} done")
    done = [r for d in report for r in d["tables"] if r["status"] == "done"]
    totals = {
        "databases": len(report),
        "tables": sum(len(d["tables"]) for d in report),
        "done": len(done),
        "dead_tuples_before": sum(r["dead_tuples_before"] or 0 for r in done),
        "dead_tuples_after": sum(r.get("dead_tuples_after") or 0 for r in done),
        "bytes_before": sum(r["bytes_before"] or 0 for r in done),
        "bytes_after": sum(r.get("bytes_after") or 0 for r in done),
    }
    if ctx.dry_run:
        summary = f"dry run: would {verb} {totals['tables']} tables in {len(report)} databases on {where}"
    else:
        summary = (
            f"{verb}: {totals['done']}/{totals['tables']} tables in {len(report)} databases on {where}; "
            f"dead tuples {totals['dead_tuples_before']:,} -> {totals['dead_tuples_after']:,}"
        )
        if findings:
            summary += f"; {len(findings)} problems"
    return {
        "outcome": outcome_of(findings),
        "summary": summary,
        "target": target["name"],
        "dry_run": ctx.dry_run,
        "databases": report,
        "totals": totals,
        "findings": findings,
    }


def _run_one(
    ctx: RunContext, conn: psycopg.Connection, db: str, t: dict, stmt, row: dict, findings: list[dict]
) -> dict:
    import psycopg

    item = f"{db}:{t['table']}"
    with maint.notices(conn) as notes:
        try:
            conn.execute(stmt)
            status, problem = "done", None
        except psycopg.errors.LockNotAvailable:
            status, problem = "skipped", "table is locked by another session (lock_timeout)"
        except psycopg.errors.QueryCanceled:
            status, problem = "failed", "cancelled by statement_timeout"
        except psycopg.errors.UndefinedTable:
            status, problem = "skipped", "table was dropped meanwhile"
        except psycopg.Error as exc:
            status, problem = "failed", error_text(exc)
    for severity, message in notes:
        if "skipping" in message and severity.upper() == "WARNING":
            status, problem = "skipped", message
        else:
            ctx.debug("server_notice", message, database=db, table=t["table"], severity=severity)
    if problem:
        findings.append({"severity": "warning", "item": item, "message": f"{t['table']} in {db}: {problem}"})
        ctx.warning("table_skipped", f"{t['table']} in {db}: {problem}", database=db, table=t["table"])
    after = maint.table_stats(conn, t["oid"])
    row.update(
        status=status,
        bytes_after=after["bytes"],
        dead_tuples_after=after["dead_tuples"],
        last_vacuum=after.get("last_vacuum"),
        last_analyze=after.get("last_analyze"),
    )
    if problem:
        row["problem"] = problem
    ctx.debug(
        "table_done",
        f"{t['table']} in {db}: {status}",
        database=db,
        **{k: v for k, v in row.items() if k != "table"},
        table=t["table"],
    )
    return row


@handler("db.vacuum", config=VacuumConfig, aliases=["postgres.vacuum", "sqlite.vacuum"])
def vacuum(ctx: RunContext, config: VacuumConfig) -> dict:
    """VACUUM (ANALYZE) every table of the target's database (or the chosen ones); dead tuples and sizes
    before/after."""
    target = target_from_ctx(ctx, config.target)
    if is_sqlite(target):
        return sqlite_maintain(
            ctx, target, "VACUUM", with_vacuum=True, with_analyze=config.analyze, check=config.sqlite_integrity_check
        )
    if config.full:
        ctx.warning(
            "vacuum_full",
            "VACUUM FULL rewrites each table under an ACCESS EXCLUSIVE lock: reads and "
            "writes of that table wait until its rewrite ends, and it needs free disk space of the "
            "table's size",
        )

    def statement(t: dict) -> sql.Composed:
        return maint.vacuum_statement(
            t["schema"], t["name"], full=config.full, analyze=config.analyze, verbose=config.verbose
        )

    return _per_table(ctx, config, verb="VACUUM FULL" if config.full else "VACUUM", statement=statement)


@handler("db.analyze", config=AnalyzeConfig, aliases=["postgres.analyze", "sqlite.analyze"])
def analyze(ctx: RunContext, config: AnalyzeConfig) -> dict:
    """ANALYZE every table of the target's database (or the chosen ones), so the planner has fresh statistics."""
    target = target_from_ctx(ctx, config.target)
    if is_sqlite(target):
        return sqlite_maintain(ctx, target, "ANALYZE", with_vacuum=False, with_analyze=True)

    def statement(t: dict) -> sql.Composed:
        return maint.vacuum_statement(
            t["schema"], t["name"], full=False, analyze=True, verbose=config.verbose, only_analyze=True
        )

    return _per_table(ctx, config, verb="ANALYZE", statement=statement, partitioned=True)
