"""Reading a catalogued backup back: which copy is held and verified, its key, the size and checksum
checks and the decoded content, the server it is restored on, and verifying one entry (shared by
``backup.verify``, ``backup.restore`` and ``backup.drill``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from upkeep.errors import ConfigError
from upkeep.handlers.backup import crypto, offsite, replicate
from upkeep.handlers.backup.checks import check
from upkeep.handlers.backup.config import VerifyConfig
from upkeep.handlers.backup.sources import SourceField, kind, resolve_source
from upkeep.handlers.backup.sources.base import OnRestored
from upkeep.handlers.backup.stream import (
    ArtifactReader,
    DecodedStream,
    sha256_file,
)


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


def current_assertions(ctx, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its source's assertions as upkeep.yaml has them now (the catalogued ones when
    the source is not in the inventory any more)."""
    name = entry.get("target_name")
    if name and name in ctx.targets.names("databases"):
        return {**entry, "assertions": list(ctx.targets.get("databases", name).get("assertions") or [])}
    return entry


def key_for(entry: dict[str, Any], config) -> bytes | None:
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


def decode(
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
    key = key_for(entry, config)
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
        raw, results = decode(ctx, entry, config, work_dir, stream=True)
        if raw is not None:
            server = server_for(ctx, config.scratch_target, config.source, entry, "config.scratch_target")
            entry = current_assertions(ctx, entry)
            results += kind(entry["type"]).verify(ctx, entry, raw, config, work_dir, server, on_restored)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return all(r["ok"] for r in results), results


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


def content_verified(entry: dict[str, Any], repo: offsite.Repository) -> bool:
    """The backup was verified locally and its copy in ``repo`` is not known to be broken."""
    copy = (entry.get("offsite") or {}).get(repo.name) or {}
    return entry.get("status") == "verified" and copy.get("status") != "broken"
