"""``backup.prune``: apply a retention policy to one source's backups, here and off-site."""

from __future__ import annotations

from upkeep.engine.registry import handler
from upkeep.handlers.backup import catalog, replicate
from upkeep.handlers.backup.config import PruneConfig
from upkeep.handlers.backup.retention import apply_retention
from upkeep.handlers.backup.sources import source_name


@handler("backup.prune", config=PruneConfig, destructive=True)
def backup_prune(ctx, config: PruneConfig) -> dict:
    """Apply a retention policy to one source's backups (dry_run lists what would go)."""
    name = source_name(ctx, config.source)
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
