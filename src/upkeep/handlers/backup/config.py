"""The config models of the ``backup.*`` handlers (``backup.drill``'s builds on ``PgToolsConfig``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from upkeep.bounds import MAX_DAYS
from upkeep.engine.registry import HandlerConfig, host_scoped, overridable
from upkeep.handlers.backup.retention import RetentionConfig
from upkeep.handlers.backup.sources import SourceField
from upkeep.handlers.backup.targets import BackupTarget  # noqa: F401  (declares the kinds of target)

SOURCE_KINDS = ("databases", "files")


# --- config ----------------------------------------------------------------------------------


class PgToolsConfig(HandlerConfig):
    pg_dump_path: str | None = host_scoped(
        None, description="pg_dump executable (its directory also gives pg_restore)."
    )
    pg_bin_dir: str | None = host_scoped(None, description="Directory of pg_dump/pg_restore/pg_dumpall.")
    mysql_bin_dir: str | None = host_scoped(
        None, description="Directory of mariadb-dump/mariadb (or mysqldump/mysql); default PATH."
    )
    encryption_key_env: str | None = host_scoped(
        None, description="Environment variable holding the 32-byte key (64 hex digits or base64)."
    )


class CreateConfig(PgToolsConfig):
    source: SourceField = host_scoped(
        refs=SOURCE_KINDS, description="A targets.databases / targets.files name, or an inline source."
    )
    destination: str | None = host_scoped(
        None,
        refs=("backups",),
        overridable=True,
        description="A targets.backups name or a directory; default <data_dir>/backups.",
    )
    copy_to: str | None = host_scoped(
        None, description="Second directory for a verified copy (overrides the target's)."
    )
    compression: Literal["zstd", "gzip", "none"] = overridable("zstd", description="Artifact compression.")
    compression_level: int | None = Field(None, ge=0, le=22, description="Default zstd 3, gzip 6.")
    compression_threads: int = Field(0, ge=0, le=16, description="zstd worker threads (0: in the caller).")
    format: Literal["custom", "directory"] = Field("custom", description="PostgreSQL: pg_dump -Fc or -Fd -j.")
    jobs: int = Field(2, ge=1, le=32, description="pg_dump -j for format: directory.")
    include_globals: bool = Field(False, description="Also pg_dumpall --globals-only (roles, tablespaces).")
    table_checksums: bool = Field(
        False, description="Record md5(string_agg(row)) per table in the dump's snapshot (costs a table scan)."
    )
    excludes: list[str] = Field(default_factory=list, description="Glob patterns left out of files backups.")
    encrypt: bool = Field(False, description="Encrypt the artifact (AES-256-GCM); needs encryption_key_env.")
    rdb_path: str | None = host_scoped(None, description="Redis: the RDB file (default from CONFIG GET).")
    tags: list[str] = Field(default_factory=list, description="Labels stored on the catalog entry.")
    retention: RetentionConfig | None = Field(None, description="Applied to this source after a successful backup.")
    offsite: bool = overridable(
        True,
        description="Copy the backup (and any earlier one a repository lacks) to the destination's off-site "
        "repositories, then apply each repository's own retention.",
    )


def restore_memory_field():
    """``restore_memory_mb`` of the tasks that test-restore (``backup.verify``, ``backup.drill``)."""
    return Field(
        512,
        ge=1,
        le=65536,
        description="PostgreSQL: maintenance_work_mem (MB) of each test-restore session; an index build sorts in "
        "memory up to it (at 512, pgbench scale 50's primary key does). Lower it on a server with little RAM.",
    )


class VerifyConfig(PgToolsConfig):
    source: SourceField | None = host_scoped(
        None, refs=SOURCE_KINDS, any_name=True, description="Source name or inline source; default every source."
    )
    which: str = overridable("latest", description="latest | all | a backup id.")
    rpo_hours: float = Field(
        26, gt=0, le=MAX_DAYS * 24, description="Warn when the newest verified backup is older than this."
    )
    test_restore: bool = Field(True, description="PostgreSQL: restore into a scratch database and compare counts.")
    scratch_target: SourceField | None = host_scoped(
        None,
        refs=("databases",),
        description="Server for test restores (targets.databases name or inline); default the source's.",
    )
    assertions: list[str] = host_scoped(
        default_factory=list, description="SQL run in the scratch database; the first column must be true."
    )
    restore_jobs: int = Field(
        2,
        ge=1,
        le=32,
        description="pg_restore -j for the test restore of a dump read from a file (directory format, or stored "
        "uncompressed); a compressed custom-format dump is decoded into one pg_restore reading a pipe.",
    )
    restore_memory_mb: int = restore_memory_field()
    compare_checksums: bool = Field(True, description="Compare table checksums when the manifest has them.")
    scratch_dir: str | None = host_scoped(
        None,
        description="Where decoded scratch copies go (default the temp dir); a compressed custom-format "
        "PostgreSQL dump needs none.",
    )
    from_repository: str | None = overridable(
        None, description="Verify the copies in this off-site repository (download, checksum, test restore)."
    )
    redis_check_rdb_path: str | None = host_scoped(None, description="redis-check-rdb executable.")


class RestoreConfig(PgToolsConfig):
    source: SourceField | None = host_scoped(
        None, refs=SOURCE_KINDS, any_name=True, description="Source name or inline source (needed for latest)."
    )
    backup: str = overridable("latest", description="A backup id, or latest (the newest VERIFIED one).")
    allow_unverified: bool = overridable(False, description="Allow unverified or broken backups.")
    target: SourceField | None = host_scoped(
        None,
        refs=("databases",),
        description="PostgreSQL server/database to restore into (a targets.databases name or inline; default the "
        "source).",
    )
    target_database: str | None = host_scoped(
        None,
        unless="create",
        overridable=True,
        description="Database name (default the original). With create: true, a new database on the target's "
        "server (a per-run choice); over an existing one only from upkeep.yaml or the local CLI.",
    )
    create: bool = overridable(False, description="Restore into a NEW database/file (it must not exist).")
    target_path: str | None = host_scoped(
        None,
        refs=("files", "databases"),
        overridable=True,
        description="sqlite/redis file or files directory to restore to: a path, or the name of a targets.files "
        "entry (its path) or a SQLite targets.databases entry.",
    )
    maintenance_database: str = host_scoped("postgres", description="Database upkeep connects to for DROP/CREATE.")
    safety_backup: bool = Field(True, description="Back up the existing target first.")
    safety_destination: str | None = host_scoped(
        None,
        refs=("backups",),
        description="Where safety backups go (a targets.backups name or a directory; default the destination).",
    )
    stop_command: list[str] | None = host_scoped(None, description="argv run before the restore.")
    start_command: list[str] | None = host_scoped(None, description="argv run after it, always (finally).")
    restore_jobs: int = Field(2, ge=1, le=32, description="pg_restore -j.")
    no_owner: bool = Field(False, description="pg_restore --no-owner.")
    scratch_dir: str | None = host_scoped(None, description="Where the decoded artifact goes (default the temp dir).")
    from_repository: str | None = overridable(
        None, description="Restore the copy in this off-site repository (downloaded and checked first)."
    )


class PruneConfig(HandlerConfig):
    source: SourceField = host_scoped(
        refs=SOURCE_KINDS, any_name=True, description="Source name whose backups are pruned."
    )
    retention: RetentionConfig = Field(description="The retention policy of the local copies.")
    offsite: bool = Field(True, description="Also apply each off-site repository's own retention to its copies.")


# --- helpers ---------------------------------------------------------------------------------
