"""Taking one backup of a resolved source: artifacts written privately and atomically, a manifest,
an optional checked second copy, the catalog entry. ``backup.create`` and a restore's safety backup
use it."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from upkeep.errors import UserError
from upkeep.handlers.backup import catalog, crypto
from upkeep.handlers.backup.config import CreateConfig
from upkeep.handlers.backup.manifest import manifest_path, new_backup_id, write_manifest
from upkeep.handlers.backup.sources.base import Source
from upkeep.handlers.backup.stream import (
    EXTENSIONS,
    ArtifactWriter,
    fsync_dir,
    sha256_file,
    temp_name,
)
from upkeep.private import PRIVATE, Private


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
