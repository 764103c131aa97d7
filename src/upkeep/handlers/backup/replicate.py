"""Copies of catalogued backups in off-site repositories: upload, fetch for verify/restore, prune.

A catalog entry records its copies under ``offsite``::

    "offsite": {"<repository>": {"status": "pending" | "uploaded" | "verified" | "broken",
                                 "keys": {"artifact": ..., "manifest": ..., "extras": [...]},
                                 "uploaded_at", "locked_until", "verified_at", "verification"}}

An entry whose local files retention removed (``local_deleted``) stays in the catalog while a
repository still holds a copy, so it can still be verified and restored from there.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from upkeep.errors import UserError
from upkeep.handlers.backup import catalog, offsite, retention
from upkeep.handlers.backup.manifest import manifest_path
from upkeep.handlers.backup.offsite import OffsiteError, Repository


def _files(entry: dict[str, Any]) -> list[tuple[str, Path, str | None]]:
    """(role, local path, expected sha256) of everything a backup wrote; the manifest goes last."""
    main = Path(entry["path"])
    out: list[tuple[str, Path, str | None]] = [("artifact", main, entry["manifest"]["sha256"])]
    for extra in entry["manifest"].get("extra_artifacts", []):
        out.append(("extra", main.with_name(extra["artifact"]), extra["sha256"]))
    out.append(("manifest", manifest_path(main), None))
    return out


def _set(records, entry: dict[str, Any], repo: str, **fields: Any) -> dict[str, Any]:
    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is None:
            return None
        current = dict(current)
        copies = dict(current.get("offsite") or {})
        if fields.get("_remove"):
            copies.pop(repo, None)
        else:
            copies[repo] = {**copies.get(repo, {}), **fields}
        current["offsite"] = copies
        return current

    return records.update(catalog.key(entry["source"], entry["id"]), change) or entry


def upload(ctx, repo: Repository, entry: dict[str, Any]) -> dict[str, Any]:
    """Upload one backup (artifacts, then manifest), each read back and checked against its sha256."""
    records = ctx.records(catalog.DOMAIN)
    started = ctx.now()
    lock_until = repo.lock_until(datetime.fromisoformat(entry["created_at"]))
    keys: dict[str, Any] = {"extras": []}
    _set(records, entry, repo.name, status="pending")
    stats: dict[str, int] = {}
    for role, path, sha in _files(entry):
        key = repo.key(entry["source"], path.name)
        if sha is None:  # the manifest: small, checked by its own digest
            import hashlib

            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        for name, value in (repo.upload(ctx, path, key, sha, lock_until) or {}).items():
            stats[name] = stats.get(name, 0) + value
        got = repo.object_sha256(ctx, key)
        if got != sha:
            repo.delete(key)
            raise repo.error(f"{key} read back with sha256 {got}, the manifest says {sha}; the copy was removed")
        if role == "extra":
            keys["extras"].append(key)
        else:
            keys[role] = key
    entry = _set(
        records,
        entry,
        repo.name,
        status="uploaded",
        keys=keys,
        uploaded_at=ctx.now().isoformat(),
        locked_until=lock_until.isoformat() if lock_until else None,
    )
    seconds = (ctx.now() - started).total_seconds()
    ctx.info(
        "offsite_uploaded",
        f"{entry['source']}/{entry['id']} copied to {repo.name} and checked (sha256 {entry['manifest']['sha256'][:12]})"
        + (f", locked until {lock_until:%Y-%m-%d}" if lock_until else ""),
        repository=repo.name,
        backup_id=entry["id"],
        seconds=round(seconds, 3),
        **stats,
    )
    return entry


def sync(ctx, repos: list[Repository], source: str) -> list[dict[str, Any]]:
    """Upload every backup of ``source`` that a repository lacks (the newest first); one failed
    repository does not stop the others. Returns one result per (repository, backup) tried."""
    records = ctx.records(catalog.DOMAIN)
    results = []
    for repo in repos:
        try:
            for entry in catalog.entries(records, source):
                copy = (entry.get("offsite") or {}).get(repo.name) or {}
                if copy.get("status") in ("uploaded", "verified") or entry.get("local_deleted"):
                    continue
                if entry.get("status") == "broken":
                    continue
                try:
                    upload(ctx, repo, entry)
                    results.append({"repository": repo.name, "id": entry["id"], "ok": True})
                except OffsiteError as exc:
                    ctx.error("offsite_failed", str(exc), repository=repo.name, backup_id=entry["id"])
                    results.append({"repository": repo.name, "id": entry["id"], "ok": False, "message": str(exc)})
                    break  # the repository is likely down: the next run catches up
        finally:
            repo.close()
    return results


def fetch(ctx, repo: Repository, entry: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Download a backup's copy into ``work_dir`` (private); returns the entry pointing at it."""
    copy = (entry.get("offsite") or {}).get(repo.name)
    if not copy or copy.get("status") not in ("uploaded", "verified", "broken"):
        raise UserError(
            f"backup {entry['source']}/{entry['id']} has no copy in repository {repo.name}",
            hint="`upkeep backups show ID` lists its copies",
            field="config.from_repository",
        )
    local = work_dir / Path(entry["path"]).name
    ctx.info("offsite_download", f"downloading {copy['keys']['artifact']} from {repo.name}", repository=repo.name)
    repo.download(ctx, copy["keys"]["artifact"], local)
    for key in copy["keys"].get("extras", []):
        repo.download(ctx, key, work_dir / Path(key).name)
    remote_manifest = work_dir / "remote.manifest.json"
    repo.download(ctx, copy["keys"]["manifest"], remote_manifest)
    if json.loads(remote_manifest.read_text()).get("sha256") != entry["manifest"]["sha256"]:
        raise repo.error(f"the manifest of {entry['id']} there names another artifact than the catalog's")
    return {**entry, "path": str(local)}


