"""PostgreSQL connections for handlers: targets from the inventory, one clear error per failure.

Public (stable, also used by the backup handlers):

- ``connect(target, dbname=None, autocommit=True, connect_timeout=5) -> psycopg.Connection``
- ``list_databases(conn) -> list[str]``: non-template databases that accept connections
- ``server_version(conn) -> int``: e.g. ``150004``
- ``target_from_ctx(ctx, name_or_url) -> dict``: a database target, secrets resolved
- ``is_sqlite(target)`` / ``sqlite_path(target)`` / ``describe(target)``
- ``database_of(target)`` / ``server_of(target)``: the database a target names, its server

Targets (``upkeep.yaml``)::

    targets:
      databases:
        app:                    # a URL; the password by reference, never in plain text
          url: postgresql://app:${env:APP_PG_PASSWORD}@db1:5432/app
        reporting:              # or libpq fields
          host: db2
          port: 5432
          user: maint
          password: ${env:REPORTING_PG_PASSWORD}
          dbname: postgres
        local:
          url: sqlite:////var/lib/app/app.db

The name ``upkeep`` means upkeep's own store (PostgreSQL or SQLite). An explicit
``targets.databases.upkeep`` entry wins; otherwise the store URL comes from the engine
(``ctx.services.database_url``), then ``UPKEEP_DATABASE_URL``, then ``<data_dir>/upkeep.db``.
A handler's ``target`` may also be a URL itself (``postgresql://...`` or ``sqlite:///path``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError, ConnectionFailed

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "LIBPQ_KEYS",
    "ConnectionFailed",
    "connect",
    "database_of",
    "describe",
    "is_sqlite",
    "list_databases",
    "quote_ident",
    "server_of",
    "server_version",
    "sqlite_path",
    "target_from_ctx",
]

# Connection keys a target may set, passed to libpq as they are (database and backup targets alike).
LIBPQ_KEYS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "user",
        "password",
        "dbname",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "options",
        "application_name",
        "connect_timeout",
        "passfile",
        "service",
        "target_session_attrs",
    }
)
_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_PG_PREFIXES = ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres+psycopg://")


def _normalise_url(url: str) -> str:
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def is_sqlite(target: dict | str) -> bool:
    url = target if isinstance(target, str) else str(target.get("url") or "")
    return url.startswith(_SQLITE_PREFIXES)


def sqlite_path(target: dict | str) -> Path:
    """The file of a ``sqlite:///path`` target (``sqlite:////abs/path`` or ``sqlite:///relative``)."""
    url = target if isinstance(target, str) else str(target.get("url") or "")
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            if not path or path == ":memory:":
                raise ConfigError(f"{url!r} is not a SQLite database file", hint="use sqlite:////absolute/path.db")
            return Path(path)
    raise ConfigError(f"{secret_refs.redact_url_password(url)!r} is not a sqlite:/// URL")


def _params(target: dict | str, dbname: str | None) -> dict[str, Any]:
    """libpq keyword parameters of a target (URL or fields), ``dbname`` overriding."""
    if isinstance(target, str):
        target = {"url": target}
    if is_sqlite(target):
        raise ConfigError(
            f"target {describe(target)} is a SQLite database, not PostgreSQL",
            hint="this action needs a PostgreSQL target (postgresql://user@host:port/db)",
        )
    params: dict[str, Any] = {}
    url = target.get("url")
    if url:
        url = _normalise_url(str(url))
        if not url.startswith("postgresql://"):
            raise ConfigError(
                f"database URL {secret_refs.redact_url_password(url)!r} is not postgresql:// or sqlite:///",
                hint="write it as postgresql://user:${env:PASSWORD}@host:port/dbname",
            )
        import psycopg  # here, not at module level: loading the handlers must not load psycopg
        from psycopg import conninfo as pg_conninfo

        try:
            params.update(pg_conninfo.conninfo_to_dict(url))
        except psycopg.ProgrammingError:
            raise ConfigError(
                f"cannot parse database URL {secret_refs.redact_url_password(url)!r}",
                hint="write it as postgresql://user:${env:PASSWORD}@host:port/dbname",
            ) from None
    for key in sorted(LIBPQ_KEYS):
        if target.get(key) not in (None, ""):
            params[key] = str(target[key])
    if dbname:
        params["dbname"] = dbname
    params.setdefault("application_name", "upkeep")
    return params


def describe(target: dict | str, dbname: str | None = None) -> str:
    """``user@host:port/db`` (or the SQLite path): for messages, never with the password."""
    if is_sqlite(target):
        return f"sqlite:{sqlite_path(target)}"
    try:
        p = _params(target, dbname)
    except ConfigError:
        return "<invalid target>"
    host = p.get("host", "localhost")
    port = p.get("port", "5432")
    user = p.get("user", "")
    db = p.get("dbname", user or "")
    return f"{user + '@' if user else ''}{host}:{port}/{db}"


def database_of(target: dict | str) -> str:
    """The database a PostgreSQL target names (libpq's default: the user's name)."""
    params = _params(target, None)
    if params.get("dbname"):
        return str(params["dbname"])
    if params.get("user"):
        return str(params["user"])
    import getpass

    return getpass.getuser()


def server_of(target: dict | str) -> tuple[str, str]:
    """``(host, port)`` of a PostgreSQL target, as libpq would read them."""
    params = _params(target, None)
    return str(params.get("host") or params.get("hostaddr") or "localhost"), str(params.get("port") or "5432")


