"""Flap damping: turn what a check observed into what is reported, using the target's record.

Semantics (``failure_threshold`` = N, ``success_threshold`` = M, both default 1):

- A *failure* is an observed ``critical``; ``ok`` and ``warning`` observations are *successes*.
- A target is reported ``critical`` after N consecutive failures. Before that, a failure is reported
  as ``warning`` with the note "failure k of N before critical" (visible, but it does not page).
- Once reported critical, it stays critical until M consecutive successes ("recovering: k of M");
  then the observed status is reported again.
- Warnings are never damped: an observed warning is reported as warning (unless recovering).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .base import CRITICAL, CheckResult

RECORD_VERSION = 1


def apply(
    previous: dict[str, Any] | None,
    result: CheckResult,
    now: datetime,
    failure_threshold: int,
    success_threshold: int,
) -> tuple[dict[str, Any], str, str]:
    """``(new_record, reported_status, note)`` for one observation."""
    prev = previous or {}
    prev_status = prev.get("status")
    failures = int(prev.get("consecutive_failures", 0))
    successes = int(prev.get("consecutive_successes", 0))
    note = ""
    stamp = now.isoformat()
    if result.status == CRITICAL:
        failures, successes = failures + 1, 0
        if prev_status == CRITICAL or failures >= failure_threshold:
            reported = CRITICAL
        else:
            reported = "warning"
            note = f"failure {failures} of {failure_threshold} before critical"
    else:
        failures, successes = 0, successes + 1
        if prev_status == CRITICAL and successes < success_threshold:
            reported = CRITICAL
            note = f"recovering: {successes} of {success_threshold} successes"
        else:
            reported = result.status
    changed = reported != prev_status
    record = {
        "version": RECORD_VERSION,
        "name": result.name,
        "kind": result.kind,
        "status": reported,
        "observed": result.status,
        "detail": result.detail,
        "note": note,
        "latency_ms": result.latency_ms,
        "consecutive_failures": failures,
        "consecutive_successes": successes,
        "failure_threshold": failure_threshold,
        "success_threshold": success_threshold,
        "since": stamp if changed or not prev.get("since") else prev["since"],
        "previous_status": prev_status if changed else prev.get("previous_status"),
        "last_check": stamp,
        "last_ok": stamp if result.status != CRITICAL else prev.get("last_ok"),
        "last_failure": stamp if result.status == CRITICAL else prev.get("last_failure"),
        "checks": int(prev.get("checks", 0)) + 1,
        "state": result.state or {},
    }
    return record, reported, note
