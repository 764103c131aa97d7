"""MariaDB/MySQL plumbing for backups: the target (``MyTarget``, its password only in a private
option file), connections and catalog queries, and the client tools (``mariadb-dump``/``mysqldump``,
``mariadb``/``mysql``)."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError, ConnectionFailed, UserError
from upkeep.private import PRIVATE

if TYPE_CHECKING:  # pymysql is imported where it is used: loading the handlers must not load it
    import pymysql


@dataclass
class MyTarget:
    """A MariaDB/MySQL server and database (password kept apart from the describable parts)."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str | None = None
    database: str = ""
    unix_socket: str | None = None
    password: str | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any], field: str = "config.source") -> MyTarget:
        target = cls()
        url = spec.get("url") or spec.get("dsn")
        if url:
            parts = urlsplit(str(url))
            if parts.scheme not in ("mysql", "mariadb"):
                raise ConfigError(
                    f"invalid MariaDB/MySQL url {secret_refs.redact_url_password(str(url))!r}",
                    hint="use mariadb://user@host:3306/dbname (or mysql://)",
                    field=f"{field}.url",
                )
            try:
                port = parts.port
            except ValueError:
                raise ConfigError("invalid port in the MariaDB/MySQL url", field=f"{field}.url") from None
            target.host = parts.hostname or target.host
            target.port = port or target.port
            target.user = unquote(parts.username) if parts.username else None
            target.password = unquote(parts.password) if parts.password else None
            target.database = unquote(parts.path.lstrip("/"))
            socket = parse_qs(parts.query).get("unix_socket")
            target.unix_socket = socket[0] if socket else None
        for key in ("host", "user", "password", "unix_socket"):
            if spec.get(key):
                setattr(target, key, str(spec[key]))
        if spec.get("port"):
            target.port = int(spec["port"])
        if spec.get("database") or spec.get("dbname"):
            target.database = str(spec.get("database") or spec.get("dbname"))
        return target

    def params(self) -> dict[str, Any]:
        """Connection parameters without the password (kept in the catalog)."""
        out: dict[str, Any] = {"type": "mysql", "host": self.host, "port": self.port, "database": self.database}
        if self.user:
            out["user"] = self.user
        if self.unix_socket:
            out["unix_socket"] = self.unix_socket
        return out

    def spec(self, database: str | None = None) -> dict[str, Any]:
        out = {**self.params(), "database": database if database is not None else self.database}
        if self.password:
            out["password"] = self.password
        return out

    def describe(self, database: str | None = None) -> str:
        where = self.unix_socket or f"{self.host}:{self.port}"
        return f"{self.user or '(default user)'}@{where}/{database if database is not None else self.database}"

    def option_file(self, directory: Path) -> Path:
        """A private ``[client]`` option file for the command-line tools (password never in argv)."""
        lines = ["[client]", f"host={self.host}", f"port={self.port}"]
        if self.user:
            lines.append(f"user={self.user}")
        if self.password:
            lines.append(f"password={self.password}")
        if self.unix_socket:
            lines.append(f"socket={self.unix_socket}")
        path = directory / f"client-{os.getpid()}-{threading.get_ident()}.cnf"
        return PRIVATE.write(path, "\n".join(lines) + "\n")


def connect(target: MyTarget, database: str | None = None) -> pymysql.Connection:
    import pymysql

    kwargs: dict[str, Any] = {
        "user": target.user,
        "password": target.password or "",
        "database": database if database is not None else (target.database or None),
        "autocommit": True,
        "connect_timeout": 10,
        "charset": "utf8mb4",
    }
    if target.unix_socket:
        kwargs["unix_socket"] = target.unix_socket
    else:
        kwargs.update(host=target.host, port=target.port)
    try:
        return pymysql.connect(**kwargs)
    except pymysql.Error as exc:
        detail = secret_refs.scrub(str(exc), [target.password] if target.password else [])
        raise ConnectionFailed(
            f"cannot connect to MariaDB/MySQL at {target.describe(database)}: {detail}",
            hint="check the url, user and password of the target (targets.databases)",
        ) from None


def query(conn: pymysql.Connection, sql: str, args: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def list_tables(conn: pymysql.Connection, database: str) -> list[str]:
    rows = query(
        conn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' "
        "ORDER BY table_name",
        (database,),
    )
    return [r[0] for r in rows]


def count_rows(conn: pymysql.Connection, database: str) -> dict[str, int]:
    return {
        t: int(query(conn, f"SELECT COUNT(*) FROM {quote(database)}.{quote(t)}")[0][0])
        for t in list_tables(conn, database)
    }


def database_exists(conn: pymysql.Connection, name: str) -> bool:
    return bool(query(conn, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)))


def database_size(conn: pymysql.Connection, name: str) -> int:
    row = query(
        conn,
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = %s",
        (name,),
    )
    return int(row[0][0]) if row else 0


def sessions_on(conn: pymysql.Connection, name: str) -> list[int]:
    rows = query(conn, "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (name,))
    return [int(r[0]) for r in rows]


def run_assertions(conn: pymysql.Connection, assertions: list[str]) -> list[dict[str, Any]]:
    """Each assertion is a query whose first column of the first row must be true (1)."""
    import pymysql

    results = []
    for assertion in assertions:
        try:
            rows = query(conn, assertion)
            value = rows[0][0] if rows else None
            ok = value is not None and not isinstance(value, str) and value == 1
            results.append({"assertion": assertion, "ok": ok, "value": None if not rows else repr(value)})
        except pymysql.Error as exc:
            results.append({"assertion": assertion, "ok": False, "value": f"error: {str(exc).strip()[:200]}"})
    return results


# --- client tools -----------------------------------------------------------------------------


@dataclass
class Tools:
    dump: str
    client: str


def find_tools(config) -> Tools:
    """``mariadb-dump`` and ``mariadb`` (or ``mysqldump`` and ``mysql``), from ``mysql_bin_dir`` or PATH."""
    bin_dir = getattr(config, "mysql_bin_dir", None)

    def find(*names: str) -> str:
        for name in names:
            if bin_dir:
                candidate = Path(bin_dir) / name
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return str(candidate)
            else:
                found = shutil.which(name)
                if found:
                    return found
        where = f"in mysql_bin_dir {bin_dir}" if bin_dir else "on PATH"
        raise UserError(
            f"{' / '.join(names)} not found {where}",
            hint="install mariadb-client (or mysql-client) or set mysql_bin_dir",
            field="config.mysql_bin_dir" if bin_dir else None,
        )

    return Tools(dump=find("mariadb-dump", "mysqldump"), client=find("mariadb", "mysql"))


def tool_version(ctx, tool: str) -> str:
    from upkeep.engine.context import CommandFailed

    try:
        return ctx.run_command([tool, "--version"], timeout=30).stdout.strip()
    except CommandFailed as exc:
        raise UserError(f"cannot run {tool} --version: {exc}", hint="check mysql_bin_dir") from None
