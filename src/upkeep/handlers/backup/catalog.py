"""The backup catalog: records in domain ``backup``, key ``<source>/<backup_id>``.

Each value holds the manifest summary (``manifest``), where the artifact is (``path``, ``copies``),
``status`` (``created`` | ``verified`` | ``broken``), ``verified_at`` and ``verification`` (the
checks of the last verification). ``records`` is anything with the records API (``ctx.records
("backup")`` in a handler, ``upkeep.store.records.Records(store, "backup")`` in the CLI).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from upkeep.errors import NotFound

DOMAIN = "backup"
STATUSES = ("created", "verified", "broken")


def key(source: str, backup_id: str) -> str:
    return f"{source}/{backup_id}"


def entries(records, source: str | None = None) -> list[dict[str, Any]]:
    """Catalog entries, newest first."""
    rows = [v for _, v in records.items(f"{source}/" if source else "")]
    return sorted(rows, key=lambda e: (e.get("created_at", ""), e.get("id", "")), reverse=True)


def sources(records) -> list[str]:
    return sorted({e["source"] for _, e in records.items()})


def find(records, backup_id: str, source: str | None = None) -> dict[str, Any]:
    """One entry by id (or ``source/id``); ``NotFound`` otherwise."""
    if "/" in backup_id:
        entry = records.get(backup_id)
        if entry:
            return entry
    for entry in entries(records, source):
        if entry["id"] == backup_id:
            return entry
    where = f" for source {source}" if source else ""
    raise NotFound(f"no backup {backup_id!r}{where}", hint="`upkeep backups list` shows the catalog")


def latest(records, source: str, verified_only: bool, where=None, verified=None) -> dict[str, Any]:
    """The newest verified (or, without ``verified_only``, not broken) entry that ``where`` accepts;
    ``verified(entry)`` says what counts as verified (default: its last verification passed)."""
    for entry in entries(records, source):
        if where is not None and not where(entry):
            continue
        good = verified(entry) if verified is not None else entry.get("status") == "verified"
        if good or (not verified_only and entry.get("status") != "broken"):
            return entry
    what = "verified backup" if verified_only else "usable backup"
    hint = "run backup.verify first, or set allow_unverified: true" if verified_only else "run backup.create"
    raise NotFound(f"no {what} of source {source!r} in the catalog", hint=hint)


def put(records, entry: dict[str, Any]) -> None:
    records.put(key(entry["source"], entry["id"]), entry)


def record_verification(
    records,
    entry: dict[str, Any],
    ok: bool,
    checks: list[dict[str, Any]],
    at: datetime,
    duration_s: float | None = None,
) -> dict[str, Any]:
    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is None:
            return None
        current = dict(current)
        current["status"] = "verified" if ok else "broken"
        current["verified_at"] = at.isoformat()
        current["verification"] = {"ok": ok, "checks": checks, "duration_s": duration_s}
        return current

    return records.update(key(entry["source"], entry["id"]), change) or entry


def remove(records, entry: dict[str, Any]) -> None:
    records.delete(key(entry["source"], entry["id"]))


def summary_row(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The fields ``upkeep backups list`` shows."""
    created = datetime.fromisoformat(entry["created_at"])
    age_h = (now - created).total_seconds() / 3600
    return {
        "id": entry["id"],
        "source": entry["source"],
        "type": entry.get("type"),
        "created_at": entry["created_at"],
        "age_hours": round(age_h, 2),
        "size": entry.get("manifest", {}).get("size"),
        "sha256": entry.get("manifest", {}).get("sha256"),
        "status": entry.get("status"),
        "verified_at": entry.get("verified_at"),
        "path": entry.get("path"),
        "tags": entry.get("tags", []),
    }
