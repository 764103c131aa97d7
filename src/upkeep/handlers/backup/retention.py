"""Retention: which backups of one source to keep, and why, as pure functions (``select``); and
``apply_retention``, which deletes the rest (after each ``backup.create``, and in ``backup.prune``).

Policy fields (all optional; ``None`` means the rule is off):

- ``keep_last``: the N newest backups.
- ``keep_daily`` / ``keep_weekly`` / ``keep_monthly``: grandfather-father-son. For the N most recent
  days (ISO weeks, months) that have backups, the newest backup of that period is kept (UTC periods).
- ``max_age_days``: a backup older than this loses every keep_* reason above.
- ``min_keep`` (default 1): the N newest backups are always kept, whatever the other rules say.

Two protections always apply: the NEWEST VERIFIED backup is never deleted, and ``min_keep``. With no
keep_* rule at all, every backup younger than ``max_age_days`` (or every backup, without it) is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field

from upkeep.bounds import MAX_COUNT, MAX_DAYS
from upkeep.engine.registry import HandlerConfig
from upkeep.handlers.backup import catalog
from upkeep.handlers.backup.manifest import manifest_path


@dataclass(frozen=True)
class BackupInfo:
    id: str
    created_at: datetime
    verified: bool = False


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    max_age_days: float | None = None
    min_keep: int = 1

    @property
    def has_keep_rules(self) -> bool:
        return any(v is not None for v in (self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly))


@dataclass
class Decision:
    keep: dict[str, list[str]] = field(default_factory=dict)  # id -> reasons
    delete: list[str] = field(default_factory=list)  # ids, newest first


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _month(t: datetime) -> str:
    return t.strftime("%Y-%m")


def _buckets(
    ordered: list[BackupInfo],
    count: int | None,
    key: Callable[[datetime], str],
    label: str,
    reasons: dict[str, list[str]],
) -> None:
    if not count:
        return
    seen: set[str] = set()
    for b in ordered:
        period = key(b.created_at)
        if period in seen:
            continue
        if len(seen) >= count:
            break
        seen.add(period)
        reasons[b.id].append(f"{label} {period}")


def select(backups: Iterable[BackupInfo], policy: Policy, now: datetime) -> Decision:
    """Decide which backups to keep (with reasons) and which to delete. Pure: no I/O."""
    ordered = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    reasons: dict[str, list[str]] = {b.id: [] for b in ordered}
    if policy.has_keep_rules:
        for b in ordered[: policy.keep_last or 0]:
            reasons[b.id].append("keep_last")
        _buckets(ordered, policy.keep_daily, _day, "daily", reasons)
        _buckets(ordered, policy.keep_weekly, _week, "weekly", reasons)
        _buckets(ordered, policy.keep_monthly, _month, "monthly", reasons)
    else:
        for b in ordered:
            reasons[b.id].append("no keep rule")
    if policy.max_age_days is not None:
        limit = now - timedelta(days=policy.max_age_days)
        for b in ordered:
            if b.created_at < limit:
                reasons[b.id] = []
    for b in ordered[: max(policy.min_keep, 0)]:
        reasons[b.id].append("min_keep")
    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        reasons[newest_verified.id].append("newest verified")
    decision = Decision()
    for b in ordered:
        if reasons[b.id]:
            decision.keep[b.id] = reasons[b.id]
        else:
            decision.delete.append(b.id)
    return decision


class RetentionConfig(HandlerConfig):
    """Grandfather-father-son retention per source (see ``backup/retention.py``)."""

    keep_last: int | None = Field(None, ge=1, le=MAX_COUNT, description="Keep the N newest backups.")
    keep_daily: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Keep the newest backup of each of the last N days."
    )
    keep_weekly: int | None = Field(None, ge=1, le=MAX_COUNT, description="... of each of the last N ISO weeks.")
    keep_monthly: int | None = Field(None, ge=1, le=MAX_COUNT, description="... of each of the last N months.")
    max_age_days: float | None = Field(None, gt=0, le=MAX_DAYS, description="Older backups lose every keep_* reason.")
    min_keep: int = Field(1, ge=0, le=MAX_COUNT, description="The N newest backups are always kept.")

    def policy(self) -> Policy:
        return Policy(**self.model_dump())

    def horizon_days(self) -> float | None:
        """How long this policy surely keeps a backup: ``max_age_days``, else the shortest of
        keep_daily (N days), keep_weekly (7N), keep_monthly (28N); None when only counts decide."""
        if self.max_age_days is not None:
            return self.max_age_days
        spans = [n * d for n, d in ((self.keep_daily, 1), (self.keep_weekly, 7), (self.keep_monthly, 28)) if n]
        return min(spans) if spans else None


def apply_retention(ctx, source_name: str, config: RetentionConfig, dry_run: bool) -> dict[str, Any]:
    records = ctx.records(catalog.DOMAIN)
    by_id = {e["id"]: e for e in catalog.entries(records, source_name) if not e.get("local_deleted")}
    infos = [
        BackupInfo(e["id"], datetime.fromisoformat(e["created_at"]), e.get("status") == "verified")
        for e in by_id.values()
    ]
    decision = select(infos, config.policy(), ctx.now())
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
