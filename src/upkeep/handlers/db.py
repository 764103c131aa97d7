"""Database maintenance: ``db.vacuum``, ``db.analyze``, ``db.reindex``, ``db.inspect``,
``db.terminate_sessions`` for PostgreSQL servers and SQLite files (upkeep's own store included).

Targets come from ``targets.databases`` in ``upkeep.yaml`` (see ``upkeep.handlers._pg`` for the
fields): ``url: postgresql://user:${env:PW}@host:port/db`` or ``host/port/user/password/dbname``,
or ``url: sqlite:////path/file.db``. ``target: upkeep`` is upkeep's own store. On PostgreSQL a task
works on the database its target names and connects to no other; ``databases: [names or globs]``
(names of other ``targets.databases`` entries on the same server, or database names) or
``databases: all`` (every connectable non-template database), set in ``upkeep.yaml``, widen that.
Before acting, a ``scope`` event says which databases were chosen and why.

- ``db.vacuum``: ``VACUUM (ANALYZE)`` per table with dead tuples and size before and after. ``full``
  rewrites tables under an ACCESS EXCLUSIVE lock (announced by a warning event). SQLite: a quick
  integrity check, then ``VACUUM`` and ``PRAGMA optimize`` (ANALYZE too with ``analyze``).
- ``db.analyze``: ``ANALYZE`` per table (SQLite: ``ANALYZE`` + ``PRAGMA optimize``).
- ``db.reindex``: ``REINDEX INDEX CONCURRENTLY`` one index at a time, outside a transaction, under
  ``lock_timeout``/``statement_timeout``; first drops INVALID ``*_ccnew``/``*_ccold`` leftovers of
  failed concurrent rebuilds (``DROP INDEX CONCURRENTLY``), and drops the leftover a failed rebuild
  of its own leaves. Index sizes before and after. SQLite: ``REINDEX``.
- ``db.inspect``: one report with documented thresholds (``InspectThresholds``), findings set the
  outcome. SQLite: ``PRAGMA integrity_check`` (problems are critical) and free-page share.
- ``db.terminate_sessions``: the emergency runbook: ends old active / idle-in-transaction / idle
  sessions, never its own, replication or other non-client backends, backup tools
  (``pg_dump``, ``pg_basebackup``, ... by application name or by a ``COPY ... TO stdout`` query) or
  superusers unless ``include_superusers``.

``dry_run`` is honoured everywhere: the plan is logged item by item and returned, nothing runs.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from upkeep.bounds import MAX_BYTES, MAX_MINUTES
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError, ConnectionFailed, UserError
from upkeep.handlers import _pg_maint as maint
from upkeep.handlers import _sqlite_maint as lite
from upkeep.handlers._pg import (
    connect,
    database_of,
    describe,
    is_sqlite,
    list_databases,
    server_of,
    sqlite_path,
    target_from_ctx,
)
from upkeep.handlers._pg_inspect import InspectThresholds, inspect_database, inspect_server

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    import psycopg
    from psycopg import sql

__all__ = ["InspectThresholds", "inspect_database", "inspect_server"]

SEVERITY_ORDER = {"ok": 0, "info": 0, "warning": 1, "critical": 2}
TARGET_HELP = (
    "Database target: a name under targets.databases, 'upkeep' for upkeep's own store, or a "
    "postgresql:// or sqlite:/// URL (passwords as ${env:NAME})."
)
DATABASES_HELP = (
    "Where the work is done besides the target's own database (the default): names of "
    "targets.databases entries on the same server, database names or globs, or 'all' (every "
    "connectable non-template database)."
)
Databases = list[str] | Literal["all"] | None


def _target_field(help_text: str = TARGET_HELP) -> Any:
    return host_scoped(..., refs=("databases",), also=("upkeep",), description=help_text)


def _databases_field(help_text: str = DATABASES_HELP) -> Any:
    return host_scoped(None, refs=("databases",), overridable=True, description=help_text)


# --- config models ----------------------------------------------------------------------------


class _Target(HandlerConfig):
    target: str = _target_field()
    databases: Databases = _databases_field()
    exclude_databases: list[str] = Field(default_factory=list, description="Databases (globs) to leave out.")
    connect_timeout: float = Field(5.0, gt=0, le=300, description="Seconds to wait for each connection.")


class _Tables(_Target):
    tables: list[str] = overridable(
        default_factory=list,
        description="Table globs, schema-qualified ('public.orders', 'audit.*') or bare "
        "('orders' in any schema); empty = all user tables.",
    )
    exclude_tables: list[str] = Field(default_factory=list, description="Table globs to leave out.")
    include_catalogs: bool = Field(False, description="Also system catalogs (pg_catalog) when no tables are given.")
    lock_timeout: str | None = Field(
        "5s",
        description="Per-session lock_timeout: a table locked by someone else "
        "longer than this is skipped (warning) instead of queueing behind the lock "
        "and blocking others. None = wait.",
    )
    statement_timeout: str | None = Field("0", description="Per-session statement_timeout ('0' = none).")


class VacuumConfig(_Tables):
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


class AnalyzeConfig(_Tables):
    verbose: bool = Field(False, description="ANALYZE VERBOSE; its output becomes debug events.")


class ReindexConfig(_Target):
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


class InspectConfig(InspectThresholds):
    target: str = _target_field()
    databases: Databases = _databases_field()
    exclude_databases: list[str] = Field(default_factory=list, description="Databases (globs) to leave out.")
    connect_timeout: float = Field(5.0, gt=0, le=300, description="Seconds to wait for each connection.")
    sqlite_free_warning_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description="SQLite: warn when free pages exceed this share of the file (db.vacuum gives them back).",
    )


class TerminateConfig(HandlerConfig):
    target: str = _target_field(TARGET_HELP + " PostgreSQL only.")
    active_minutes: float | None = overridable(
        10.0,
        ge=0,
        le=MAX_MINUTES,
        description="End queries active longer than this (None = leave active queries alone).",
    )
    idle_in_transaction_minutes: float | None = overridable(
        5.0, ge=0, le=MAX_MINUTES, description="End sessions idle in a transaction longer than this (None = skip)."
    )
    idle_minutes: float | None = overridable(
        30.0, ge=0, le=MAX_MINUTES, description="End idle sessions older than this (None = skip)."
    )
    databases: Databases = _databases_field(
        "Sessions of which databases: the target's own (the default), names of targets.databases entries "
        "on the same server, database names or globs, or 'all'."
    )
    users: list[str] | None = overridable(None, description="Only sessions of these users (globs).")
    applications: list[str] | None = overridable(
        None, description="Only sessions with these application names (globs)."
    )
    include_superusers: bool = Field(False, description="Also end superusers' sessions.")
    protected_applications: list[str] = Field(
        default_factory=list,
        description="More application-name globs never to end, besides the built-in backup and replication tools.",
    )
    wait_seconds: float = Field(
        5.0, ge=0, le=60, description="How long pg_terminate_backend waits for each session to exit."
    )
    connect_timeout: float = Field(5.0, gt=0, le=300, description="Seconds to wait for the connection.")


# --- shared helpers ---------------------------------------------------------------------------


def _worst(findings: list[dict]) -> str:
    worst = "ok"
    for f in findings:
        sev = f.get("severity", "info")
        if SEVERITY_ORDER.get(sev, 0) > SEVERITY_ORDER[worst]:
            worst = sev
    return worst


def _scope(ctx: RunContext, target: dict, config: Any) -> tuple[list[str] | None, str]:
    """The database names or globs a task may work on (None: every one) and why.

    Least scope: the target's own database unless the task's config widens it. A name of another
    ``targets.databases`` entry means that entry's database, which must be on the same server."""
    if config.databases is None:
        return [database_of(target)], f"the database target {target['name']} names"
    if config.databases == "all":
        return None, "databases: all"
    inventory = ctx.targets.names("databases")
    out = []
    for entry in config.databases:
        if entry not in inventory:
            out.append(entry)
            continue
        other = target_from_ctx(ctx, entry)
        if is_sqlite(other) or server_of(other) != server_of(target):
            raise ConfigError(
                f"databases: {entry} is a target on another server than {target['name']}",
                hint="name databases of the target's own server, or give the task another target",
                field="config.databases",
            )
        out.append(database_of(other))
    return out, f"databases: [{', '.join(config.databases)}] in the task's config"


