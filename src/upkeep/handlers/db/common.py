"""What the ``db.*`` handlers share: the target and database fields of their configs, choosing
the databases a task works on (least scope, announced first), sessions with timeouts, and the
the findings (``upkeep.handlers.findings``)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, host_scoped, overridable
from upkeep.errors import ConfigError, ConnectionFailed, UserError
from upkeep.handlers.db import postgres_catalog as maint
from upkeep.handlers.db.postgres import connect, database_of, describe, list_databases, server_of
from upkeep.handlers.db.targets import is_sqlite, target_from_ctx

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    import psycopg

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


def target_field(help_text: str = TARGET_HELP) -> Any:
    return host_scoped(..., refs=("databases",), also=("upkeep",), description=help_text)


def databases_field(help_text: str = DATABASES_HELP) -> Any:
    return host_scoped(None, refs=("databases",), overridable=True, description=help_text)


class TargetConfig(HandlerConfig):
    target: str = target_field()
    databases: Databases = databases_field()
    exclude_databases: list[str] = Field(default_factory=list, description="Databases (globs) to leave out.")
    connect_timeout: float = Field(5.0, gt=0, le=300, description="Seconds to wait for each connection.")


class TablesConfig(TargetConfig):
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


# --- shared helpers ---------------------------------------------------------------------------


def scope_of(ctx: RunContext, target: dict, config: Any) -> tuple[list[str] | None, str]:
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


def chosen_databases(ctx: RunContext, target: dict, config: Any, what: str) -> list[str]:
    """The databases to work on, announced (event ``scope``) before anything is done to them."""
    patterns, why = scope_of(ctx, target, config)
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
                    f"database {missing[0]!r} does not exist on {server_text(target)}",
                    hint=f"connectable databases: {', '.join(available)}",
                    field="databases",
                )
            chosen = [a for a in available if any(fnmatchcase(a, d) for d in patterns)]
    chosen = [d for d in chosen if not any(fnmatchcase(d, x) for x in config.exclude_databases)]
    ctx.scope(chosen, why, what=f"{what} databases on {server_text(target)}")
    return chosen


def server_text(target: dict) -> str:
    """``user@host:port`` of a target, without database and password."""
    return describe(target).rsplit("/", 1)[0]


def error_text(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def bad_setting(exc: psycopg.Error, config: Any) -> ConfigError:
    return ConfigError(
        f"invalid lock_timeout/statement_timeout ({config.lock_timeout!r}/"
        f"{config.statement_timeout!r}): {error_text(exc)}",
        hint="use e.g. '5s', '10min' or '0'",
    )


def session(conn: psycopg.Connection, config: Any) -> None:
    import psycopg

    try:
        maint.set_timeouts(conn, config.lock_timeout, config.statement_timeout)
    except psycopg.errors.InvalidParameterValue as exc:
        raise bad_setting(exc, config) from None


def each_database(ctx: RunContext, target: dict, config: Any, verb: str, findings: list[dict], dbs: list[str]):
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
            session(conn, config)
            yield db, conn
