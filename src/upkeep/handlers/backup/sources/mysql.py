"""MariaDB/MySQL backups: ``mariadb-dump`` (or ``mysqldump``) ``--single-transaction`` with routines,
triggers and events; row counts taken in the dump's own snapshot; verification by test restore into a
scratch database; restore with the same plan and confirmation as PostgreSQL.

Source (``targets.databases``): ``url: mariadb://user:${env:MY_PASSWORD}@host:3306/db`` (or
``mysql://``; ``?unix_socket=/run/mysqld/mysqld.sock`` for a socket), or ``host``/``port``/``user``/
``password``/``database``/``unix_socket`` keys. The password reaches the client tools through a
private (0600) option file in the run's work directory, never through argv or the environment.

Consistent row counts: MySQL cannot share a snapshot between sessions, so upkeep holds ``FLUSH
TABLES WITH READ LOCK`` from its own session while it opens a consistent snapshot and starts the
dump, and releases it as soon as the dump's output shows it is past its own ``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` (the first table, routine or event section, or the end). Writers wait for that
long only (the dump's start, tens of milliseconds). Without the RELOAD privilege the counts are taken
in a snapshot opened beside the dump, and the manifest says ``row_counts_exact: false``.

Test restores create events DISABLED (the dump's ``ENABLE`` is rewritten in the stream), so a
scratch copy never runs scheduled events against the server it is restored on.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeep.errors import ConfigError, UserError
from upkeep.handlers.backup.checks import assertions_of, check, compare_counts
from upkeep.handlers.backup.sources.base import DatabaseSource, DatabaseSteps, Source, database_restore_plan
from upkeep.handlers.backup.sources.mysql_tools import (
    MyTarget,
    Tools,
    connect,
    count_rows,
    database_exists,
    database_size,
    find_tools,
    query,
    quote,
    run_assertions,
    sessions_on,
    tool_version,
)
from upkeep.handlers.backup.sources.process import run_fed, run_streaming
from upkeep.handlers.backup.stream import CHUNK

if TYPE_CHECKING:  # pymysql is imported where it is used: loading the handlers must not load it
    import pymysql

# what the dump writes only after its START TRANSACTION WITH CONSISTENT SNAPSHOT
_PAST_SNAPSHOT = (
    b"\n-- Table structure for table ",
    b"\n-- Dumping events",
    b"\n-- Dumping routines",
    b"\n-- Dump completed",
)
_EVENT_ENABLE = re.compile(rb"^(/\*!50106 CREATE\*/ .*?/\*!50106 EVENT .*? ON COMPLETION (?:NOT )?PRESERVE) ENABLE\b")


# --- create -----------------------------------------------------------------------------------


class _SnapshotCounter:
    """Counts rows in an open consistent snapshot on a thread, once the dump is past its own."""

    def __init__(self, conn: pymysql.Connection, database: str):
        self.conn, self.database = conn, database
        self.counts: dict[str, int] = {}
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="upkeep-backup-counts", daemon=True)

    def _run(self) -> None:
        try:
            self.counts = count_rows(self.conn, self.database)
        except BaseException as exc:  # reported after the dump finished
            self.failure = exc


def _dump_argv(tools: Tools, option_file: Path, database: str) -> list[str]:
    return [
        tools.dump,
        f"--defaults-extra-file={option_file}",
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--skip-dump-date",
        database,
    ]


def create(ctx, source: Source, config, new_writer, work_dir: Path) -> dict[str, Any]:
    import pymysql

    target = MyTarget.from_spec(source.spec)
    if not target.database:
        raise ConfigError("a MariaDB/MySQL source needs a database (the url's path)", field="config.source.url")
    tools = find_tools(config)
    version_text = tool_version(ctx, tools.dump)
    conn = connect(target)
    locked = exact = False
    try:
        server_version = str(query(conn, "SELECT VERSION()")[0][0])
        if not database_exists(conn, target.database):
            raise UserError(f"database {target.database} does not exist on {target.describe()}")
        try:
            query(conn, "FLUSH TABLES WITH READ LOCK")
            locked = exact = True
        except pymysql.err.OperationalError as exc:
            ctx.warning(
                "counts_outside_snapshot",
                f"no RELOAD privilege for FLUSH TABLES WITH READ LOCK ({exc.args[-1]}): row counts are taken "
                "beside the dump, not in its snapshot, and may differ under concurrent writes",
            )
        query(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        query(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
        counter = _SnapshotCounter(conn, target.database)
        if not locked:
            counter.thread.start()
        writer = new_writer("")
        option_file = target.option_file(work_dir)

        def consume(out) -> None:
            nonlocal locked
            tail = b""
            while chunk := out.read(CHUNK):
                writer.write(chunk)
                if locked and any(m in tail + chunk for m in _PAST_SNAPSHOT):
                    query(conn, "UNLOCK TABLES")
                    locked = False
                    counter.thread.start()
                tail = chunk[-64:]
                ctx.check_cancelled()

        try:
            run_streaming(ctx, _dump_argv(tools, option_file, target.database), {}, consume)
        finally:
            option_file.unlink(missing_ok=True)
            if counter.thread.ident is not None:
                counter.thread.join()
            if locked:
                query(conn, "UNLOCK TABLES")
                locked = False
        if counter.thread.ident is None:  # no section marker seen: the lock was held for the whole dump
            counter._run()
        if counter.failure is not None:
            raise UserError(f"counting rows in the dump's snapshot failed: {counter.failure}")
        query(conn, "COMMIT")
        writer.finish()
    finally:
        try:
            if locked:
                query(conn, "UNLOCK TABLES")
        finally:
            conn.close()
    return {
        "format": "sql",
        "row_counts": counter.counts,
        "row_counts_exact": exact,
        "server_version": server_version,
        "tool_versions": {"dump": version_text},
        "database": target.database,
    }


# --- verify and restore -----------------------------------------------------------------------


def _sql_stream(raw: Path, disable_events: bool) -> Iterator[bytes]:
    with open(raw, "rb") as fh:
        for line in fh:
            if disable_events and line.startswith(b"/*!50106 CREATE*/"):
                line = _EVENT_ENABLE.sub(rb"\1 DISABLE", line, count=1)
            yield line


def load_sql(ctx, tools: Tools, target: MyTarget, database: str, raw: Path, work_dir: Path, scratch: bool) -> None:
    """Feed a dump to the ``mariadb`` client connected to ``database`` (which must exist)."""
    option_file = target.option_file(work_dir)
    argv = [tools.client, f"--defaults-extra-file={option_file}", "--batch", "--binary-mode", database]
    try:
        run_fed(ctx, argv, {}, _sql_stream(raw, disable_events=scratch))
    finally:
        option_file.unlink(missing_ok=True)


def scratch_name(backup_id: str) -> str:
    return ("upkeep_verify_" + re.sub(r"[^a-z0-9_]", "_", backup_id.lower()))[:64]


def verify(ctx, entry, raw: Path, config, scratch: MyTarget | None, work_dir: Path, on_restored=None) -> list:
    manifest = entry["manifest"]
    if scratch is None:
        raise UserError(
            f"no server to test-restore backup {entry['id']} on",
            hint="set scratch_target (a targets.databases name or an inline connection) or source",
            field="config.scratch_target",
        )
    results: list[dict[str, Any]] = []
    if not config.test_restore:
        return results
    tools = find_tools(config)
    name = scratch_name(entry["id"])
    admin = connect(scratch, database="")
    try:
        query(admin, f"DROP DATABASE IF EXISTS {quote(name)}")  # a leftover of a crashed verification
        query(admin, f"CREATE DATABASE {quote(name)}")
        try:
            ctx.info(
                "test_restore", f"restoring {entry['id']} into scratch database {name}", server=scratch.describe(name)
            )
            try:
                load_sql(ctx, tools, scratch, name, raw, work_dir, scratch=True)
            except UserError as exc:
                results.append(check("test_restore", False, f"test restore failed: {exc}"))
                return results
            results.append(check("test_restore", True, f"restored into scratch database {name}"))
            conn = connect(scratch, database=name)
            try:
                results.append(compare_counts(manifest.get("row_counts") or {}, count_rows(conn, name)))
                for a in run_assertions(conn, assertions_of(entry, config)):
                    results.append(check("assertion", a["ok"], f"{a['assertion']} -> {a['value']}"))
            finally:
                conn.close()
            if on_restored is not None:
                results += on_restored(scratch.spec(name))
        finally:
            query(admin, f"DROP DATABASE IF EXISTS {quote(name)}")
    finally:
        admin.close()
    return results


def restore_plan(entry, target: MyTarget, config) -> dict[str, Any]:
    dbname = config.target_database or target.database or entry["manifest"].get("database")
    if not dbname:
        raise UserError("restoring a MariaDB/MySQL backup needs target_database", field="config.target_database")
    admin = connect(target, database="")
    try:
        exists = database_exists(admin, dbname)
        size = database_size(admin, dbname) if exists else 0
        sessions = len(sessions_on(admin, dbname)) if exists else 0
    finally:
        admin.close()
    return database_restore_plan(
        entry,
        config,
        server=target.describe(dbname),
        dbname=dbname,
        exists=exists,
        size=size,
        sessions=sessions,
        end_sessions="end",
        load="load",
        load_suffix=" with the mariadb client",
    )


def restore(ctx, entry, raw: Path, target: MyTarget, plan: dict[str, Any], config, work_dir: Path) -> list:
    dbname = plan["database"]
    tools = find_tools(config)
    admin = connect(target, database="")
    try:
        if database_exists(admin, dbname):
            ended = 0
            for session in sessions_on(admin, dbname):
                try:
                    query(admin, f"KILL CONNECTION {int(session)}")
                    ended += 1
                except Exception:  # it ended by itself meanwhile
                    pass
            ctx.info("terminated", f"ended {ended} session(s) on {dbname}", database=dbname, count=ended)
            query(admin, f"DROP DATABASE {quote(dbname)}")
            ctx.info("dropped", f"dropped database {dbname}", database=dbname)
        query(admin, f"CREATE DATABASE {quote(dbname)}")
    finally:
        admin.close()
    load_sql(ctx, tools, target, dbname, raw, work_dir, scratch=False)
    conn = connect(target, database=dbname)
    try:
        return [compare_counts(entry["manifest"].get("row_counts") or {}, count_rows(conn, dbname))]
    finally:
        conn.close()


class MysqlSource(DatabaseSource):
    type = "mysql"
    target = MyTarget
    steps = DatabaseSteps(create, verify, restore_plan, restore)

    @classmethod
    def check_spec(cls, spec: dict[str, Any], field: str) -> None:
        spec["type"] = "mysql"
        MyTarget.from_spec(spec, field)

    @classmethod
    def default_name(cls, spec: dict[str, Any]) -> str:
        return MyTarget.from_spec(spec).database or "mysql"

    def connection(self) -> dict[str, Any]:
        return MyTarget.from_spec(self.spec).params()

    def layout(self, config) -> tuple[str, str]:
        return ".sql", config.compression
