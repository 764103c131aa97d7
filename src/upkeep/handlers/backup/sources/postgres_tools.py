"""PostgreSQL plumbing for backups: client tools, snapshot-consistent dumps, restores (the target is
``upkeep.handlers.db.postgres.PgTarget``, the one model of a PostgreSQL target).

A dump runs inside an exported snapshot: one connection opens a REPEATABLE READ transaction,
exports its snapshot, and keeps it open while ``pg_dump --snapshot=<id>`` runs and while the same
connection counts rows (and optionally checksums tables). The counts therefore describe exactly the
data in the dump, however busy the database is.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeep.errors import ConfigError, UserError
from upkeep.handlers.backup.sources.process import drain, run_fed, run_streaming
from upkeep.handlers.backup.stream import DecodedStream
from upkeep.handlers.db.postgres import PgTarget

if TYPE_CHECKING:  # psycopg is imported where it is used: loading the handlers must not load it
    import psycopg
    from psycopg import sql

PG_LIB = Path("/usr/lib/postgresql")
VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def connect(target: PgTarget, dbname: str | None = None, autocommit: bool = True) -> psycopg.Connection:
    """A connection to the target's server (``PgTarget.connect``), waiting 10 s unless the target says."""
    timeout = float(target.params.get("connect_timeout", 10))
    return target.connect(dbname, autocommit=autocommit, connect_timeout=timeout)


def server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


def server_version_text(conn: psycopg.Connection) -> str:
    return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


# --- client tools -----------------------------------------------------------------------------


