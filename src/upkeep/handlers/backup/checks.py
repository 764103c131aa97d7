"""Check results shared by the verification code: ``{"check", "ok", "message"}`` dicts."""

from __future__ import annotations

from typing import Any


def check(name: str, ok: bool, message: str, **data: Any) -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), "message": message, **data}


def compare_counts(expected: dict[str, Any], actual: dict[str, Any], what: str = "row counts") -> dict[str, Any]:
    """Compare per-table counts (or checksums) with the manifest's; names the first differences."""
    diffs = []
    for name in sorted(set(expected) | set(actual)):
        if expected.get(name) != actual.get(name):
            diffs.append(f"{name}: expected {expected.get(name, 'absent')}, got {actual.get(name, 'absent')}")
    if diffs:
        more = f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""
        return check(
            what.replace(" ", "_"),
            False,
            f"{what} differ from the manifest: " + "; ".join(diffs[:5]) + more,
            differences=diffs[:50],
        )
    return check(what.replace(" ", "_"), True, f"{what} match the manifest ({len(expected)} entries)")


def assertions_of(entry: dict[str, Any], config) -> list[str]:
    """The SQL assertions of a test restore: the source's own (catalogued with the backup) and the
    task's ``assertions``."""
    return [*(entry.get("assertions") or []), *(getattr(config, "assertions", None) or [])]
