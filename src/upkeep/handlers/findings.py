"""Findings, shared by every handler that reports them (audits, checks, db.inspect, backups, logs,
capacity, performance): a finding is a dict ``{"severity", "check"?, "item"?, "message", ...}`` with
severity ``info``, ``warning`` or ``critical``; the run's outcome is the worst of them (``info``
counts as ``ok``, as anything below ``warning`` does).

- ``finding(severity, check, item, message, **data)``: one finding.
- ``outcome_of(findings)``: ``ok``, ``warning`` or ``critical``; ``worst_of(outcomes)`` the same for
  outcomes.
- ``severity_counts(findings)``: how many of each severity.
- ``log_findings(ctx, findings, *fields)``: each finding above ``info`` as an event
  ``finding.<check>`` (level warning or error) with its severity and the named fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from upkeep.store.states import OUTCOME_RANK, OUTCOMES, Outcome

SEVERITIES = ("info", "warning", "critical")
RANK = {**OUTCOME_RANK, "info": OUTCOME_RANK[Outcome.OK]}  # the runs' outcome ranks; a finding's info is ok


def finding(severity: str, check: str, item: str, message: str, **data: Any) -> dict[str, Any]:
    return {"severity": severity, "check": check, "item": item, "message": message, **data}


def worst_of(outcomes: Iterable[str | None]) -> str:
    """The worst of some outcomes (or severities): ``ok`` when there is none; unknown words rank as ok."""
    rank = max((RANK.get(o or "ok", 0) for o in outcomes), default=0)
    return OUTCOMES[rank]


def outcome_of(findings: Iterable[dict[str, Any]]) -> str:
    """The outcome findings give a run: their worst severity (``info`` is ``ok``)."""
    return worst_of(f.get("severity") for f in findings)


def severity_counts(findings: Iterable[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(("critical", "warning", "info"), 0)
    for f in findings:
        if f.get("severity") in out:
            out[f["severity"]] += 1
    return out


def log_findings(ctx: Any, findings: Iterable[dict[str, Any]], *fields: str) -> None:
    """Each finding above ``info`` as an event ``finding.<check>`` (warning, or error when critical),
    with ``severity`` and the finding's ``fields`` as data."""
    for f in findings:
        if RANK.get(f.get("severity") or "ok", 0) == 0:
            continue
        ctx.log(
            "warning" if f["severity"] == "warning" else "error",
            f"finding.{f.get('check', 'check')}",
            f["message"],
            **{name: f.get(name) for name in fields},
            severity=f["severity"],
        )