def _databases(ctx: RunContext, target: dict, config: Any, what: str) -> list[str]:
    """The databases to work on, announced (event ``scope``) before anything is done to them."""
    patterns, why = _scope(ctx, target, config)
    if config.databases is None:
        chosen = list(patterns or [])
    else:
        with connect(target, connect_timeout=config.connect_timeout) as conn:
            available = list_databases(conn)
        if patterns is None:
            chosen = available
        else:
            missing = [d for d in patterns if not any(fnmatchcase(a, d) for a in available)]
            if missing:
                raise UserError(
                    f"database {missing[0]!r} does not exist on {_server_of(target)}",
                    hint=f"connectable databases: {', '.join(available)}",
                    field="databases",
                )
            chosen = [a for a in available if any(fnmatchcase(a, d) for d in patterns)]
    chosen = [d for d in chosen if not any(fnmatchcase(d, x) for x in config.exclude_databases)]
    ctx.scope(chosen, why, what=f"{what} databases on {_server_of(target)}")
    return chosen


def _server_of(target: dict) -> str:
    """``user@host:port`` of a target, without database and password."""
    return describe(target).rsplit("/", 1)[0]


def _error_text(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bad_setting(exc: psycopg.Error, config: Any) -> ConfigError:
    return ConfigError(
        f"invalid lock_timeout/statement_timeout ({config.lock_timeout!r}/"
        f"{config.statement_timeout!r}): {_error_text(exc)}",
        hint="use e.g. '5s', '10min' or '0'",
    )


def _session(conn: psycopg.Connection, config: Any) -> None:
    import psycopg

    try:
        maint.set_timeouts(conn, config.lock_timeout, config.statement_timeout)
    except psycopg.errors.InvalidParameterValue as exc:
        raise _bad_setting(exc, config) from None


# --- VACUUM / ANALYZE -------------------------------------------------------------------------


def _each_database(ctx: RunContext, target: dict, config: Any, verb: str, findings: list[dict], dbs: list[str]):
    """Each chosen database with an open session (timeouts set), reporting progress. When the task
    works on several databases, one that cannot be reached becomes a warning finding and is skipped;
    when it works on its target's own database only, that is a failure."""
    for n, db in enumerate(dbs):
        ctx.check_cancelled()
        ctx.progress(n / max(1, len(dbs)), f"{verb} {db}")
        try:
            conn = connect(target, db, connect_timeout=config.connect_timeout)
        except ConnectionFailed as exc:
            if config.databases is None:
                raise
            findings.append({"severity": "warning", "item": db, "message": str(exc)})
            continue
        with conn:
            _session(conn, config)
            yield db, conn


def _per_table(ctx: RunContext, config: Any, *, verb: str, statement, partitioned: bool = False) -> dict:
    import psycopg

    target = target_from_ctx(ctx, config.target)
    where = describe(target)
    findings: list[dict] = []
    report: list[dict] = []
    dbs = _databases(ctx, target, config, verb)
    for db, conn in _each_database(ctx, target, config, verb, findings, dbs):
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
                    "message": f"cannot list the tables of {db}: {_error_text(exc)}",
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
        "outcome": _worst(findings),
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
            status, problem = "failed", _error_text(exc)
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


def _sqlite_result(
    verb: str,
    path,
    before: dict,
    after: dict | None,
    findings: list[dict],
    ctx: RunContext,
    actions: list[str],
) -> dict:
    if ctx.dry_run:
        summary = f"dry run: would run {', '.join(actions)} on {path} ({before['bytes']:,} bytes)"
    elif after is None:
        summary = f"{verb} not done on {path}: {findings[0]['message'] if findings else 'see findings'}"
    else:
        summary = f"{verb} {path}: {before['bytes']:,} -> {after['bytes']:,} bytes"
    return {
        "outcome": _worst(findings),
        "summary": summary,
        "target": str(path),
        "dry_run": ctx.dry_run,
        "engine": "sqlite",
        "actions": actions,
        "before": before,
        "after": after,
        "findings": findings,
    }


def _sqlite_maintain(
    ctx: RunContext,
    target: dict,
    verb: str,
    *,
    vacuum: bool,
    analyze: bool,
    check: str = "off",
    reindex: bool = False,
) -> dict:
    path = sqlite_path(target)
    pragma = {"full": "PRAGMA integrity_check", "quick": "PRAGMA quick_check"}.get(check)
    actions = (
        ([pragma] if pragma else [])
        + (["REINDEX"] if reindex else [])
        + (["VACUUM"] if vacuum else [])
        + (["ANALYZE"] if analyze else [])
        + ["PRAGMA optimize"]
    )
    findings: list[dict] = []
    with lite.open_db(path) as conn:
        before = lite.stats(conn, path)
        if ctx.dry_run:
            for action in actions:
                ctx.info("plan", f"would run {action} on {path}", action=action, path=str(path))
            return _sqlite_result(verb, path, before, None, findings, ctx, actions)
        if pragma:
            problems = lite.integrity_check(conn, quick=check == "quick")
            if problems:
                for p in problems:
                    findings.append({"severity": "critical", "item": str(path), "message": p})
                ctx.error("integrity", f"{path} failed its integrity check: not running {verb}", problems=problems)
                return _sqlite_result(verb, path, before, None, findings, ctx, actions)
        ctx.check_cancelled()
        if reindex:
            lite.reindex(conn)
        if vacuum:
            lite.vacuum(conn)
        if analyze:
            lite.analyze(conn)
        lite.optimize(conn)
        after = lite.stats(conn, path)
    ctx.info("sqlite_done", f"{verb} {path}", before=before, after=after)
    return _sqlite_result(verb, path, before, after, findings, ctx, actions)


@handler("db.vacuum", config=VacuumConfig, aliases=["postgres.vacuum", "sqlite.vacuum"])
def vacuum(ctx: RunContext, config: VacuumConfig) -> dict:
    """VACUUM (ANALYZE) every table of the target's database (or the chosen ones); dead tuples and sizes
    before/after."""
    target = target_from_ctx(ctx, config.target)
    if is_sqlite(target):
        return _sqlite_maintain(
            ctx, target, "VACUUM", vacuum=True, analyze=config.analyze, check=config.sqlite_integrity_check
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
        return _sqlite_maintain(ctx, target, "ANALYZE", vacuum=False, analyze=True)

    def statement(t: dict) -> sql.Composed:
        return maint.vacuum_statement(
            t["schema"], t["name"], full=False, analyze=True, verbose=config.verbose, only_analyze=True
        )

    return _per_table(ctx, config, verb="ANALYZE", statement=statement, partitioned=True)


# --- REINDEX ----------------------------------------------------------------------------------


def _wanted(ix: dict, config: ReindexConfig) -> bool:
    if not config.indexes and not config.tables:
        return True
    schema, table = ix["table"].split(".", 1)
    return (bool(config.indexes) and maint.matches(ix["schema"], ix["name"], config.indexes)) or (
        bool(config.tables) and maint.matches(schema, table, config.tables)
    )


def _bloat_by_index(conn: psycopg.Connection, method: str) -> dict[str, dict]:
    from upkeep.handlers import _pg_inspect

    if method == "auto":
        method = "pgstattuple" if maint.has_extension(conn, "pgstattuple") else "estimate"
    rows = _pg_inspect._bloat_pgstattuple(conn) if method == "pgstattuple" else _pg_inspect._bloat_estimate(conn)
    return {r["name"]: r for r in rows if r["kind"] == "index"}


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
        ctx.warning("drop_failed", f"could not drop {ix['index']} in {db}: {_error_text(exc)}", database=db)
        return {**entry, "status": "failed", "problem": _error_text(exc)}
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
        status, problem = "failed", _error_text(exc)
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
        return _sqlite_maintain(ctx, target, "REINDEX", vacuum=False, analyze=False, reindex=True)
    if not config.concurrently:
        ctx.warning(
            "reindex_blocking",
            "concurrently is off: REINDEX blocks writes to each table while its indexes are rebuilt",
        )
    findings: list[dict] = []
    dropped: list[dict] = []
    rebuilt: list[dict] = []
    skipped: list[dict] = []
    dbs = _databases(ctx, target, config, "reindex")
    for db, conn in _each_database(ctx, target, config, "reindex", findings, dbs):
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
        "outcome": _worst(findings),
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
    outcome = _worst(findings)
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
    dbs = _databases(ctx, target, config, "inspect")
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
    for f in findings:
        if f["severity"] != "info":
            ctx.log(
                "warning" if f["severity"] == "warning" else "error",
                f"finding.{f.get('check', 'check')}",
                f["message"],
                item=f.get("item"),
                severity=f["severity"],
            )
    counts = {s: sum(f["severity"] == s for f in findings) for s in ("critical", "warning", "info")}
    summary = (
        f"{_server_of(target)}: {len(databases)} databases, {counts['critical']} critical, "
        f"{counts['warning']} warning, {counts['info']} info findings"
    )
    return {
        "outcome": _worst(findings),
        "summary": summary,
        "engine": "postgresql",
        "target": target["name"],
        "server": {k: v for k, v in server.items() if k != "findings"},
        "databases": databases,
        "findings": findings,
        "counts": counts,
    }


# --- TERMINATE SESSIONS -----------------------------------------------------------------------

BACKUP_APPLICATIONS = (
    "pg_dump*",
    "pg_dumpall",
    "pg_basebackup",
    "pg_restore",
    "pgbackrest*",
    "barman*",
    "wal-g*",
    "wal-e*",
    "pg_receivewal",
    "pg_recvlogical",
    "pg_rewind",
    "pg_probackup*",
    "upkeep-backup*",
)
_BACKUP_QUERY_RE = re.compile(
    r"^\s*(COPY\s+.+\s+TO\s+stdout|BASE_BACKUP|START_REPLICATION|SELECT\s+pg_(backup|start)_(start|backup))",
    re.I | re.S,
)
_PASSWORD_RE = re.compile(r"(password\s+)'(?:[^']|'')*'", re.I)


def _excerpt(query: str | None, limit: int = 200) -> str:
    text = _PASSWORD_RE.sub(r"\1'***'", " ".join((query or "").split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _why_protected(row: dict, config: TerminateConfig) -> str | None:
    if row["backend_type"] != "client backend":
        return f"{row['backend_type']} (replication or server process)"
    app = row["application"] or ""
    if any(fnmatchcase(app.lower(), p.lower()) for p in (*BACKUP_APPLICATIONS, *config.protected_applications)):
        return f"backup/replication tool ({app})"
    if _BACKUP_QUERY_RE.search(row["query"] or ""):
        return "backup in progress (COPY ... TO stdout / base backup)"
    if row["superuser"] and not config.include_superusers:
        return "superuser (set include_superusers to end it)"
    return None


def _why_old(row: dict, config: TerminateConfig) -> str | None:
    state = row["state"] or ""
    if (
        state == "active"
        and config.active_minutes is not None
        and row["query_age"] is not None
        and row["query_age"] >= config.active_minutes * 60
    ):
        return f"active for {row['query_age'] / 60:.1f} min (limit {config.active_minutes:g})"
    if (
        state.startswith("idle in transaction")
        and config.idle_in_transaction_minutes is not None
        and row["state_age"] is not None
        and row["state_age"] >= config.idle_in_transaction_minutes * 60
    ):
        limit = config.idle_in_transaction_minutes
        return f"idle in transaction for {row['state_age'] / 60:.1f} min (limit {limit:g})"
    if (
        state == "idle"
        and config.idle_minutes is not None
        and row["state_age"] is not None
        and row["state_age"] >= config.idle_minutes * 60
    ):
        return f"idle for {row['state_age'] / 60:.1f} min (limit {config.idle_minutes:g})"
    return None


def _filtered(value: str | None, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatchcase(value or "", p) for p in patterns)


def _sessions(conn: psycopg.Connection) -> list[dict]:
    cols = (
        "pid",
        "user",
        "database",
        "application",
        "client",
        "state",
        "backend_type",
        "query",
        "superuser",
        "query_age",
        "state_age",
        "backend_start",
    )
    rows = conn.execute(
        """SELECT a.pid, a.usename, a.datname, a.application_name, a.client_addr::text, a.state,
                  a.backend_type,
                  a.query, coalesce(r.rolsuper, false),
                  extract(epoch FROM clock_timestamp() - a.query_start)::float8,
                  extract(epoch FROM clock_timestamp() - a.state_change)::float8, a.backend_start
             FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
            WHERE a.pid <> pg_backend_pid()
            ORDER BY a.pid"""
    ).fetchall()
    return [dict(zip(cols, r, strict=True)) for r in rows]


@handler("db.terminate_sessions", config=TerminateConfig, aliases=["postgres.terminate_sessions"], destructive=True)
def terminate_sessions(ctx: RunContext, config: TerminateConfig) -> dict:
    """Emergency runbook: end long-running queries, sessions idle in a transaction and old idle sessions,
    sparing upkeep's own session, replication, backups and (unless told) superusers."""
    import psycopg

    target = target_from_ctx(ctx, config.target)
    if is_sqlite(target):
        raise ConfigError(
            "db.terminate_sessions works on PostgreSQL targets only (SQLite has no sessions)", field="target"
        )
    chosen: list[dict] = []
    spared: list[dict] = []
    databases, why = _scope(ctx, target, config)
    ctx.scope(databases or ["*"], why, what=f"sessions of databases on {_server_of(target)}")
    with connect(target, connect_timeout=config.connect_timeout) as conn:
        for row in _sessions(conn):
            reason = _why_old(row, config)
            if reason is None:
                continue
            if not (
                _filtered(row["database"], databases)
                and _filtered(row["user"], config.users)
                and _filtered(row["application"], config.applications)
            ):
                continue
            entry = {
                "pid": row["pid"],
                "user": row["user"],
                "database": row["database"],
                "application": row["application"],
                "client": row["client"],
                "state": row["state"],
                "age_seconds": round(row["state_age"] if row["state"] != "active" else row["query_age"], 1),
                "reason": reason,
                "query": _excerpt(row["query"]),
            }
            protected = _why_protected(row, config)
            if protected:
                spared.append({**entry, "spared_because": protected})
                ctx.info(
                    "spared",
                    f"spared pid {row['pid']} ({row['user']}@{row['database']}): {protected}",
                    pid=row["pid"],
                    reason=protected,
                )
                continue
            chosen.append(entry)
        for entry in chosen:
            ctx.check_cancelled()
            what = (
                f"pid {entry['pid']} {entry['user']}@{entry['database']} [{entry['state']}] "
                f"{entry['reason']}: "
                f"{entry['query'][:80]}"
            )
            if ctx.dry_run:
                ctx.info("plan", f"would terminate {what}", action="terminate", **entry)
                entry["status"] = "planned"
                continue
            try:
                ok = conn.execute(
                    "SELECT pg_terminate_backend(%s, %s)", (entry["pid"], int(config.wait_seconds * 1000))
                ).fetchone()[0]
                entry["status"] = "terminated" if ok else "not_ended"
            except psycopg.errors.InsufficientPrivilege as exc:
                entry["status"], entry["problem"] = "failed", _error_text(exc)
            except psycopg.Error as exc:
                entry["status"], entry["problem"] = "failed", _error_text(exc)
            level = "warning" if entry["status"] == "terminated" else "error"
            ctx.log(level, "terminate", f"{entry['status']}: {what}", pid=entry["pid"], status=entry["status"])
    findings = [
        {
            "severity": "warning",
            "item": f"pid {e['pid']}",
            "message": f"could not end pid {e['pid']}: "
            f"{e.get('problem') or 'still running after ' + str(config.wait_seconds) + ' s'}",
        }
        for e in chosen
        if e.get("status") in ("failed", "not_ended")
    ]
    ended = sum(e.get("status") == "terminated" for e in chosen)
    if ctx.dry_run:
        summary = f"dry run: would terminate {len(chosen)} sessions, sparing {len(spared)}"
    else:
        summary = f"terminated {ended} of {len(chosen)} sessions, spared {len(spared)}"
    outcome = _worst(findings)
    if outcome == "ok" and chosen:
        outcome = "warning"  # sessions that needed ending are worth a look even when it worked
    return {
        "outcome": outcome,
        "summary": summary,
        "target": target["name"],
        "dry_run": ctx.dry_run,
        "terminated": chosen,
        "spared": spared,
        "findings": findings,
    }