def connect(
    target: dict | str,
    dbname: str | None = None,
    autocommit: bool = True,
    connect_timeout: float = 5,
) -> psycopg.Connection:
    """Open a psycopg 3 connection to a target (dict or URL), optionally to another database.

    Raises ``ConnectionFailed`` with one message (no password) when the server is unreachable,
    the password is wrong, the database does not exist or the role may not log in.
    """
    import psycopg

    params = _params(target, dbname)
    params["connect_timeout"] = str(max(1, int(round(connect_timeout))))
    password = params.get("password") or ""
    where = describe(target, dbname)
    try:
        return psycopg.connect(autocommit=autocommit, **params)
    except psycopg.OperationalError as exc:
        raise _connection_error(str(exc), where, params, password) from None


def _connection_error(raw: str, where: str, params: dict, password: str) -> ConnectionFailed:
    text = raw.lower()
    user = params.get("user", "")
    db = params.get("dbname", "")
    if "password authentication failed" in text or "authentication failed" in text:
        message = f"PostgreSQL at {where} rejected the password for user {user!r}"
        hint = "check the password the target references (targets.databases.NAME: ${env:...})"
    elif "no password supplied" in text or "fe_sendauth" in text:
        message = f"PostgreSQL at {where} asks for a password for user {user!r} and none was given"
        hint = "add password: ${env:NAME} (or :${env:NAME}@ in the URL) to the target"
    elif "does not exist" in text and "database" in text:
        message = f"database {db!r} does not exist on the PostgreSQL server at {where}"
        hint = "check the database name in the target or the databases list, or create it"
    elif "does not exist" in text and "role" in text:
        message = f"role {user!r} does not exist on the PostgreSQL server at {where}"
        hint = "check the user of the target"
    elif "timeout expired" in text or "timed out" in text:
        message = f"PostgreSQL at {where} did not answer within the connect timeout"
        hint = "check the host, port and firewall, and that the server is running"
    elif "could not translate host name" in text or "name or service not known" in text:
        message = f"cannot resolve the host of PostgreSQL target {where}"
        hint = "check the host name in the target"
    elif "connection refused" in text or "could not connect" in text or "no such file" in text:
        message = f"cannot connect to PostgreSQL at {where}: connection refused"
        hint = "is the server running and listening on that host and port?"
    elif "pg_hba.conf" in text:
        message = f"PostgreSQL at {where} does not allow this connection (pg_hba.conf)"
        hint = "add a pg_hba.conf entry for this host, user and database"
    elif "too many" in text and "connections" in text:
        message = f"PostgreSQL at {where} has no free connection slots"
        hint = "raise max_connections or end idle sessions (db.terminate_sessions)"
    else:
        first = raw.strip().splitlines()[0] if raw.strip() else "unknown error"
        message = f"cannot connect to PostgreSQL at {where}: {first}"
        hint = "check the target's host, port, user, password and database"
    secrets = [password] if password else []
    return ConnectionFailed(secret_refs.scrub(message, secrets), hint=hint)


def quote_ident(name: str) -> str:
    """A quoted SQL identifier (for building statements that cannot take parameters)."""
    return '"' + name.replace('"', '""') + '"'


def list_databases(conn: psycopg.Connection) -> list[str]:
    """Databases of the server that are neither templates nor closed to connections, by name."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname"
    ).fetchall()
    return [r[0] for r in rows]


def server_version(conn: psycopg.Connection) -> int:
    """The server's version number, e.g. 150004 for 15.4."""
    return int(conn.info.server_version)


def _own_store_url(ctx: Any) -> str:
    services = getattr(ctx, "services", None)
    for source in (services, getattr(services, "settings", None), getattr(services, "store", None)):
        for attr in ("database_url", "resolved_database_url", "url"):
            value = getattr(source, attr, None) if source is not None else None
            if isinstance(value, str) and value:
                return value
    env_url = os.environ.get("UPKEEP_DATABASE_URL")
    if env_url:
        return env_url
    data_dir = Path(getattr(ctx, "data_dir", ".upkeep"))
    candidate = data_dir / "upkeep.db"
    if candidate.exists():
        return f"sqlite:///{candidate.resolve()}"
    raise ConfigError(
        "cannot find upkeep's own store for target 'upkeep'",
        hint="define targets.databases.upkeep (url: sqlite:///path or postgresql://...)",
    )


def target_from_ctx(ctx: Any, name_or_url: str) -> dict:
    """A database target by inventory name, ``upkeep`` (the own store) or URL; secrets resolved.

    The result always has ``name`` and either ``url`` or libpq fields (host, port, user, ...).
    """
    if not name_or_url:
        raise ConfigError("no database target given", hint="set target: NAME (from targets.databases) or a URL")
    collected = getattr(ctx, "secrets", None)
    if "://" in name_or_url:
        url = secret_refs.resolve(name_or_url, collected=collected)
        return {"name": secret_refs.redact_url_password(name_or_url), "url": url}
    inventory = ctx.targets
    if name_or_url in inventory.names("databases"):
        value = inventory.get("databases", name_or_url)
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, dict):
            raise ConfigError(f"targets.databases.{name_or_url} must be a mapping with url: or host:/port:/user:")
        return {"name": name_or_url, **value}
    if name_or_url == "upkeep":
        url = secret_refs.resolve(_own_store_url(ctx), collected=collected)
        return {"name": "upkeep", "url": url}
    inventory.get("databases", name_or_url)  # raises the standard "unknown target" error
    raise AssertionError("unreachable")
