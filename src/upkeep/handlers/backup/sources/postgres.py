"""PostgreSQL backups: ``pg_dump`` in an exported snapshot, verification by test restore, restore."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from upkeep.errors import UserError
from upkeep.handlers.backup.checks import assertions_of, check, compare_counts
from upkeep.handlers.backup.sources import files as tar_files
from upkeep.handlers.backup.sources.base import DatabaseSource, DatabaseSteps, OnRestored, Source, database_restore_plan
from upkeep.handlers.backup.sources.postgres_tools import (
    connect,
    count_rows,
    create_database,
    database_exists,
    database_size,
    drop_database,
    drop_database_later,
    dropping,
    dump_in_snapshot,
    dumpall_globals,
    list_tables,
    resolve_restore_tool,
    resolve_tools,
    restore_into,
    restore_list,
    run_assertions,
    server_major,
    table_checksums,
    terminate_connections,
)
from upkeep.handlers.backup.stream import ArtifactWriter, CorruptArtifact, DecodedStream
from upkeep.handlers.db.postgres import PgTarget


def layout(config) -> tuple[str, str]:
    """(file extension before compression, compression upkeep applies around pg_dump's output)."""
    base = ".dump" if config.format == "custom" else ".dir.tar"
    if config.compression == "gzip":  # pg_dump compresses itself; pg_restore -j can read it directly
        return base, "none"
    return base, config.compression


def create(ctx, source: Source, config, new_writer: Callable[[str], ArtifactWriter], work_dir: Path) -> dict[str, Any]:
    target = PgTarget.from_spec(source.spec)
    conn = connect(target)
    try:
        server = server_major(conn)
        total = database_size(conn, target.dbname)
    finally:
        conn.close()
    tools = resolve_tools(ctx, config, server, need_dumpall=config.include_globals)
    dump_level = (config.compression_level or 6) if config.compression == "gzip" else 0
    writer = new_writer("")
    progress = _Progress(ctx, writer, total)
    if config.format == "custom":
        argv = [tools.pg_dump, "-Fc", f"-Z{dump_level}", "-d", target.conninfo()]
        stats = dump_in_snapshot(ctx, target, argv, lambda out: writer.copy_from(out, progress), config.table_checksums)
    else:
        dump_dir = work_dir / "dump"
        argv = [
            tools.pg_dump,
            "-Fd",
            "-j",
            str(config.jobs),
            f"-Z{dump_level}",
            "-f",
            str(dump_dir),
            "-d",
            target.conninfo(),
        ]
        stats = dump_in_snapshot(ctx, target, argv, None, config.table_checksums)
        tar_files.tar_directory(ctx, dump_dir, writer)
        shutil.rmtree(dump_dir, ignore_errors=True)
    writer.finish()
    extra = []
    if config.include_globals:
        gwriter = new_writer(".globals.sql")
        dumpall_globals(ctx, tools, target, lambda out: gwriter.copy_from(out, ctx.check_cancelled))
        info = gwriter.finish()
        extra.append(
            {
                "kind": "globals",
                "artifact": info.path.name,
                "size": info.size,
                "raw_size": info.raw_size,
                "sha256": info.sha256,
            }
        )
    return {
        "format": config.format,
        "dump_compression": dump_level,
        "server_version": stats.server_version,
        "tool_versions": {"pg_dump": tools.version_text},
        "pg_dump_major": tools.major,
        "row_counts": stats.row_counts,
        "table_checksums": stats.checksums,
        "snapshot": stats.snapshot,
        "database": target.dbname,
        "extra_artifacts": extra,
    }


class _Progress:
    def __init__(self, ctx, writer: ArtifactWriter, total: int):
        self.ctx, self.writer, self.total, self.next = ctx, writer, max(total, 1), 64 << 20

    def __call__(self) -> None:
        self.ctx.check_cancelled()
        if self.writer.raw_size >= self.next:
            self.next += 64 << 20
            self.ctx.progress(min(0.95, self.writer.raw_size / self.total), f"{self.writer.raw_size >> 20} MiB dumped")


def scratch_name(backup_id: str) -> str:
    return ("upkeep_verify_" + re.sub(r"[^a-z0-9_]", "_", backup_id.lower()))[:63]


def _dump_path(ctx, entry: dict[str, Any], raw: Path | DecodedStream, work_dir: Path) -> Path | DecodedStream:
    if isinstance(raw, DecodedStream):  # a custom-format dump, read by pg_restore from a pipe
        return raw
    if entry["manifest"].get("format") == "directory":
        out = work_dir / "dump"
        tar_files.extract_tar(raw, out)
        return out
    return raw


def verify(
    ctx,
    entry: dict[str, Any],
    raw: Path | DecodedStream,
    config,
    scratch: PgTarget | None,
    work_dir: Path,
    on_restored: OnRestored | None = None,
) -> list[dict[str, Any]]:
    manifest = entry["manifest"]
    results: list[dict[str, Any]] = []
    if scratch is None:
        raise UserError(
            f"no server to test-restore backup {entry['id']} on",
            hint="set scratch_target (a targets.databases name or an inline connection) or source",
            field="config.scratch_target",
        )
    admin = connect(scratch)
    scratch_db: _Creating | None = None
    try:
        tools = resolve_restore_tool(ctx, config, server_major(admin), manifest.get("pg_dump_major"))
        dump = _dump_path(ctx, entry, raw, work_dir)
        name = scratch_name(entry["id"])
        if config.test_restore:  # made on the server while pg_restore reads the table of contents here
            scratch_db = _Creating(admin, name)
        try:
            entries = restore_list(ctx, tools, dump)
            results.append(check("toc", True, f"table of contents readable ({entries} entries)"))
        except UserError as exc:
            results.append(check("toc", False, str(exc)))
            return results
        except CorruptArtifact as exc:
            results.append(check("decode", False, str(exc)))
            return results
        if scratch_db is None:
            return results
        scratch_db.wait()
        if scratch_db.leftover:
            ctx.warning(
                "scratch_leftover",
                f"scratch database {name} was still there (an earlier verification's drop failed or was cut "
                "off): dropped before this test restore",
                database=name,
            )
        ctx.info("test_restore", f"restoring {entry['id']} into scratch database {name}", server=scratch.describe(name))
        try:
            restore_into(
                ctx, tools, scratch, name, dump, jobs=config.restore_jobs, scratch_memory_mb=config.restore_memory_mb
            )
        except UserError as exc:
            results.append(check("test_restore", False, f"test restore failed: {exc}"))
            return results
        except CorruptArtifact as exc:
            results.append(check("decode", False, str(exc)))
            return results
        results.append(check("test_restore", True, f"restored into scratch database {name} (dropped after the checks)"))
        conn = connect(scratch, name)
        try:
            tables = list_tables(conn)
            results.append(compare_counts(manifest.get("row_counts") or {}, count_rows(conn, tables)))
            if manifest.get("table_checksums") and config.compare_checksums:
                results.append(
                    compare_counts(manifest["table_checksums"], table_checksums(conn, tables), "table checksums")
                )
            for a in run_assertions(conn, assertions_of(entry, config)):
                results.append(check("assertion", a["ok"], f"{a['assertion']} -> {a['value']}"))
        finally:
            conn.close()
        if on_restored is not None:
            results += on_restored(scratch.spec(name))
    finally:
        _drop_scratch(admin, scratch_db)
    return results


def _drop_scratch(admin, scratch_db: _Creating | None) -> None:
    """Drop the scratch database without waiting for the server to finish: dropping a restored
    copy removes its files and makes a checkpoint (a quarter of a second on pgbench scale 50),
    nothing the verification's result depends on (benchmarks/README.md). ``admin`` is closed, or
    handed to the drop, which closes it once the server has answered."""
    handed_over = False
    try:
        if scratch_db is not None:
            scratch_db.join()
            if scratch_db.failure is None:
                drop_database_later(admin, scratch_db.name)
                handed_over = True
    finally:
        if not handed_over:
            admin.close()


class _Creating:
    """The scratch database being made (a leftover of a crashed verification dropped first) in a
    thread, on ``admin``, which nothing else uses until ``wait`` or ``join`` returns."""

    def __init__(self, admin, name: str):
        self.admin, self.name = admin, name
        self.failure: BaseException | None = None
        self.leftover = False
        self.thread = threading.Thread(target=self._run, name="upkeep-scratch-db", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.leftover = database_exists(self.admin, self.name) and not dropping(self.admin, self.name)
            drop_database(self.admin, self.name)
            create_database(self.admin, self.name)
        except BaseException as exc:  # noqa: BLE001 - raised in the verifying thread by wait()
            self.failure = exc

    def join(self) -> None:
        self.thread.join()

    def wait(self) -> None:
        self.join()
        if self.failure is not None:
            raise self.failure


def restore_plan(entry: dict[str, Any], target: PgTarget, config) -> dict[str, Any]:
    dbname = config.target_database or target.dbname
    admin = connect(target, dbname=config.maintenance_database)
    try:
        exists = database_exists(admin, dbname)
        size = database_size(admin, dbname) if exists else 0
        sessions = 0
        if exists:
            sessions = int(
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
                ).fetchone()[0]
            )
    finally:
        admin.close()
    if dbname == config.maintenance_database:
        raise UserError(
            f"cannot restore into {dbname}: it is the maintenance database upkeep connects to",
            hint="set maintenance_database to another database",
            field="config.maintenance_database",
        )
    return database_restore_plan(
        entry,
        config,
        server=target.describe(dbname),
        dbname=dbname,
        exists=exists,
        size=size,
        sessions=sessions,
        end_sessions="terminate",
        load="pg_restore",
    )


def restore(
    ctx, entry: dict[str, Any], raw: Path, target: PgTarget, plan: dict[str, Any], config, work_dir: Path
) -> list[dict[str, Any]]:
    """Drop (if present) and create the target database, restore, compare counts."""
    dbname = plan["database"]
    admin = connect(target, dbname=config.maintenance_database)
    try:
        tools = resolve_restore_tool(ctx, config, server_major(admin), entry["manifest"].get("pg_dump_major"))
        dump = _dump_path(ctx, entry, raw, work_dir)
        if database_exists(admin, dbname):
            ended = terminate_connections(admin, dbname)
            ctx.info("terminated", f"ended {ended} session(s) on {dbname}", database=dbname, count=ended)
            drop_database(admin, dbname)
            ctx.info("dropped", f"dropped database {dbname}", database=dbname)
        create_database(admin, dbname)
    finally:
        admin.close()
    restore_into(ctx, tools, target, dbname, dump, jobs=config.restore_jobs, no_owner=config.no_owner)
    conn = connect(target, dbname)
    try:
        return [compare_counts(entry["manifest"].get("row_counts") or {}, count_rows(conn, list_tables(conn)))]
    finally:
        conn.close()


class PostgresSource(DatabaseSource):
    type = "postgres"
    target = PgTarget
    steps = DatabaseSteps(create, verify, restore_plan, restore)

    @classmethod
    def default_name(cls, spec: dict[str, Any]) -> str:
        return PgTarget.from_spec(spec).dbname

    def connection(self) -> dict[str, Any]:
        return dict(PgTarget.from_spec(self.spec).params)

    def layout(self, config) -> tuple[str, str]:
        return layout(config)

    @classmethod
    def reads_artifact_directly(cls, manifest: dict[str, Any]) -> bool:
        return manifest["stream_compression"] == "none"

    @classmethod
    def verifies_from_stream(cls, manifest: dict[str, Any]) -> bool:
        return manifest.get("format") == "custom"
