"""Recovery drill history and restore-time estimates.

Each drill of a source is one record in domain ``backup-drill``, key ``<source>/<drill time>``::

    {"source", "at" (ISO), "ok", "backup_id", "repository", "rto_s" (drill start -> checks passed,
     fallbacks included), "restore_s" (download, decode, restore and checks of the backup restored),
     "rpo_s" (age of the restored data at the drill's start), "raw_size", "size",
     "rto_objective_s", "rpo_objective_s", "met" (both objectives held), "fell_back_from":
     [{"id", "reason"}], "message"}

``trend`` gives the points the backups page and the reports chart; ``estimate`` predicts how long
restoring a source's newest backup takes, from the throughput (raw bytes per second) of its drills
and, failing those, of its verifications' test restores.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from upkeep.errors import NotFound
from upkeep.handlers.backup import catalog

DOMAIN = "backup-drill"


def put(records, result: dict[str, Any]) -> None:
    records.put(f"{result['source']}/{result['at']}", result)


def history(records, source: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """Drill results, oldest first."""
    rows = [v for _, v in records.items(f"{source}/" if source else "") if isinstance(v, dict) and v.get("at")]
    if since is not None:
        rows = [r for r in rows if datetime.fromisoformat(r["at"]) >= since]
    return sorted(rows, key=lambda r: r["at"])


def trend(records, since: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per source: the latest drill and its ``points`` ([[at, rto_s, rpo_s, met], ...], oldest first)."""
    out: dict[str, dict[str, Any]] = {}
    for row in history(records, since=since):
        item = out.setdefault(row["source"], {"source": row["source"], "points": []})
        item["points"].append([row["at"], row.get("rto_s"), row.get("rpo_s"), bool(row.get("met"))])
        item["latest"] = row
    return out


def _throughput(raw_size: Any, seconds: Any) -> float | None:
    if not raw_size or not seconds or seconds <= 0:
        return None
    return float(raw_size) / float(seconds)


def estimate(backup_records, drill_records, source: str) -> dict[str, Any]:
    """Predicted restore time of ``source``'s newest backup, with the history it rests on."""
    entries = catalog.entries(backup_records, source)
    if not entries:
        raise NotFound(f"no backups of source {source!r} in the catalog", hint="`upkeep backups list`")
    newest = entries[0]
    raw_size = newest["manifest"].get("raw_size") or 0
    drill_rates = [
        rate
        for d in history(drill_records, source)
        if d.get("ok") and (rate := _throughput(d.get("raw_size"), d.get("restore_s")))
    ]
    verify_rates = [
        rate
        for e in entries
        if (e.get("verification") or {}).get("ok")
        and (rate := _throughput(e["manifest"].get("raw_size"), (e.get("verification") or {}).get("duration_s")))
    ]
    basis, rates = ("drills", drill_rates) if drill_rates else ("verifications", verify_rates)
    out: dict[str, Any] = {
        "source": source,
        "backup_id": newest["id"],
        "raw_size": raw_size,
        "drills": len(drill_rates),
        "verifications": len(verify_rates),
        "basis": basis if rates else None,
    }
    if not rates:
        out["message"] = f"no drill or verification of {source} has a timing yet: run `upkeep backups drill`"
        return out
    median = statistics.median(rates)
    out.update(
        seconds=round(raw_size / median, 1),
        low_seconds=round(raw_size / max(rates), 1),
        high_seconds=round(raw_size / min(rates), 1),
        bytes_per_second=round(median),
    )
    out["message"] = (
        f"restoring {source}/{newest['id']} ({raw_size} bytes) should take about {out['seconds']:g}s "
        f"({out['low_seconds']:g}-{out['high_seconds']:g}s) from {len(rates)} {basis}"
    )
    return out