def find_tool(name: str, *, path: str | None = None, bin_dir: str | None = None, server: int | None = None) -> str:
    """Locate ``pg_dump``/``pg_restore``/``pg_dumpall``: explicit path, ``pg_bin_dir``, the Debian
    directory of the server's major version, PATH, then the newest installed version."""
    if path:
        candidate = Path(path)
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise ConfigError(f"{name} not found at {path}", hint="fix pg_dump_path", field="config.pg_dump_path")
        return str(candidate)
    if bin_dir:
        candidate = Path(bin_dir) / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise ConfigError(
                f"{name} not found in pg_bin_dir {bin_dir}",
                hint=f"install the PostgreSQL client tools there or point pg_bin_dir to the directory holding {name}",
                field="config.pg_bin_dir",
            )
        return str(candidate)
    if server is not None and (PG_LIB / str(server) / "bin" / name).is_file():
        return str(PG_LIB / str(server) / "bin" / name)
    found = shutil.which(name)
    if found:
        return found
    installed = sorted(
        PG_LIB.glob(f"*/bin/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if installed:
        return str(installed[0])
    major = f"-{server}" if server else ""
    raise UserError(
        f"{name} is not installed",
        hint=f"install postgresql-client{major} or set pg_bin_dir / pg_dump_path in the task config",
    )


def tool_major(ctx, tool: str) -> tuple[int, str]:
    """Major version and version text of a PostgreSQL client tool (``--version``)."""
    from upkeep.engine.context import CommandFailed

    try:
        out = ctx.run_command([tool, "--version"], timeout=30).stdout.strip()
    except CommandFailed as exc:
        raise UserError(f"cannot run {tool} --version: {exc}", hint="check pg_bin_dir / pg_dump_path") from None
    match = VERSION_RE.search(out)
    if not match:
        raise UserError(f"{tool} --version printed {out[:80]!r}, not a PostgreSQL version")
    return int(match.group(1)), out


def check_tool_version(name: str, major: int, server: int) -> None:
    if major < server:
        raise UserError(
            f"{name} {major} is older than the server ({server}): install postgresql-client-{server} "
            f"or set pg_dump path",
            hint="config pg_dump_path or pg_bin_dir",
            field="config.pg_dump_path",
        )


@dataclass
class Tools:
    pg_dump: str
    pg_restore: str
    pg_dumpall: str | None
    version_text: str
    major: int


def resolve_tools(ctx, config, server: int, need_dumpall: bool = False) -> Tools:
    """Find pg_dump (and its sibling pg_restore / pg_dumpall) and check pg_dump is not older than
    the server. Config: ``pg_dump_path`` (the pg_dump executable) or ``pg_bin_dir``."""
    pg_dump_path = getattr(config, "pg_dump_path", None)
    bin_dir = getattr(config, "pg_bin_dir", None)
    pg_dump = find_tool("pg_dump", path=pg_dump_path, bin_dir=bin_dir, server=server)
    major, text = tool_major(ctx, pg_dump)
    check_tool_version("pg_dump", major, server)
    sibling = bin_dir or str(Path(pg_dump).parent)
    pg_restore = find_tool("pg_restore", bin_dir=sibling)
    dumpall = find_tool("pg_dumpall", bin_dir=sibling) if need_dumpall else None
    return Tools(pg_dump=pg_dump, pg_restore=pg_restore, pg_dumpall=dumpall, version_text=text, major=major)


def resolve_restore_tool(ctx, config, server: int, archive_major: int | None) -> Tools:
    """pg_restore for verify/restore: from pg_bin_dir (or beside pg_dump_path), else located like
    pg_dump; it must be at least as new as the pg_dump that wrote the archive."""
    pg_dump_path = getattr(config, "pg_dump_path", None)
    bin_dir = getattr(config, "pg_bin_dir", None) or (str(Path(pg_dump_path).parent) if pg_dump_path else None)
    pg_restore = find_tool("pg_restore", bin_dir=bin_dir, server=max(server, archive_major or 0))
    major, text = tool_major(ctx, pg_restore)
    if archive_major and major < archive_major:
        raise UserError(
            f"pg_restore {major} is older than the pg_dump {archive_major} that wrote the backup",
            hint=f"install postgresql-client-{archive_major} or set pg_bin_dir",
            field="config.pg_bin_dir",
        )
    return Tools(pg_dump="", pg_restore=pg_restore, pg_dumpall=None, version_text=text, major=major)


# --- tables, counts, checksums ----------------------------------------------------------------

TABLES_SQL = """
SELECT n.nspname, c.relname,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


@dataclass
class Table:
    schema: str
    name: str
    pk: list[str] | None = None

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))


def list_tables(conn: psycopg.Connection) -> list[Table]:
    return [Table(s, n, list(pk) if pk else None) for s, n, pk in conn.execute(TABLES_SQL).fetchall()]


def count_rows(conn: psycopg.Connection, tables: list[Table]) -> dict[str, int]:
    from psycopg import sql

    # a count over 100k pages costs above jit_above_cost: compiling its plan (in every parallel
    # worker) took 20-50 ms on pgbench_accounts and made the scan no faster
    conn.execute("SET jit = off")
    out = {}
    for t in tables:
        out[t.key] = int(conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(t.ident)).fetchone()[0])
    return out


def checksum_query(t: Table) -> sql.Composed:
    """``md5(string_agg(t::text, '' ORDER BY <pk or the row text>))`` of one table."""
    from psycopg import sql

    pk_order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in t.pk or [])
    order = pk_order if t.pk else sql.SQL("t::text")
    return sql.SQL("SELECT md5(coalesce(string_agg(t::text, '' ORDER BY {}), '')) FROM ONLY {} t").format(
        order, t.ident
    )


def table_checksums(conn: psycopg.Connection, tables: list[Table]) -> dict[str, str]:
    return {t.key: str(conn.execute(checksum_query(t)).fetchone()[0]) for t in tables}


# --- streaming a subprocess -------------------------------------------------------------------


@dataclass
class SnapshotStats:
    snapshot: str = ""
    row_counts: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] | None = None
    server_version: str = ""


def dump_in_snapshot(
    ctx, target: PgTarget, argv_without_snapshot: list[str], consume: Callable[[Any], None] | None, with_checksums: bool
) -> SnapshotStats:
    """Run pg_dump inside an exported snapshot while counting rows in the same snapshot."""
    conn = connect(target)
    stats = SnapshotStats(server_version=server_version_text(conn))
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        stats.snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])
        tables = list_tables(conn)
        failure: list[BaseException] = []

        def measure() -> None:
            try:
                stats.row_counts = count_rows(conn, tables)
                if with_checksums:
                    stats.checksums = table_checksums(conn, tables)
            except BaseException as exc:  # reported after pg_dump finished
                failure.append(exc)

        worker = threading.Thread(target=measure, name="upkeep-backup-counts", daemon=True)
        argv = [argv_without_snapshot[0], f"--snapshot={stats.snapshot}", *argv_without_snapshot[1:]]
        started = False
        try:
            worker.start()
            started = True
            run_streaming(ctx, argv, target.env(), consume)
        finally:
            if started:
                worker.join()
        if failure:
            raise UserError(f"counting rows in the dump's snapshot failed: {failure[0]}")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return stats


def dumpall_globals(ctx, tools: Tools, target: PgTarget, consume: Callable[[Any], None]) -> None:
    argv = [tools.pg_dumpall or "pg_dumpall", "--globals-only", "-d", target.conninfo()]
    run_streaming(ctx, argv, target.env(), consume)


# --- databases --------------------------------------------------------------------------------


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def database_size(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    return int(row[0]) if row else 0


def create_database(conn: psycopg.Connection, name: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def terminate_connections(conn: psycopg.Connection, name: str) -> int:
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchall()
    return len(rows)


def _drop_statement(conn: psycopg.Connection, name: str) -> sql.Composed:
    from psycopg import sql

    if server_major(conn) >= 13:
        return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    terminate_connections(conn, name)
    return sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))


def drop_database(conn: psycopg.Connection, name: str) -> None:
    conn.execute(_drop_statement(conn, name))


def dropping(conn: psycopg.Connection, name: str) -> bool:
    """Whether a session of this role is running a DROP of database ``name`` (one sent by
    ``drop_database_later``) on the server of ``conn``."""
    from psycopg import sql

    statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))  # how both forms start
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
        " AND starts_with(query, %s)",
        (statement.as_string(conn),),
    ).fetchone()
    return bool(row and row[0])


_pending_drops: list[threading.Thread] = []
_pending_lock = threading.Lock()


def drop_database_later(conn: psycopg.Connection, name: str) -> None:
    """Send the DROP of database ``name`` and return before the server has done it; ``conn`` is
    handed over (closed once the server answered).

    The statement is on the server when this returns, and the server finishes it whether or not
    this process is still there to read the answer: a backend notices a client gone only when it
    writes to it (or polls it, with ``client_connection_check_interval`` set: then the drop may
    stop short, and the next test restore of the backup drops what is left, and says so). A thread
    reads the answer and logs a failure; ``wait_for_drops`` waits for this process's.
    """
    import select

    pgconn = conn.pgconn
    pgconn.send_query(_drop_statement(conn, name).as_bytes(conn))
    while pgconn.flush():  # a non-blocking connection: the statement may not all be sent at once
        select.select([], [pgconn.socket], [])
    thread = threading.Thread(target=_finish_drop, args=(conn, name), name="upkeep-scratch-drop", daemon=True)
    with _pending_lock:
        _pending_drops[:] = [t for t in _pending_drops if t.is_alive()]
        _pending_drops.append(thread)
    thread.start()


def _finish_drop(conn: psycopg.Connection, name: str) -> None:
    import logging
    import select

    from psycopg import pq

    error = ""
    try:
        pgconn = conn.pgconn
        while True:
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
        while (result := pgconn.get_result()) is not None:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                error = (result.error_message or b"").decode("utf-8", "replace").strip()
    except Exception as exc:  # noqa: BLE001 - nobody waits for this thread: it can only log
        error = str(exc)
    finally:
        conn.close()
    if error:
        logging.getLogger(__name__).warning("dropping scratch database %s failed: %s", name, error)


def wait_for_drops(timeout: float | None = None) -> None:
    """Wait until the drops this process sent (``drop_database_later``) are done on the server."""
    with _pending_lock:
        pending = list(_pending_drops)
    for thread in pending:
        thread.join(timeout)


def restore_into(
    ctx,
    tools: Tools,
    target: PgTarget,
    dbname: str,
    source: Path | DecodedStream,
    *,
    jobs: int = 1,
    scratch_memory_mb: int | None = None,
    no_owner: bool = False,
) -> None:
    """``pg_restore`` a custom- or directory-format dump into ``dbname`` (which must exist).

    A custom-format file is restored in two passes: its data in one sequential read, then its
    post-data (indexes, constraints) with ``jobs`` workers. upkeep writes these archives to a pipe,
    so their table of contents has no data offsets, and parallel workers would each read through
    all the data before theirs (on pgbench scale 50: 6.5-9.3 s with -j2 against 5.6-5.8 s so).
    A ``DecodedStream`` (a compressed custom-format dump) is decoded into pg_restore's standard
    input in one pass: no scratch copy is written and read back, and decoding overlaps the restore.
    """
    base = [tools.pg_restore, "-d", target.conninfo(dbname)]
    if no_owner:
        base += ["--no-owner"]
    env = target.env()
    if scratch_memory_mb:  # a scratch database: durability does not matter, index builds may use more memory
        env = {**env, "PGOPTIONS": f"-c synchronous_commit=off -c maintenance_work_mem={int(scratch_memory_mb)}MB"}
    if isinstance(source, DecodedStream):
        run_fed(ctx, base, env, source.chunks())
        return
    if jobs > 1 and source.is_file():
        run_streaming(ctx, [*base, "--section=pre-data", "--section=data", str(source)], env, None)
        run_streaming(ctx, [*base, "-j", str(jobs), "--section=post-data", str(source)], env, None)
        return
    run_streaming(ctx, [*base, *(["-j", str(jobs)] if jobs > 1 else []), str(source)], env, None)


def restore_list(ctx, tools: Tools, source: Path | DecodedStream) -> int:
    """Entries in the dump's table of contents (``pg_restore --list``); raises if unreadable.
    From a ``DecodedStream`` only the head is decoded: pg_restore stops reading after the TOC."""
    from upkeep.engine.context import CommandFailed

    if isinstance(source, DecodedStream):
        out: list[bytes] = []
        try:
            run_fed(ctx, [tools.pg_restore, "--list"], {}, source.chunks(), lambda stdout: drain(stdout, out))
        except UserError as exc:
            raise UserError(f"table of contents unreadable: {exc}") from None
        text = b"".join(out).decode("utf-8", "replace")
    else:
        try:
            text = ctx.run_command([tools.pg_restore, "--list", str(source)], timeout=600).stdout
        except CommandFailed as exc:
            raise UserError(f"table of contents unreadable: {exc}") from None
    return sum(1 for line in text.splitlines() if line and not line.startswith(";"))


def run_assertions(conn: psycopg.Connection, assertions: list[str]) -> list[dict[str, Any]]:
    """Each assertion is a query whose first column of the first row must be true."""
    import psycopg

    results = []
    for query in assertions:
        try:
            row = conn.execute(query).fetchone()
            ok = bool(row and row[0] is True)
            results.append({"assertion": query, "ok": ok, "value": None if row is None else repr(row[0])})
        except psycopg.Error as exc:
            results.append({"assertion": query, "ok": False, "value": f"error: {str(exc).strip()[:200]}"})
    return results
