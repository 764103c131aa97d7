"""Backup use cases the UI and the API share: the per-source overview, verify now, restore plan.

The overview reads the backup catalog (records domain ``backup``) once: per source the newest
backup, the newest verified one and its age against the source's RPO, and the recent sizes.
A source's RPO is the smallest ``rpo_hours`` of the ``backup.verify`` tasks that check it (one
naming it, or one without a source, which checks every source); with none, backup.verify's
default. Verifying and planning a restore are runs like any other (``create_adhoc_run``), so the
trust boundary and the audit apply as to any run asked for through the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from upkeep.errors import NotFound
from upkeep.handlers.backup import catalog
from upkeep.store.db import Store
from upkeep.store.models import ScheduledTask
from upkeep.store.records import Records

SIZES = 20  # sizes kept for the trend
VERIFY_TYPE = "backup.verify"


def _default_rpo_hours() -> float:
    from upkeep.handlers.backup import default_rpo_hours

    return default_rpo_hours()


def _rpo_by_source(store: Store) -> tuple[dict[str, tuple[float, str]], tuple[float, str] | None]:
    """``{source: (hours, task)}`` from the verify tasks naming a source, and the tightest of those
    that check every source."""
    named: dict[str, tuple[float, str]] = {}
    every: tuple[float, str] | None = None
    with store.read() as s:
        rows = s.execute(
            sa.select(ScheduledTask.name, ScheduledTask.config).where(ScheduledTask.task_type == VERIFY_TYPE)
        ).all()
    for name, config in rows:
        config = config or {}
        hours = float(config.get("rpo_hours") or _default_rpo_hours())
        source = config.get("source")
        if isinstance(source, dict):
            source = source.get("name")
        if source:
            if source not in named or hours < named[source][0]:
                named[source] = (hours, name)
        elif every is None or hours < every[0]:
            every = (hours, name)
    return named, every


def overview(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Per catalogued source: newest and newest verified backup, age against the RPO, sizes."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for entry in catalog.entries(Records(store, catalog.DOMAIN)):  # newest first
        by_source.setdefault(entry["source"], []).append(entry)
    named, every = _rpo_by_source(store)
    out = []
    for source in sorted(by_source):
        entries = by_source[source]
        newest = entries[0]
        verified = next((e for e in entries if e.get("status") == "verified"), None)
        rpo_hours, rpo_from = named.get(source) or every or (_default_rpo_hours(), None)
        age_hours = None
        if verified is not None:
            age_hours = (now - datetime.fromisoformat(verified["created_at"])).total_seconds() / 3600
        out.append(
            {
                "source": source,
                "type": newest.get("type"),
                "count": len(entries),
                "newest": catalog.summary_row(newest, now),
                "newest_verified": catalog.summary_row(verified, now) if verified else None,
                "broken": sum(1 for e in entries if e.get("status") == "broken"),
                "verified_age_hours": round(age_hours, 2) if age_hours is not None else None,
                "rpo_hours": rpo_hours,
                "rpo_from": rpo_from,
                "within_rpo": age_hours is not None and age_hours <= rpo_hours,
                "sizes": [
                    {"id": e["id"], "created_at": e["created_at"], "size": (e.get("manifest") or {}).get("size")}
                    for e in reversed(entries[:SIZES])
                ],
            }
        )
    return out


def _known(store: Store, source: str, backup: str) -> None:
    records = Records(store, catalog.DOMAIN)
    if source not in catalog.sources(records):
        raise NotFound(f"no backups of source {source!r} in the catalog", field="source", hint="GET /api/v1/backups")
    if backup != "latest":
        catalog.find(records, backup, source)


def verify(svc, source: str, *, backup: str = "latest", actor: str) -> dict[str, Any]:
    """Queue ``backup.verify`` of one catalogued backup (``latest``: the source's newest)."""
    _known(svc.store, source, backup)
    return svc.create_adhoc_run(VERIFY_TYPE, {"source": source, "which": backup}, actor=actor)


def restore_plan(svc, source: str, *, backup: str = "latest", actor: str) -> dict[str, Any]:
    """Queue a dry run of ``backup.restore``: what a restore would do, item by item, changing nothing."""
    _known(svc.store, source, backup)
    config = {"source": source, "backup": backup}
    return svc.create_adhoc_run("backup.restore", config, actor=actor, dry_run=True)


# --- the catalog, as ``upkeep backups`` lists it ---------------------------------------------------


def catalog_rows(store: Store, source: str | None, now: datetime) -> list[dict[str, Any]]:
    """Catalogued backups (of ``source``, or all), newest first, one summary row each."""
    return [catalog.summary_row(e, now) for e in catalog.entries(Records(store, catalog.DOMAIN), source)]


def find_backup(store: Store, backup_id: str, source: str | None = None) -> dict[str, Any]:
    """One catalog entry by id (or ``source/id``); NotFound naming the catalog's sources."""
    return catalog.find(Records(store, catalog.DOMAIN), backup_id, source)


def catalogued_sources(store: Store) -> list[str]:
    return catalog.sources(Records(store, catalog.DOMAIN))


def estimate_restore(store: Store, source: str) -> dict[str, Any]:
    """How long restoring ``source``'s newest backup takes, from its drill and verify history."""
    from upkeep.handlers.backup import drills

    return drills.estimate(Records(store, catalog.DOMAIN), Records(store, drills.DOMAIN), source)
