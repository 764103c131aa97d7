"""The one model of a PostgreSQL target (``PgTarget``) and connecting to it, with one clear error per
failure. Every handler that talks to PostgreSQL reads its target through ``PgTarget.of``: the
``db.*`` handlers, backups (sources, test restores, restores), ``health.check``, capacity and
security audits.

A target is an inventory entry (``targets.databases``, see ``targets``), an inline dict or a URL::

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

``url`` (or ``dsn``, a libpq key=value string) is read first, then the libpq fields of
``LIBPQ_KEYS`` override it; ``database`` names the database when ``dbname`` is not given. SQLAlchemy
URLs (``postgresql+psycopg://``) and ``postgres://`` are accepted. The password is kept apart from
the other parameters: it never reaches a message, a catalog entry or a command line (client tools
get it as ``PGPASSWORD``).

Public: ``PgTarget``, ``connect(target, dbname=None, autocommit=True, connect_timeout=None)``,
``describe(target)``, ``database_of(target)``, ``server_of(target)``, ``list_databases(conn)``,
``server_version(conn)``, ``quote_ident(name)``. ``target`` is a ``PgTarget``, a dict or a URL.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError, ConnectionFailed
from upkeep.handlers.db.targets import is_sqlite, sqlite_path

if TYPE_CHECKING:
    import psycopg

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
_DRIVER_URL = re.compile(r"^postgres(?:ql)?(?:\+[a-z0-9]+)?://")
_URL_HINT = "write it as postgresql://user:${env:PASSWORD}@host:port/dbname"
DEFAULT_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL server and database: libpq keyword parameters without the password, and the
    password apart."""

    params: dict[str, str] = field(default_factory=dict)
    password: str | None = None

    @classmethod
    def of(
        cls, target: PgTarget | dict | str, *, default_dbname: str | None = None, field: str | None = None
    ) -> PgTarget:
        """Read a target (a dict of ``url``/``dsn``/libpq fields, a URL, or a ``PgTarget``).
        ``default_dbname`` is the database when the target names none (else libpq's default, the
        user's name)."""
        if isinstance(target, PgTarget):
            if default_dbname and "dbname" not in target.params:
                return cls({**target.params, "dbname": default_dbname}, target.password)
            return target
        if isinstance(target, str):
            target = {"url": target}
        if is_sqlite(target):
            raise ConfigError(
                f"target {describe_sqlite(target)} is a SQLite database, not PostgreSQL",
                hint="this action needs a PostgreSQL target (postgresql://user@host:port/db)",
                field=field,
            )
        params: dict[str, str] = {}
        url = target.get("url") or target.get("dsn")
        if url:
            params.update(_parse_url(str(url), field))
        for key in sorted(LIBPQ_KEYS):
            if target.get(key) not in (None, ""):
                params[key] = str(target[key])
        if target.get("database") and not target.get("dbname"):
            params["dbname"] = str(target["database"])
        password = params.pop("password", None) or None
        if default_dbname:
            params.setdefault("dbname", default_dbname)
        return cls(params, password)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> PgTarget:
        """A backup source's or restore target's server: its database defaults to ``postgres``."""
        return cls.of(spec, default_dbname="postgres", field="config.source.url")

    @property
    def dbname(self) -> str:
        """The database it names (libpq's default: the user's name)."""
        return str(self.params.get("dbname") or self.params.get("user") or getpass.getuser())

    @property
    def server(self) -> tuple[str, str]:
        """``(host, port)`` as libpq would read them."""
        host = self.params.get("host") or self.params.get("hostaddr") or "localhost"
        return str(host), str(self.params.get("port") or "5432")

    def libpq(self, dbname: str | None = None, *, with_password: bool = False) -> dict[str, str]:
        params = dict(self.params)
        if dbname:
            params["dbname"] = dbname
        if with_password and self.password:
            params["password"] = self.password
        return params

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string without the password (client tools get it from ``env``)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**self.libpq(dbname))

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password} if self.password else {}

    def spec(self, dbname: str | None = None) -> dict[str, Any]:
        """The target as a source spec (password included), e.g. for a scratch database."""
        return {"type": "postgres", **self.libpq(dbname, with_password=True)}

    def url(self) -> str:
        """A ``postgresql://`` URL of the target, password included (for libraries that take one)."""
        from urllib.parse import quote, urlencode

        params = dict(self.params)
        user = quote(params.pop("user", ""), safe="")
        password = quote(self.password or "", safe="")
        host, port = quote(params.pop("host", "localhost"), safe=""), params.pop("port", "5432")
        database = quote(params.pop("dbname", ""), safe="")
        login = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        query = f"?{urlencode(params)}" if params else ""
        return f"postgresql://{login}{host}:{port}/{database}{query}"

    def describe(self, dbname: str | None = None) -> str:
        """``user@host:port/db``: for messages, never with the password."""
        host, port = self.server
        user = self.params.get("user", "")
        db = dbname or self.params.get("dbname") or user
        return f"{user + '@' if user else ''}{host}:{port}/{db}"

    def connect(
        self, dbname: str | None = None, autocommit: bool = True, connect_timeout: float | None = None
    ) -> psycopg.Connection:
        """A psycopg 3 connection, to another database of the server with ``dbname``.

        Raises ``ConnectionFailed`` with one message (no password) when the server is unreachable,
        the password is wrong, the database does not exist or the role may not log in.
        """
        import psycopg

        if connect_timeout is None:
            connect_timeout = float(self.params.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)
        params = self.libpq(dbname, with_password=True)
        params.setdefault("application_name", "upkeep")
        params["connect_timeout"] = str(max(1, int(round(connect_timeout))))
        try:
            return psycopg.connect(autocommit=autocommit, **params)
        except psycopg.OperationalError as exc:
            raise _connection_error(str(exc), self.describe(dbname), params, self.password or "") from None


