"""Alert messages: a title such as ``[upkeep] CRITICAL backup-nightly: failed`` and a plain-text body.

The body names the task, status, outcome, attempt, error, summary, the top findings (by severity)
and links to the run (``{public_url}/runs/{id}``; without ``public_url``, ``http://host:port``).
Every time carries its zone: a scheduled run's slot in its task's zone, other times in the
configured zone (``Settings.timezone``, UTC by default).
Findings are redacted (secret-looking keys, URL passwords) and every resolved secret of the task's
config is scrubbed from the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from upkeep.clock import format_time
from upkeep.secrets import redact, resolve, scrub
from upkeep.store.models import FAILED_STATUSES

SEVERITY_RANK = {"critical": 0, "error": 0, "warning": 1, "info": 2}
TOP_FINDINGS = 5
MAX_FIELD = 1500  # characters of error/summary kept in a message


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    notify_type: str  # apprise: info | success | warning | failure


def task_secrets(config: dict[str, Any] | None) -> list[str]:
    """Resolved values of the ``${env:..}`` references in a task's config (to scrub from messages)."""
    collected: list[str] = []
    try:
        resolve(config or {}, collected=collected)
    except Exception:
        pass  # a missing variable cannot leak
    return collected


def _clip(text: str | None, limit: int = MAX_FIELD) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def top_findings(result: dict[str, Any] | None, limit: int = TOP_FINDINGS) -> tuple[list[str], int]:
    """The ``limit`` most severe findings as one line each, and how many there were."""
    findings = (result or {}).get("findings") or []
    if not isinstance(findings, list):
        return [], 0
    items = [f for f in findings if isinstance(f, dict)]
    items.sort(key=lambda f: SEVERITY_RANK.get(str(f.get("severity", "info")).lower(), 3))
    lines = []
    for finding in redact(items[:limit]):
        severity = str(finding.get("severity", "info")).upper()
        target = finding.get("target") or finding.get("item") or ""
        text = finding.get("message") or finding.get("summary") or ""
        lines.append(_clip(f"- {severity} {target}: {text}" if target else f"- {severity} {text}", 300))
    return lines, len(items)


def severity_of(kind: str, status: str | None, outcome: str | None) -> str:
    if kind == "recovery":
        return "RESOLVED"
    if kind == "overdue":
        return "WARNING"
    if status in FAILED_STATUSES or outcome == "critical":
        return "CRITICAL"
    if outcome == "warning":
        return "WARNING"
    return "INFO"


NOTIFY_TYPE = {"RESOLVED": "success", "WARNING": "warning", "CRITICAL": "failure", "INFO": "info"}


def run_message(
    kind: str,
    *,
    task: str,
    task_type: str,
    run: dict[str, Any],
    link_base: str,
    consecutive_failures: int = 0,
    repeat: bool = False,
    secrets: list[str] | None = None,
    timezone: str = "UTC",
    task_timezone: str | None = None,
) -> Message:
    """The message for a finished run: ``run`` holds id, status, outcome, attempt, max_retries,
    finished_at, error, summary and result, and for a scheduled run its ``scheduled_for`` slot
    (shown in ``task_timezone``; the other times in ``timezone``)."""
    status, outcome = run.get("status"), run.get("outcome")
    severity = severity_of(kind, status, outcome)
    what = str(status)
    if status == "completed" and outcome and kind != "recovery":
        what = f"completed, outcome {outcome}"
    elif kind == "recovery":
        what = f"recovered ({status}, outcome {outcome or 'ok'})"
    if repeat:
        what += " (still)"
    title = f"[upkeep] {severity} {task}: {what}"
    link = f"{link_base}/runs/{run['id']}"
    lines = [
        f"Task: {task} ({task_type})",
        f"Status: {status}" + (f"   Outcome: {outcome}" if outcome else ""),
        f"Attempt: {run.get('attempt', 1)} of {int(run.get('max_retries') or 0) + 1}",
    ]
    if consecutive_failures > 1 and kind == "failure":
        lines.append(f"Failures in a row: {consecutive_failures}")
    slot = run.get("scheduled_for")
    if isinstance(slot, datetime) and run.get("origin") == "scheduled":
        lines.append(f"Slot: {format_time(slot, task_timezone or timezone)}")
    finished = run.get("finished_at")
    if isinstance(finished, datetime):
        lines.append(f"Finished: {format_time(finished, timezone)}")
    if run.get("error"):
        lines.append(f"Error: {_clip(run.get('error'))}")
    if run.get("summary"):
        lines.append(f"Summary: {_clip(run.get('summary'))}")
    findings, total = top_findings(run.get("result"))
    if findings:
        extra = f" (top {len(findings)} of {total})" if total > len(findings) else ""
        lines.append(f"Findings{extra}:")
        lines.extend(findings)
    lines.append(f"Run: {link}")
    body = scrub("\n".join(lines), secrets or [])
    return Message(scrub(title, secrets or []), body, NOTIFY_TYPE[severity])


def overdue_message(task: str, task_type: str, reason: str, link_base: str, *, ended: bool = False) -> Message:
    if ended:
        return Message(
            f"[upkeep] RESOLVED {task}: no longer overdue",
            f"Task: {task} ({task_type})\nThe task is no longer overdue.\nTask: {link_base}/tasks/{task}",
            "success",
        )
    return Message(
        f"[upkeep] WARNING {task}: overdue",
        f"Task: {task} ({task_type})\nOverdue: {reason}\n"
        "upkeep alerts once per overdue episode.\n"
        f"Task: {link_base}/tasks/{task}",
        "warning",
    )