def record_verification(ctx, repo: str, entry: dict[str, Any], ok: bool, checks: list[dict[str, Any]]) -> None:
    _set(
        ctx.records(catalog.DOMAIN),
        entry,
        repo,
        status="verified" if ok else "broken",
        verified_at=ctx.now().isoformat(),
        verification={"ok": ok, "checks": checks},
    )


def prune(ctx, repo: Repository, source: str, dry_run: bool) -> dict[str, Any]:
    """Apply the repository's own retention to its copies of ``source``'s backups."""
    policy = repo.policy
    if policy is None:
        return {"repository": repo.name, "kept": [], "deleted": [], "locked": []}
    records = ctx.records(catalog.DOMAIN)
    held = {
        e["id"]: e
        for e in catalog.entries(records, source)
        if ((e.get("offsite") or {}).get(repo.name) or {}).get("status") in ("uploaded", "verified", "broken")
    }
    infos = [
        retention.BackupInfo(
            e["id"],
            datetime.fromisoformat(e["created_at"]),
            e.get("status") == "verified" and e["offsite"][repo.name].get("status") != "broken",
        )
        for e in held.values()
    ]
    decision = retention.select(infos, policy, ctx.now())
    deleted, locked = [], []
    try:
        for backup_id in decision.delete:
            entry = held[backup_id]
            keys = entry["offsite"][repo.name]["keys"]
            if dry_run:
                ctx.info("plan", f"would delete {source}/{backup_id} from {repo.name}", action="delete")
                deleted.append({"id": backup_id})
                continue
            outcomes = [repo.delete(k) for k in [keys["artifact"], *keys.get("extras", []), keys["manifest"]]]
            still = [o for o in outcomes if not o.deleted]
            if still:
                until = entry["offsite"][repo.name].get("locked_until") or still[0].locked_until
                locked.append({"id": backup_id, "locked_until": until})
                ctx.info(
                    "offsite_locked",
                    f"{repo.name}: {source}/{backup_id} is under object lock until {until}; kept for now",
                    repository=repo.name,
                )
                continue
            entry = _set(records, entry, repo.name, _remove=True)
            if entry.get("local_deleted") and not entry.get("offsite"):
                catalog.remove(records, entry)
            ctx.info("deleted", f"deleted {source}/{backup_id} from {repo.name}", repository=repo.name)
            deleted.append({"id": backup_id})
    finally:
        repo.close()
    return {
        "repository": repo.name,
        "kept": [{"id": i, "reasons": r} for i, r in decision.keep.items()],
        ("would_delete" if dry_run else "deleted"): deleted,
        "locked": locked,
    }


def repositories_of(ctx, entries: list[dict[str, Any]]) -> list[Repository]:
    """The repositories of the destinations these entries were written to."""
    seen: dict[str, Repository] = {}
    for dest in sorted({e.get("destination") for e in entries if e.get("destination")}):
        for repo in offsite.repositories(ctx, dest):
            seen.setdefault(repo.name, repo)
    return list(seen.values())
