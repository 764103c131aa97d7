"""Backup ids, artifact names and the manifest written beside every artifact.

The manifest (``<artifact>.manifest.json``) is a JSON object::

    {"manifest_version": 1, "id", "source", "type" (postgres|sqlite|redis|files), "format"
     (custom|directory|sqlite|rdb|tar), "compression" (zstd|gzip|none, as configured),
     "stream_compression" (what upkeep applied around the tool's output), "dump_compression"
     (pg_dump -Z level, postgres only), "encryption_key_id" (first 8 hex of sha256(key) or null),
     "artifact" (file name), "size" (bytes stored), "raw_size" (bytes before compression/encryption),
     "sha256" (of the stored bytes), "started_at", "finished_at", "duration_s", "server_version",
     "tool_versions", "row_counts" ({"schema.table": n} in the dump's snapshot; entries for files,
     keys for redis), "table_checksums" (optional), "snapshot", "extra_artifacts" ([{kind, artifact,
     size, sha256}]), "tags"}
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from upkeep.handlers.backup.stream import write_atomic
from upkeep.private import PRIVATE, Private

MANIFEST_SUFFIX = ".manifest.json"


def new_backup_id(now: datetime) -> str:
    """Sortable, unique: ``20240131T020000Z-1a2b3c``."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def write_manifest(artifact: Path, manifest: dict[str, Any], private: Private = PRIVATE) -> Path:
    path = manifest_path(artifact)
    write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True).encode(), private)
    return path
