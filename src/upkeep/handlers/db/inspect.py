"""``db.inspect``: one health report of a PostgreSQL server and its databases with documented
thresholds (``postgres_inspect``), or a SQLite file's integrity and free pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from upkeep.engine.context import RunContext
from upkeep.engine.registry import handler
from upkeep.errors import ConnectionFailed
from upkeep.handlers.db import sqlite as lite
from upkeep.handlers.db.common import (
    Databases,
    chosen_databases,
    databases_field,
    server_text,
    target_field,
)
from upkeep.handlers.db.postgres import connect
from upkeep.handlers.db.postgres_inspect import InspectThresholds, inspect_database, inspect_server
from upkeep.handlers.db.targets import is_sqlite, sqlite_path, target_from_ctx
from upkeep.handlers.findings import log_findings, outcome_of, severity_counts

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    pass


class InspectConfig(InspectThresholds):
    target: str = target_field()
    databases: Databases = databases_field()
    exclude_databases: list[str] = Field(default_factory=list, description="Databases (globs) to leave out.")
    connect_timeout: float = Field(5.0, gt=0, le=300, description="Seconds to wait for each connection.")
    sqlite_free_warning_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description="SQLite: warn when free pages exceed this share of the file (db.vacuum gives them back).",
    )


# --- INSPECT ----------------------------------------------------------------------------------


def _inspect_sqlite(ctx: RunContext, target: dict, config: InspectConfig) -> dict:
    path = sqlite_path(target)
    findings: list[dict] = []
    with lite.open_db(path, readonly=True) as conn:
        stats = lite.stats(conn, path)
        problems = lite.integrity_check(conn)
        tables = lite.tables(conn) if not problems else []
    for p in problems:
        findings.append({"severity": "critical", "check": "integrity", "item": str(path), "message": p})
    if stats["free_ratio"] > config.sqlite_free_warning_ratio:
        findings.append(
            {
                "severity": "warning",
                "check": "free_pages",
                "item": str(path),
                "message": f"{stats['free_ratio']:.0%} of {path} is free pages: run db.vacuum",
            }
        )
    outcome = outcome_of(findings)
    summary = (
        f"{path}: integrity {'FAILED (' + str(len(problems)) + ' problems)' if problems else 'ok'}, "
        f"{stats['bytes']:,} bytes, {stats['free_ratio']:.0%} free"
    )
    return {
        "outcome": outcome,
        "summary": summary,
        "engine": "sqlite",
        "target": str(path),
        "stats": stats,
        "integrity": problems or ["ok"],
        "tables": tables,
        "findings": findings,
    }


@handler("db.inspect", config=InspectConfig, aliases=["postgres.inspect", "db.health", "sqlite.inspect"])
def inspect(ctx: RunContext, config: InspectConfig) -> dict:
    """One health report: sizes, bloat, dead tuples, index problems, cache, connections, wraparound, sessions,
    slow queries. Findings (with the documented thresholds of the config) set the outcome."""
    target = target_from_ctx(ctx, config.target)
    if is_sqlite(target):
        return _inspect_sqlite(ctx, target, config)
    dbs = chosen_databases(ctx, target, config, "inspect")
    with connect(target, connect_timeout=config.connect_timeout) as conn:
        server = inspect_server(conn, config, databases=dbs)
    findings = list(server["findings"])
    databases: dict[str, dict] = {}
    for n, db in enumerate(dbs):
        ctx.check_cancelled()
        ctx.progress(n / max(1, len(dbs)), f"inspect {db}")
        try:
            with connect(target, db, connect_timeout=config.connect_timeout) as conn:
                databases[db] = inspect_database(conn, config)
        except ConnectionFailed as exc:
            if config.databases is None:
                raise
            findings.append({"severity": "warning", "check": "connect", "item": db, "message": str(exc)})
            continue
        findings.extend(databases[db]["findings"])
    log_findings(ctx, findings, "item")
    counts = severity_counts(findings)
    summary = (
        f"{server_text(target)}: {len(databases)} databases, {counts['critical']} critical, "
        f"{counts['warning']} warning, {counts['info']} info findings"
    )
    return {
        "outcome": outcome_of(findings),
        "summary": summary,
        "engine": "postgresql",
        "target": target["name"],
        "server": {k: v for k, v in server.items() if k != "findings"},
        "databases": databases,
        "findings": findings,
        "counts": counts,
    }
