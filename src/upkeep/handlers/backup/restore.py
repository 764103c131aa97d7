"""``backup.restore``: restore a catalogued backup (checked first) into the original or a new database,
with a safety backup of what it overwrites."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from upkeep.engine.registry import handler
from upkeep.errors import ConfigError, UserError
from upkeep.handlers.backup import catalog, offsite, replicate
from upkeep.handlers.backup.config import CreateConfig, RestoreConfig
from upkeep.handlers.backup.destinations import destination_private, resolve_destination
from upkeep.handlers.backup.reading import content_verified, decode, held_by, server_for, verified_in
from upkeep.handlers.backup.sources import kind, resolve_path, source_name
from upkeep.handlers.backup.sources.base import safe_name
from upkeep.handlers.backup.taking import create_backup


def _pick(ctx, config: RestoreConfig, repo: offsite.Repository | None) -> dict[str, Any]:
    records = ctx.records(catalog.DOMAIN)
    name = source_name(ctx, config.source)
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
            verified=lambda e: verified_in(e, repo) or (repo is not None and content_verified(e, repo)),
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
        raw, checks = decode(ctx, fetched, config, work_dir)
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
