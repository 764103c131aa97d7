"""Backups that are verified by test restores: ``backup.create``, ``backup.verify``,
``backup.restore`` and ``backup.prune``.

Sources (config ``source``: a target name or an inline dict with ``type``):

- ``postgres``: ``pg_dump -Fc`` (or ``-Fd -j N`` with ``format: directory``) inside an exported
  snapshot; per-table row counts (and with ``table_checksums: true`` per-table
  ``md5(string_agg(row::text, '' ORDER BY pk))``) are taken in that same snapshot. ``compression:
  zstd`` runs ``pg_dump -Z0`` and compresses in-process (sha256 computed in the same pass); ``gzip``
  uses pg_dump's own compression. pg_dump must not be older than the server (``pg_dump_path`` /
  ``pg_bin_dir`` choose another). ``include_globals`` adds ``pg_dumpall --globals-only``.
- ``sqlite``: the online backup API. ``redis``: ``BGSAVE`` and a copy of the RDB file.
- ``files``: a tar archive of ``paths`` minus ``excludes``; never the backup directories themselves.

Inventory (upkeep.yaml ``targets``): ``databases`` (sources and restore targets, see
``_backup/sources.py``), ``files`` (file sources), ``backups`` (name -> ``{path, copy_to}``
destinations). Default destination: ``<data_dir>/backups``; artifacts go to ``<dest>/<source>/``.

Every artifact is written under a temporary name, fsynced, renamed, with a manifest beside it
(``_backup/manifest.py``). Encryption (``encrypt: true``) is AES-256-GCM with the key from the
environment variable named by ``encryption_key_env`` (format in ``_backup/crypto.py``). The catalog
lives in records domain ``backup`` (``_backup/catalog.py``). Retention (``_backup/retention.py``)
runs after each successful create; the newest verified backup is never deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from upkeep.bounds import MAX_DAYS
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, inventory_kind, overridable
from upkeep.errors import ConfigError, UserError
from upkeep.handlers._backup import catalog, crypto, offsite, replicate, retention
from upkeep.handlers._backup.checks import check
from upkeep.handlers._backup.manifest import manifest_path, new_backup_id, write_manifest
from upkeep.handlers._backup.retention import RetentionConfig
from upkeep.handlers._backup.sources import (
    BackupTarget,
    DatabaseTarget,
    FileTarget,
    OnRestored,
    Source,
    destination_private,
    kind,
    resolve_destination,
    resolve_path,
    resolve_source,
    safe_name,
)
from upkeep.handlers._backup.stream import (
    EXTENSIONS,
    ArtifactReader,
    ArtifactWriter,
    DecodedStream,
    fsync_dir,
    sha256_file,
    temp_name,
)
from upkeep.private import PRIVATE, Private

SourceField = str | dict[str, Any]
SOURCE_KINDS = ("databases", "files")
inventory_kind("databases", DatabaseTarget)
inventory_kind("files", FileTarget)
inventory_kind("backups", BackupTarget)


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


class _ArtifactSet:
    """All files one backup writes; ``discard()`` removes every one of them (failure path)."""

    def __init__(
        self, directory: Path, stem: str, base_ext: str, compression: str, config, key: bytes | None, private: Private
    ):
        self.directory, self.stem, self.base_ext = directory, stem, base_ext
        self.compression, self.config, self.key, self.private = compression, config, key, private
        self.writers: list[ArtifactWriter] = []

    def new(self, suffix: str = "") -> ArtifactWriter:
        name = f"{self.stem}{suffix or self.base_ext}{EXTENSIONS[self.compression]}{'.enc' if self.key else ''}"
        writer = ArtifactWriter(
            self.directory / name,
            self.compression,
            self.config.compression_level,
            self.key,
            threads=self.config.compression_threads,
            private=self.private,
        )
        self.writers.append(writer)
        return writer

    def discard(self) -> None:
        for w in self.writers:
            w.abort()
            if w.info is not None:
                w.final_path.unlink(missing_ok=True)
                manifest_path(w.final_path).unlink(missing_ok=True)


def _copy_verified(src: Path, directory: Path, private: Private) -> Path:
    private.mkdir(directory)
    final = directory / src.name
    tmp = temp_name(final)
    try:
        with open(src, "rb") as reader, private.open(tmp) as fh:
            shutil.copyfileobj(reader, fh, 1 << 20)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(directory)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _catalogued_paths(records) -> list[Path]:
    out = []
    for entry in catalog.entries(records):
        out.append(Path(entry["path"]))
        out.extend(Path(c["path"]) for c in entry.get("copies", []))
    return out


def create_backup(
    ctx,
    source: Source,
    config: CreateConfig,
    destination: Path,
    copy_to: Path | None,
    tags: list[str] | None = None,
    destination_name: str | None = None,
    private: Private = PRIVATE,
) -> dict[str, Any]:
    """Take one backup of ``source``; returns the catalog entry. Leaves nothing behind on failure.
    Every file and directory it creates is private (``upkeep.private``)."""
    key = crypto.load_key(config.encryption_key_env) if config.encrypt else None
    started = ctx.now()
    t0 = time.monotonic()
    backup_id = new_backup_id(started)
    directory = private.mkdir(destination / source.name)
    base_ext, stream_compression = source.layout(config)
    artifacts = _ArtifactSet(
        directory, f"{source.name}-{backup_id}", base_ext, stream_compression, config, key, private
    )
    work_dir = Path(tempfile.mkdtemp(dir=directory, prefix=".upkeep-work-"))
    records = ctx.records(catalog.DOMAIN)
    copies: list[dict[str, Any]] = []
    try:
        ctx.info(
            "backup_started",
            f"backing up {source.name} ({source.type}) to {directory}",
            source=source.name,
            backup_id=backup_id,
        )
        never = [destination, *([copy_to] if copy_to else []), *_catalogued_paths(records)]
        fields = source.create(ctx, config, artifacts.new, work_dir, never)
        main = artifacts.writers[0].info
        assert main is not None
        finished = ctx.now()
        manifest = {
            "manifest_version": 1,
            "id": backup_id,
            "source": source.name,
            "type": source.type,
            "compression": config.compression,
            "stream_compression": stream_compression,
            "encryption_key_id": crypto.key_id(key) if key else None,
            "encryption_key_env": config.encryption_key_env if key else None,
            "artifact": main.path.name,
            "size": main.size,
            "raw_size": main.raw_size,
            "sha256": main.sha256,
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_s": round(time.monotonic() - t0, 3),
            "tags": list(tags or config.tags),
            "extra_artifacts": [],
            **fields,
        }
        manifest["tool_versions"] = {**fields.get("tool_versions", {}), "zstandard": _zstd_version()}
        write_manifest(main.path, manifest, private)
        if copy_to is not None:
            for info in [w.info for w in artifacts.writers if w.info]:
                copy = _copy_verified(info.path, copy_to / source.name, private)
                copied = sha256_file(copy)
                if copied != info.sha256:
                    copy.unlink(missing_ok=True)
                    raise UserError(f"copy to {copy_to} failed its checksum (expected {info.sha256}, got {copied})")
                if info.path == main.path:
                    write_manifest(copy, manifest, private)
                    copies.append({"path": str(copy), "sha256_ok": True})
    except BaseException:
        artifacts.discard()
        for c in copies:
            Path(c["path"]).unlink(missing_ok=True)
            manifest_path(Path(c["path"])).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    entry = {
        "id": backup_id,
        "source": source.name,
        "type": source.type,
        "created_at": started.isoformat(),
        "status": "created",
        "path": str(main.path),
        "manifest_path": str(manifest_path(main.path)),
        "copies": copies,
        "destination": destination_name,
        "tags": manifest["tags"],
        "target_name": source.target_name,
        "connection": source.connection(),
        "assertions": list(source.spec.get("assertions") or []),
        "manifest": manifest,
        "verified_at": None,
        "verification": None,
    }
    catalog.put(records, entry)
    ctx.info(
        "backup_created",
        f"{source.name}/{backup_id}: {main.size} bytes, sha256 {main.sha256[:12]}",
        source=source.name,
        backup_id=backup_id,
        path=str(main.path),
        size=main.size,
    )
    return entry


def _zstd_version() -> str:
    import zstandard

    return zstandard.__version__


def apply_retention(ctx, source_name: str, config: RetentionConfig, dry_run: bool) -> dict[str, Any]:
    records = ctx.records(catalog.DOMAIN)
    by_id = {e["id"]: e for e in catalog.entries(records, source_name) if not e.get("local_deleted")}
    infos = [
        retention.BackupInfo(e["id"], datetime.fromisoformat(e["created_at"]), e.get("status") == "verified")
        for e in by_id.values()
    ]
    decision = retention.select(infos, config.policy(), ctx.now())
    ctx.scope(
        [f"{source_name}/{backup_id}" for backup_id in decision.delete],
        f"the retention policy over {len(infos)} backup(s) of {source_name}; the newest verified one is kept",
        what="backups to delete",
    )
    removed = []
    for backup_id in decision.delete:
        entry = by_id[backup_id]
        paths = [Path(entry["path"]), *(Path(c["path"]) for c in entry.get("copies", []))]
        extras = [Path(entry["path"]).with_name(x["artifact"]) for x in entry["manifest"].get("extra_artifacts", [])]
        if dry_run:
            ctx.info("plan", f"would delete backup {source_name}/{backup_id}", action="delete", path=str(paths[0]))
        else:
            for p in [*paths, *extras]:
                p.unlink(missing_ok=True)
                manifest_path(p).unlink(missing_ok=True)
            if entry.get("offsite"):  # still restorable from a repository: keep its catalog entry
                catalog.put(records, {**entry, "local_deleted": ctx.now().isoformat()})
            else:
                catalog.remove(records, entry)
            ctx.info("deleted", f"deleted backup {source_name}/{backup_id}", action="delete", path=str(paths[0]))
        removed.append({"id": backup_id, "path": str(paths[0]), "created_at": entry["created_at"]})
    return {
        "kept": [{"id": i, "reasons": r} for i, r in decision.keep.items()],
        ("would_delete" if dry_run else "deleted"): removed,
    }


def _source_name(ctx, source: SourceField | None) -> str | None:
    if source is None:
        return None
    if isinstance(source, dict):
        return resolve_source(ctx, source).name
    known = ctx.targets.names("databases") + ctx.targets.names("files")
    return resolve_source(ctx, source).name if source in known else safe_name(source)


def server_for(
    ctx, explicit: SourceField | None, source: SourceField | None, entry: dict[str, Any], field: str
) -> dict[str, Any] | None:
    """Database server (a source spec, secrets resolved) for a test restore or restore of ``entry``:
    the explicit target, the configured source, the catalogued target name, or the catalogued
    connection (no password: the client's own password file applies). None for kinds without one."""
    kind_type = entry["type"]
    if not kind(kind_type).uses_server:
        return None
    known = ctx.targets.names("databases")
    for candidate in (explicit, source):
        if candidate is source and isinstance(candidate, str) and candidate not in known:
            continue  # a catalog source name, not an inventory target
        if candidate is not None:
            resolved = resolve_source(ctx, candidate, field=field)
            if resolved.type != kind_type:
                raise ConfigError(f"{field} must be a {kind_type} target like the backup's source", field=field)
            return resolved.spec
    name = entry.get("target_name")
    if name and name in known:
        return resolve_source(ctx, name, field=field).spec
    if entry.get("connection"):
        return dict(entry["connection"])
    return None


def _current_assertions(ctx, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its source's assertions as upkeep.yaml has them now (the catalogued ones when
    the source is not in the inventory any more)."""
    name = entry.get("target_name")
    if name and name in ctx.targets.names("databases"):
        return {**entry, "assertions": list(ctx.targets.get("databases", name).get("assertions") or [])}
    return entry


def _key_for(entry: dict[str, Any], config) -> bytes | None:
    manifest = entry["manifest"]
    if not manifest.get("encryption_key_id"):
        return None
    key = crypto.load_key(config.encryption_key_env or manifest.get("encryption_key_env"))
    if crypto.key_id(key) != manifest["encryption_key_id"]:
        raise ConfigError(
            f"backup {entry['id']} was encrypted with key id {manifest['encryption_key_id']}, "
            f"the configured key has id {crypto.key_id(key)}",
            field="config.encryption_key_env",
        )
    return key


def _decode(
    ctx, entry: dict[str, Any], config, work_dir: Path, stream: bool = False
) -> tuple[Path | DecodedStream | None, list[dict[str, Any]]]:
    """Size and checksum checks, and the decoded raw content: a scratch copy, or the artifact itself
    when it needs no decoding and the type only reads it, or with ``stream`` (a verification) a
    ``DecodedStream`` when the type verifies from one. Returns (raw content or None, checks).

    The stored bytes' checksum is always compared before any content is handed on: a stream is
    decoded only after it matched, so a tampered artifact never reaches a restore."""
    manifest = entry["manifest"]
    path = Path(entry["path"])
    if not path.is_file():
        return None, [check("exists", False, f"artifact missing: {path}")]
    results = []
    size = path.stat().st_size
    size_ok = size == manifest["size"]
    results.append(
        check("size", size_ok, f"size {size} bytes" + ("" if size_ok else f" != manifest {manifest['size']} bytes"))
    )
    key = _key_for(entry, config)
    direct = key is None and kind(entry["type"]).reads_artifact_directly(manifest)
    raw: Path | DecodedStream
    if direct:
        digest, error, raw = sha256_file(path), None, path
    elif stream and kind(entry["type"]).verifies_from_stream(manifest):
        digest, error, raw = sha256_file(path), None, DecodedStream(path, manifest["stream_compression"], key)
    else:
        reader = ArtifactReader(path, manifest["stream_compression"], key)
        raw = work_dir / "raw"
        reader.extract_to(raw, keep_going=True)
        digest, error = reader.sha256, reader.error
    if digest != manifest["sha256"]:
        results.append(check("checksum", False, f"checksum mismatch: expected {manifest['sha256']} got {digest}"))
        return None, results
    results.append(check("checksum", True, f"sha256 {digest[:16]}... matches"))
    for extra in manifest.get("extra_artifacts", []):
        extra_path = path.with_name(extra["artifact"])
        got = sha256_file(extra_path) if extra_path.is_file() else "missing"
        results.append(
            check(
                f"checksum_{extra['kind']}",
                got == extra["sha256"],
                f"{extra['artifact']}: "
                + ("ok" if got == extra["sha256"] else f"checksum mismatch: expected {extra['sha256']} got {got}"),
            )
        )
    if error:
        results.append(check("decode", False, error))
        return None, results
    if not size_ok:
        return None, results
    return raw, results


# --- handlers --------------------------------------------------------------------------------


@handler(
    "backup.create",
    config=CreateConfig,
    aliases=["backup.run", "db.backup"],
    destructive=True,
    requires=("pg_dump",),
)
def backup_create(ctx, config: CreateConfig) -> dict:
    """Take a backup (PostgreSQL, MariaDB/MySQL, SQLite, Redis, files), write its manifest, catalog it,
    copy it off-site, apply retention.

    Destructive only through retention (which honours dry_run). With dry_run nothing is written.
    """
    source = resolve_source(ctx, config.source)
    destination, copy_to = resolve_destination(ctx, config.destination)
    if config.copy_to:
        copy_to = Path(config.copy_to)
    if config.encrypt:
        crypto.load_key(config.encryption_key_env)  # fail before any work
    repos = offsite.repositories(ctx, config.destination) if config.offsite else []
    if ctx.dry_run:
        ctx.info(
            "plan",
            f"would back up {source.name} ({source.type}) to {destination / source.name}",
            action="create",
            path=str(destination / source.name),
        )
        result: dict[str, Any] = {
            "summary": f"dry run: would back up {source.name} to {destination}",
            "dry_run": True,
            "source": source.name,
            "destination": str(destination),
        }
        for repo in repos:
            ctx.info("plan", f"would copy it to off-site repository {repo.name}", action="upload")
        if config.retention:
            result["retention"] = apply_retention(ctx, source.name, config.retention, dry_run=True)
        if repos:
            result["offsite_retention"] = [replicate.prune(ctx, r, source.name, dry_run=True) for r in repos]
        return result
    private = destination_private(ctx, config.destination)
    entry = create_backup(
        ctx, source, config, destination, copy_to, destination_name=config.destination, private=private
    )
    m = entry["manifest"]
    result = {
        "summary": (
            f"backed up {source.name} ({source.type}): {m['raw_size']} -> {m['size']} bytes "
            f"{m['compression']} in {m['duration_s']:.1f}s, sha256 {m['sha256'][:12]}"
        ),
        "backup_id": entry["id"],
        "path": entry["path"],
        "size": m["size"],
        "raw_size": m["raw_size"],
        "sha256": m["sha256"],
        "row_counts": m.get("row_counts"),
        "copies": entry["copies"],
    }
    if repos:
        uploads = replicate.sync(ctx, repos, source.name)
        result["offsite"] = uploads
        failed = [u for u in uploads if not u["ok"]]
        if failed:
            result["outcome"] = "critical"
            result["summary"] += f"; off-site copy failed: {failed[0]['message']}"
    if config.retention:
        result["retention"] = apply_retention(ctx, source.name, config.retention, dry_run=False)
    if repos:
        result["offsite_retention"] = [replicate.prune(ctx, r, source.name, dry_run=False) for r in repos]
    return result


@handler("backup.prune", config=PruneConfig, destructive=True)
def backup_prune(ctx, config: PruneConfig) -> dict:
    """Apply a retention policy to one source's backups (dry_run lists what would go)."""
    name = _source_name(ctx, config.source)
    assert name is not None
    out = apply_retention(ctx, name, config.retention, ctx.dry_run)
    gone = out.get("deleted", out.get("would_delete", []))
    verb = "would delete" if ctx.dry_run else "deleted"
    summary = f"{name}: {verb} {len(gone)} backup(s), kept {len(out['kept'])}"
    if config.offsite:
        repos = replicate.repositories_of(ctx, catalog.entries(ctx.records(catalog.DOMAIN), name))
        out["offsite"] = [replicate.prune(ctx, r, name, ctx.dry_run) for r in repos]
        for r in out["offsite"]:
            gone_there = r.get("deleted", r.get("would_delete", []))
            summary += f"; {r['repository']}: {verb} {len(gone_there)}"
            if r["locked"]:
                summary += f", {len(r['locked'])} still locked"
    return {"summary": summary, **out}


def verify_entry(
    ctx,
    entry: dict[str, Any],
    config: VerifyConfig,
    on_restored: OnRestored | None = None,
    repo: offsite.Repository | None = None,
) -> tuple[bool, list[dict[str, Any]]]:
    """Verify one catalogued backup (or its copy in ``repo``) without ever writing to its files."""
    work_dir = Path(tempfile.mkdtemp(prefix="upkeep-verify-", dir=config.scratch_dir))
    try:
        if repo is not None:
            try:
                entry = replicate.fetch(ctx, repo, entry, work_dir)
            except offsite.OffsiteError as exc:
                return False, [check("download", False, str(exc))]
        raw, results = _decode(ctx, entry, config, work_dir, stream=True)
        if raw is not None:
            server = server_for(ctx, config.scratch_target, config.source, entry, "config.scratch_target")
            entry = _current_assertions(ctx, entry)
            results += kind(entry["type"]).verify(ctx, entry, raw, config, work_dir, server, on_restored)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return all(r["ok"] for r in results), results


@handler(
    "backup.verify",
    config=VerifyConfig,
    aliases=["backup.check"],
    requires=("pg_restore",),
)
def backup_verify(ctx, config: VerifyConfig) -> dict:
    """Verify backups: size, checksum, readable contents, a test restore with row counts and
    assertions, and age against the RPO. Results are stored on the catalog entries."""
    records = ctx.records(catalog.DOMAIN)
    name = _source_name(ctx, config.source)
    names = [name] if name else catalog.sources(records)
    repo = offsite.find(ctx, config.from_repository) if config.from_repository else None
    try:
        return _verify(ctx, config, records, name, names, repo)
    finally:
        if repo is not None:
            repo.close()


def held_by(entry: dict[str, Any], repo: offsite.Repository | None) -> bool:
    """Whether the entry has a copy to verify or restore: locally, or in ``repo``."""
    if repo is None:
        return not entry.get("local_deleted")
    copy = (entry.get("offsite") or {}).get(repo.name) or {}
    return copy.get("status") in ("uploaded", "verified", "broken")


def verified_in(entry: dict[str, Any], repo: offsite.Repository | None) -> bool:
    """Whether the last verification of the entry (or of its copy in ``repo``) passed."""
    if repo is None:
        return entry.get("status") == "verified" and not entry.get("local_deleted")
    return ((entry.get("offsite") or {}).get(repo.name) or {}).get("status") == "verified"


def _content_verified(entry: dict[str, Any], repo: offsite.Repository) -> bool:
    """The backup was verified locally and its copy in ``repo`` is not known to be broken."""
    copy = (entry.get("offsite") or {}).get(repo.name) or {}
    return entry.get("status") == "verified" and copy.get("status") != "broken"


def _verify(ctx, config: VerifyConfig, records, name: str | None, names: list[str], repo) -> dict:
    chosen: list[dict[str, Any]] = []
    for n in names:
        all_entries = [e for e in catalog.entries(records, n) if held_by(e, repo)]
        if config.which == "latest":
            chosen += all_entries[:1]
        elif config.which == "all":
            chosen += all_entries
    if config.which not in ("latest", "all"):
        chosen = [catalog.find(records, config.which, name)]
        names = [chosen[0]["source"]]
    ctx.scope(
        [f"{e['source']}/{e['id']}" for e in chosen],
        f"which: {config.which} of " + (f"source {name}" if name else "every catalogued source"),
        what="backups to verify",
    )
    findings: list[dict[str, Any]] = []
    verified = []
    for i, entry in enumerate(chosen):
        ctx.check_cancelled()
        ctx.progress(i / max(len(chosen), 1), f"verifying {entry['source']}/{entry['id']}")
        started = time.monotonic()
        ok, checks = verify_entry(ctx, entry, config, repo=repo)
        if repo is None:
            catalog.record_verification(records, entry, ok, checks, ctx.now(), round(time.monotonic() - started, 3))
        else:
            replicate.record_verification(ctx, repo.name, entry, ok, checks)
        failed = [c for c in checks if not c["ok"]]
        label = f"{entry['source']}/{entry['id']}" + (f" in repository {repo.name}" if repo else "")
        if failed:
            message = (f"repository {repo.name}: " if repo else "") + "; ".join(
                f"{c['check']}: {c['message']}" for c in failed
            )
            findings.append({"severity": "critical", "item": label, "message": message})
            ctx.error("backup_broken", f"{label} is broken: {message}", backup_id=entry["id"])
        else:
            ctx.info("backup_verified", f"{label} verified", backup_id=entry["id"])
        verified.append({"id": entry["id"], "source": entry["source"], "ok": ok, "checks": checks})
    now = ctx.now()
    for n in names:
        good = [e for e in catalog.entries(records, n) if verified_in(e, repo)]
        if not good:
            where = f" in repository {repo.name}" if repo else ""
            findings.append({"severity": "warning", "item": n, "message": f"no verified backup of {n}{where}"})
            continue
        age = now - datetime.fromisoformat(good[0]["created_at"])
        if age > timedelta(hours=config.rpo_hours):
            findings.append(
                {
                    "severity": "warning",
                    "item": n,
                    "message": (
                        f"newest verified backup of {n} is {age.total_seconds() / 3600:.1f} h old "
                        f"(RPO {config.rpo_hours:g} h)"
                    ),
                }
            )
    if not chosen:
        findings.append({"severity": "critical", "item": name or "*", "message": "no backups in the catalog"})
    severities = {f["severity"] for f in findings}
    outcome = "critical" if "critical" in severities else "warning" if "warning" in severities else "ok"
    bad = sum(1 for v in verified if not v["ok"])
    summary = f"verified {len(verified) - bad}/{len(verified)} backup(s)"
    if bad:
        summary += f"; broken: {findings[0]['message']}"
    elif findings:
        summary += f"; {findings[0]['message']}"
    return {"outcome": outcome, "summary": summary, "backups": verified, "findings": findings}


def _pick(ctx, config: RestoreConfig, repo: offsite.Repository | None) -> dict[str, Any]:
    records = ctx.records(catalog.DOMAIN)
    name = _source_name(ctx, config.source)
    if config.backup == "latest":
        if name is None:
            known = catalog.sources(records)
            if len(known) != 1:
                raise ConfigError(
                    "backup: latest needs source (which source's latest backup?)",
                    hint=f"catalogued sources: {', '.join(known) or 'none'}",
                    field="config.source",
                )
            name = known[0]
        return catalog.latest(
            records,
            name,
            verified_only=not config.allow_unverified,
            where=lambda e: held_by(e, repo),
            verified=lambda e: verified_in(e, repo) or (repo is not None and _content_verified(e, repo)),
        )
    entry = catalog.find(records, config.backup, name)
    if entry.get("status") == "broken" and not config.allow_unverified:
        raise UserError(
            f"backup {entry['id']} is marked broken by its last verification",
            hint="choose another backup, or set allow_unverified: true",
            field="config.backup",
        )
    return entry


@handler(
    "backup.restore",
    config=RestoreConfig,
    aliases=["backup.recover"],
    destructive=True,
    needs_confirm=True,
    requires=("pg_restore",),
)
def backup_restore(ctx, config: RestoreConfig) -> dict:
    """Restore a catalogued backup (by id, or the latest verified one) into the original or a new
    database. dry_run prints the plan; a real restore needs per-run confirmation (--yes)."""
    if config.target_path:
        config = config.model_copy(update={"target_path": resolve_path(ctx, config.target_path, "config.target_path")})
    repo = offsite.find(ctx, config.from_repository) if config.from_repository else None
    try:
        return _restore(ctx, config, repo)
    finally:
        if repo is not None:
            repo.close()


def _restore(ctx, config: RestoreConfig, repo: offsite.Repository | None) -> dict[str, Any]:
    entry = _pick(ctx, config, repo)
    if not held_by(entry, repo):
        where = f"a copy in repository {repo.name}" if repo else "its local files (retention removed them)"
        raise UserError(
            f"backup {entry['id']} has no {where}",
            hint="restore it from an off-site repository: set from_repository",
            field="config.from_repository",
        )
    source_kind = kind(entry["type"])
    server = server_for(ctx, config.target, config.source, entry, "config.target")
    if source_kind.uses_server and server is None:
        raise ConfigError(f"no {entry['type']} server to restore into", field="config.target")
    plan = source_kind.restore_plan(ctx, entry, config, server)
    if repo is not None:
        plan["steps"].insert(0, f"download backup {entry['id']} from repository {repo.name} and check its sha256")
    plan = {
        "backup_id": entry["id"],
        "source": entry["source"],
        "file": entry["path"],
        "repository": repo.name if repo else None,
        "size": entry["manifest"]["size"],
        "status": entry.get("status"),
        **plan,
    }
    if ctx.dry_run:
        for step in plan["steps"]:
            ctx.info("plan", f"would {step}", action="restore", backup_id=entry["id"])
        return {
            "summary": f"dry run: would restore {entry['source']}/{entry['id']} "
            f"into {plan.get('database') or plan.get('target_path')}",
            "dry_run": True,
            "plan": plan,
        }
    if not ctx.confirm:
        raise UserError("restore needs confirmation: rerun with --yes (or confirm in the API request)")
    if entry.get("status") != "verified":
        ctx.warning("unverified", f"restoring {entry['id']} which has status {entry.get('status')}")
    safety = None
    safety_spec = source_kind.safety_spec(entry, plan, server)
    if config.safety_backup and plan.get("exists") and safety_spec is not None:
        safety = _safety_backup(ctx, entry, config, safety_spec, plan)
    work_dir = Path(tempfile.mkdtemp(prefix="upkeep-restore-", dir=config.scratch_dir))
    try:
        fetched = replicate.fetch(ctx, repo, entry, work_dir) if repo is not None else entry
        raw, checks = _decode(ctx, fetched, config, work_dir)
        if raw is None:
            failed = "; ".join(c["message"] for c in checks if not c["ok"])
            raise UserError(f"backup {entry['id']} failed its integrity checks, nothing restored: {failed}")
        try:
            if config.stop_command:
                ctx.run_command(config.stop_command)
            results = source_kind.restore(ctx, entry, raw, plan, config, server, work_dir)
        finally:
            if config.start_command:
                started = ctx.run_command(config.start_command, check=False)
                if started.returncode != 0:
                    ctx.error("start_failed", f"start_command exited with {started.returncode}: {started.tail(3)}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    ok = all(r["ok"] for r in results)
    where = plan.get("database") or plan.get("target_path")
    return {
        "outcome": "ok" if ok else "critical",
        "summary": f"restored {entry['source']}/{entry['id']} into {where}"
        + ("" if ok else ": " + "; ".join(r["message"] for r in results if not r["ok"])),
        "plan": plan,
        "checks": results,
        "safety_backup": safety,
    }


def _safety_backup(
    ctx, entry: dict[str, Any], config: RestoreConfig, spec: dict[str, Any], plan: dict[str, Any]
) -> str:
    source = kind(entry["type"])(name=safe_name(f"{entry['source']}-safety"), spec=spec)
    create_cfg = CreateConfig(
        source=source.name,
        pg_dump_path=config.pg_dump_path,
        pg_bin_dir=config.pg_bin_dir,
        mysql_bin_dir=config.mysql_bin_dir,
    )
    if config.safety_destination:
        destination = resolve_destination(ctx, config.safety_destination)[0]
    else:
        destination = Path(entry["path"]).parent.parent
    private = destination_private(ctx, config.safety_destination)
    made = create_backup(
        ctx, source, create_cfg, destination, None, tags=["safety", f"before-restore-{entry['id']}"], private=private
    )
    ctx.info(
        "safety_backup",
        f"safety backup {made['id']} of {plan.get('database') or plan.get('target_path')}",
        backup_id=made["id"],
        path=made["path"],
    )
    return made["id"]
