"""``backup.verify``: size, checksum, readable contents, a test restore, age against the RPO."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from upkeep.engine.registry import handler
from upkeep.handlers.backup import catalog, offsite, replicate
from upkeep.handlers.backup.config import VerifyConfig
from upkeep.handlers.backup.reading import held_by, verified_in, verify_entry
from upkeep.handlers.backup.sources import source_name
from upkeep.handlers.findings import outcome_of


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
    name = source_name(ctx, config.source)
    names = [name] if name else catalog.sources(records)
    repo = offsite.find(ctx, config.from_repository) if config.from_repository else None
    try:
        return _verify(ctx, config, records, name, names, repo)
    finally:
        if repo is not None:
            repo.close()


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
    outcome = outcome_of(findings)
    bad = sum(1 for v in verified if not v["ok"])
    summary = f"verified {len(verified) - bad}/{len(verified)} backup(s)"
    if bad:
        summary += f"; broken: {findings[0]['message']}"
    elif findings:
        summary += f"; {findings[0]['message']}"
    return {"outcome": outcome, "summary": summary, "backups": verified, "findings": findings}
