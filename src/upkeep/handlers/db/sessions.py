"""``db.terminate_sessions``: the emergency runbook that ends old sessions, sparing upkeep's own,
replication, backup tools and (unless told) superusers."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from pydantic import Field

from upkeep.bounds import MAX_MINUTES
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, overridable
from upkeep.errors import ConfigError
from upkeep.handlers.db.common import (
    TARGET_HELP,
    Databases,
    databases_field,
    error_text,
    scope_of,
    server_text,
    target_field,
)
from upkeep.handlers.db.postgres import connect
from upkeep.handlers.db.targets import is_sqlite, target_from_ctx
from upkeep.handlers.findings import outcome_of

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    import psycopg


class TerminateConfig(HandlerConfig):
    target: str = target_field(TARGET_HELP + " PostgreSQL only.")
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
    databases: Databases = databases_field(
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
    databases, why = scope_of(ctx, target, config)
    ctx.scope(databases or ["*"], why, what=f"sessions of databases on {server_text(target)}")
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
                entry["status"], entry["problem"] = "failed", error_text(exc)
            except psycopg.Error as exc:
                entry["status"], entry["problem"] = "failed", error_text(exc)
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
    outcome = outcome_of(findings)
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
