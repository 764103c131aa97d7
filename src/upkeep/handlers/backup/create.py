"""``backup.create``: take a backup, catalog it, copy it off-site, apply retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upkeep.engine.registry import handler
from upkeep.handlers.backup import crypto, offsite, replicate
from upkeep.handlers.backup.config import CreateConfig
from upkeep.handlers.backup.destinations import destination_private, resolve_destination
from upkeep.handlers.backup.retention import apply_retention
from upkeep.handlers.backup.sources import resolve_source
from upkeep.handlers.backup.taking import create_backup

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