def _parse_url(url: str, field: str | None) -> dict[str, str]:
    import psycopg  # here, not at module level: loading the handlers must not load psycopg
    from psycopg import conninfo as pg_conninfo

    redacted = secret_refs.redact_url_password(url)
    if "://" in url:
        if not _DRIVER_URL.match(url):
            raise ConfigError(
                f"database URL {redacted!r} is not postgresql:// or sqlite:///", hint=_URL_HINT, field=field
            )
        url = _DRIVER_URL.sub("postgresql://", url, count=1)
    try:
        return {k: str(v) for k, v in pg_conninfo.conninfo_to_dict(url).items() if v is not None}
    except psycopg.ProgrammingError:
        raise ConfigError(f"cannot parse database URL {redacted!r}", hint=_URL_HINT, field=field) from None


def describe_sqlite(target: dict | str) -> str:
    return f"sqlite:{sqlite_path(target)}"


def connect(
    target: PgTarget | dict | str,
    dbname: str | None = None,
    autocommit: bool = True,
    connect_timeout: float | None = None,
) -> psycopg.Connection:
    """``PgTarget.of(target).connect(...)``: a target dict or URL, optionally another database."""
    return PgTarget.of(target).connect(dbname, autocommit=autocommit, connect_timeout=connect_timeout)


def describe(target: PgTarget | dict | str, dbname: str | None = None) -> str:
    """``user@host:port/db`` (or the SQLite path): for messages, never with the password."""
    if not isinstance(target, PgTarget) and is_sqlite(target):
        return describe_sqlite(target)
    try:
        return PgTarget.of(target).describe(dbname)
    except ConfigError:
        return "<invalid target>"


def database_of(target: PgTarget | dict | str) -> str:
    """The database a PostgreSQL target names (libpq's default: the user's name)."""
    return PgTarget.of(target).dbname


def server_of(target: PgTarget | dict | str) -> tuple[str, str]:
    """``(host, port)`` of a PostgreSQL target, as libpq would read them."""
    return PgTarget.of(target).server


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
