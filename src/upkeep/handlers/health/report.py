"""``health.report``: is upkeep itself healthy, and what do the health checks and logs say?

Store reachable, last scheduler tick, pending/submitted depth, runs by status over 24 h, failing
tasks, overdue tasks, the latest state of every ``health.check`` target and recent error counts
from ``logs.analyze``. Thresholds in config set the outcome.
"""

from __future__ import annotations

from pydantic import Field

from upkeep.bounds import MAX_COUNT, MAX_DURATION_SECONDS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped
from upkeep.handlers.findings import worst_of


class ReportConfig(HandlerConfig):
    max_queue_depth: int = Field(100, ge=0, le=MAX_COUNT, description="Warning when more runs than this wait to start")
    scheduler_stale_seconds: float = Field(
        120, gt=0, le=MAX_DURATION_SECONDS, description="Critical when no scheduler ticked for this long"
    )
    failing_tasks_outcome: str = Field(
        "warning", pattern="^(ok|warning|critical)$", description="Outcome when some task is failing"
    )
    overdue_outcome: str = Field(
        "warning", pattern="^(ok|warning|critical)$", description="Outcome when some task is overdue"
    )
    include_health_targets: bool = Field(True, description="Summarise the health.check target records")
    logs: list[str] = host_scoped(
        default_factory=list, refs=("logs",), description="Log globs or targets.logs names for error counts"
    )
    alert_threshold: int = Field(
        100, ge=0, le=MAX_COUNT, description="Warning when the logs hold more errors than this in 24 h"
    )


@handler("health.report", config=ReportConfig)
def report(ctx: RunContext, config: ReportConfig) -> dict:
    """A summary of upkeep's own health, health-check targets and recent log errors."""
    summary = ctx.services.health_summary(ctx.now())
    outcome = "ok"
    findings = []
    age = summary.get("scheduler_age_seconds")
    if age is None or age > config.scheduler_stale_seconds:
        findings.append(
            {
                "severity": "critical",
                "item": "scheduler",
                "message": "no scheduler has ticked" if age is None else f"last tick {age:.0f}s ago",
            }
        )
    depth = summary["queue_depth"]["pending"] + summary["queue_depth"]["submitted"]
    if depth > config.max_queue_depth:
        findings.append({"severity": "warning", "item": "queue", "message": f"{depth} runs waiting to start"})
    if summary["failing_tasks"] and config.failing_tasks_outcome != "ok":
        names = ", ".join(t["name"] for t in summary["failing_tasks"][:10])
        findings.append({"severity": config.failing_tasks_outcome, "item": "tasks", "message": f"failing: {names}"})
    if summary["overdue_tasks"] and config.overdue_outcome != "ok":
        names = ", ".join(t["name"] for t in summary["overdue_tasks"][:10])
        findings.append({"severity": config.overdue_outcome, "item": "tasks", "message": f"overdue: {names}"})
    if config.include_health_targets:
        try:
            from upkeep.handlers.health.check import summarize_health_records
        except ImportError:
            summarize_health_records = None
        if summarize_health_records is not None:
            targets = summarize_health_records(ctx.records("health").items("target/"))
            summary["health_targets"] = targets
            for item in targets.get("failing", []) if isinstance(targets, dict) else []:
                findings.append(
                    {
                        "severity": item.get("status", "warning"),
                        "item": item.get("name"),
                        "message": item.get("detail", ""),
                    }
                )
    if config.logs:
        summary["log_errors"] = _log_errors(ctx, config)
        errors = summary["log_errors"].get("errors", 0)
        if errors > config.alert_threshold:
            findings.append({"severity": "warning", "item": "logs", "message": f"{errors} errors in the last 24 h"})
    for finding in findings:
        outcome = worst_of([outcome, finding["severity"]])
        ctx.log(
            "warning" if finding["severity"] != "ok" else "info",
            "finding",
            f"{finding['item']}: {finding['message']}",
            severity=finding["severity"],
            item=finding["item"],
        )
    text = (
        f"{len(findings)} finding(s); queue {depth}; {len(summary['failing_tasks'])} failing; "
        f"{len(summary['overdue_tasks'])} overdue"
    )
    return {**summary, "findings": findings, "outcome": outcome, "summary": text}


def _log_errors(ctx: RunContext, config: ReportConfig) -> dict:
    try:
        from upkeep.handlers.logs.parse import analyze_paths
    except ImportError:
        return {"note": "logs.analyze is not available"}
    paths: list[str] = []
    for entry in config.logs:
        if entry in ctx.targets.names("logs"):
            paths.extend(ctx.targets.get("logs", entry).get("paths", []))
        else:
            paths.append(entry)
    try:
        result = analyze_paths(paths, window="24h", now=ctx.now())
    except Exception as exc:
        return {"error": str(exc)}
    requests = result.get("requests") or {}
    return {
        "errors": result.get("errors", 0),
        "warnings": result.get("warnings", 0),
        "levels": result.get("levels", {}),
        "top_errors": result.get("top_errors", [])[:5],
        "requests": requests.get("total"),
        "rate_5xx": requests.get("rate_5xx"),
        "missing": result.get("missing", []),
    }
