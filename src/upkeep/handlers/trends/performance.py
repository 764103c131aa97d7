"""``performance.review``: the seed's monthly performance review, compared with the previous period.

Three sources, each optional:

- **logs** (``logs``: targets.logs names or globs): request volume, 5xx rate, error records, average and
  p95 response time, via ``logs.analyze``'s :func:`analyze_paths` over the period (``period``, default
  30 days back from now) and over the same length before it. The seed averaged ``durationMs`` over the
  whole file; here both periods are placed by each record's own timestamp.
- **databases** (``databases``: database targets): ``db.inspect`` (slow queries from pg_stat_statements,
  bloat, dead tuples, cache hit ratio). The previous review's figures are kept in records domain
  ``performance`` (key ``db/<target>``) and compared.
- **run history**: upkeep's own runs per task (count, failures, failure rate, average and p95
  duration), this period and the previous one.

Findings (warning): p95 or average response time up by more than ``regression_ratio`` (1.25 = +25 %),
5xx rate up by more than ``rate_5xx_increase`` (0.005 = half a percentage point), request volume changed
by more than ``volume_change_ratio`` (2.0 = doubled or halved; info), a task failing more than
``task_failure_rate_warn`` (10 %) of its runs, task p95 duration up by more than ``regression_ratio``,
more slow queries than at the previous review, and every warning/critical ``db.inspect`` finding.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from upkeep.bounds import MAX_COUNT
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError, ConnectionFailed
from upkeep.handlers.findings import outcome_of
from upkeep.handlers.logs.parse import WINDOW_RE, WINDOW_UNITS

DOMAIN = "performance"


class PerformanceReviewConfig(HandlerConfig):
    """Sources of the review, its period and what counts as a regression."""

    period: str = overridable("30d", description="Length of the reviewed period ('7d', '30d', '4w').")
    logs: list[str] = host_scoped(
        default_factory=list, refs=("logs",), description="targets.logs names or globs of API logs."
    )
    databases: list[str] = host_scoped(
        default_factory=list, refs=("databases",), also=("upkeep",), description="Database targets to inspect."
    )
    include_runs: bool = Field(True, description="Summarise upkeep's own run history.")
    regression_ratio: float = Field(1.25, gt=1, le=1000, description="Slower by more than this factor is a warning.")
    rate_5xx_increase: float = Field(0.005, ge=0, le=1000, description="5xx rate increase (absolute) that warns.")
    volume_change_ratio: float = Field(2.0, gt=1, le=1000, description="Request volume change factor reported (info).")
    task_failure_rate_warn: float = Field(0.1, ge=0, le=1, description="Task failure rate that warns.")
    min_requests: int = Field(
        100, ge=0, le=MAX_COUNT, description="Fewer requests in a period: no response-time verdict."
    )


def period_of(text: str) -> timedelta:
    match = WINDOW_RE.match(text or "")
    if not match:
        raise ConfigError(f"period {text!r} is not a duration", hint="use e.g. '7d', '30d' or '4w'", field="period")
    return timedelta(**{WINDOW_UNITS[match.group(2)]: float(match.group(1))})


def _ratio(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return new / old


def _f(severity: str, area: str, item: str, message: str, **data: Any) -> dict[str, Any]:
    return {"severity": severity, "check": area, "item": item, "message": message, **data}


def _log_figures(analysis: dict) -> dict[str, Any]:
    req = analysis["requests"]
    dur = analysis["duration"]
    return {
        "requests": req["total"],
        "rate_5xx": req["rate_5xx"],
        "errors": analysis["errors"],
        "avg_ms": dur["avg_ms"],
        "p95_ms": dur["p95_ms"],
        "p99_ms": dur.get("p99_ms"),
        "per_day": req.get("per_day", {}),
    }


def review_logs(
    ctx: RunContext, config: PerformanceReviewConfig, start: datetime, prev_start: datetime, now: datetime
) -> tuple[dict, list[dict]]:
    from upkeep.handlers.logs.parse import analyze_paths

    out: dict[str, Any] = {}
    findings: list[dict] = []
    for entry in config.logs:
        ctx.check_cancelled()
        if entry in ctx.targets.names("logs"):
            spec = ctx.targets.get("logs", entry)
            paths = spec.get("paths") if isinstance(spec, dict) else None
            paths = [paths] if isinstance(paths, str) else list(paths or [])
        else:
            paths = [entry]
        current = _log_figures(analyze_paths(paths, window=None, since=start, until=now, now=now))
        previous = _log_figures(analyze_paths(paths, window=None, since=prev_start, until=start, now=now))
        out[entry] = {"current": current, "previous": previous}
        enough = current["requests"] >= config.min_requests and previous["requests"] >= config.min_requests
        for key, label in (("p95_ms", "p95 response time"), ("avg_ms", "average response time")):
            r = _ratio(current[key], previous[key])
            if enough and r is not None and r > config.regression_ratio:
                findings.append(
                    _f(
                        "warning",
                        "logs",
                        entry,
                        f"{entry}: {label} {current[key]:.0f} ms, up from {previous[key]:.0f} ms ({r - 1:+.0%})",
                        metric=key,
                    )
                )
        if enough and current["rate_5xx"] - previous["rate_5xx"] > config.rate_5xx_increase:
            findings.append(
                _f(
                    "warning",
                    "logs",
                    entry,
                    f"{entry}: 5xx rate {current['rate_5xx']:.2%}, up from {previous['rate_5xx']:.2%}",
                    metric="rate_5xx",
                )
            )
        r = _ratio(current["requests"], previous["requests"])
        if r is not None and (r > config.volume_change_ratio or r < 1 / config.volume_change_ratio):
            findings.append(
                _f(
                    "info",
                    "logs",
                    entry,
                    f"{entry}: {current['requests']} requests, {previous['requests']} the period before ({r:.1f}x)",
                    metric="requests",
                )
            )
    return out, findings


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def task_figures(runs: list[dict]) -> dict[str, dict[str, Any]]:
    by_task: dict[str, list[dict]] = {}
    for run in runs:
        by_task.setdefault(run.get("task") or run.get("type") or "?", []).append(run)
    out = {}
    for task, rows in sorted(by_task.items()):
        durations = [r["duration_seconds"] for r in rows if r.get("duration_seconds") is not None]
        failed = sum(1 for r in rows if r.get("status") in ("failed", "timed_out"))
        out[task] = {
            "runs": len(rows),
            "failed": failed,
            "failure_rate": round(failed / len(rows), 4),
            "critical": sum(1 for r in rows if r.get("outcome") == "critical"),
            "avg_seconds": round(sum(durations) / len(durations), 3) if durations else None,
            "p95_seconds": round(_p95(durations), 3) if durations else None,
        }
    return out


def review_runs(
    ctx: RunContext, config: PerformanceReviewConfig, start: datetime, prev_start: datetime, now: datetime
) -> tuple[dict, list[dict]]:
    current = task_figures(ctx.services.run_history(since=start, until=now))
    previous = task_figures(ctx.services.run_history(since=prev_start, until=start))
    findings = []
    for task, fig in current.items():
        if fig["failure_rate"] > config.task_failure_rate_warn:
            findings.append(
                _f(
                    "warning",
                    "runs",
                    task,
                    f"task {task}: {fig['failed']} of {fig['runs']} runs failed ({fig['failure_rate']:.0%})",
                    failure_rate=fig["failure_rate"],
                )
            )
        before = previous.get(task, {})
        r = _ratio(fig["p95_seconds"], before.get("p95_seconds"))
        if r is not None and r > config.regression_ratio and fig["runs"] >= 3:
            findings.append(
                _f(
                    "warning",
                    "runs",
                    task,
                    f"task {task}: p95 duration {fig['p95_seconds']:.1f}s, up "
                    f"from {before['p95_seconds']:.1f}s ({r - 1:+.0%})",
                )
            )
    return {"current": current, "previous": previous}, findings


def review_databases(ctx: RunContext, config: PerformanceReviewConfig, now: datetime) -> tuple[dict, list[dict]]:
    from upkeep.handlers.db.inspect import InspectConfig
    from upkeep.handlers.db.inspect import inspect as db_inspect

    records = ctx.records(DOMAIN)
    out: dict[str, Any] = {}
    findings: list[dict] = []
    for name in config.databases:
        ctx.check_cancelled()
        try:
            report = db_inspect(ctx, InspectConfig(target=name))
        except ConnectionFailed as exc:
            findings.append(_f("warning", "database", name, str(exc)))
            continue
        dbs = report.get("databases") or {}
        slow = [{"database": db, **q} for db, d in dbs.items() for q in d.get("slow_queries") or []]
        bloat = [{"database": db, **b} for db, d in dbs.items() for b in (d.get("bloat") or {}).get("relations", [])]
        figures = {
            "at": now.isoformat(),
            "slow_queries": len(slow),
            "wasted_bytes": sum(int(b.get("wasted_bytes") or 0) for b in bloat),
            "size_bytes": sum(int(d.get("size_bytes") or 0) for d in dbs.values()),
            "cache_hit_ratio": {db: d.get("cache_hit_ratio") for db, d in dbs.items()},
        }
        previous = records.get(f"db/{name}")
        records.put(f"db/{name}", figures)
        out[name] = {
            "current": figures,
            "previous": previous,
            "slow_queries": sorted(slow, key=lambda q: -q["mean_ms"])[:10],
            "bloat": sorted(bloat, key=lambda b: -b.get("wasted_bytes", 0))[:10],
        }
        for f in report.get("findings") or []:
            if f["severity"] in ("warning", "critical"):
                findings.append(_f(f["severity"], "database", f"{name}:{f.get('item')}", f"{name}: {f['message']}"))
        if previous and figures["slow_queries"] > previous.get("slow_queries", 0):
            findings.append(
                _f(
                    "warning",
                    "database",
                    name,
                    f"{name}: {figures['slow_queries']} slow queries, "
                    f"{previous.get('slow_queries', 0)} at the previous review",
                )
            )
    return out, findings


@handler("performance.review", config=PerformanceReviewConfig, aliases=["perf.review"])
def performance_review(ctx: RunContext, config: PerformanceReviewConfig) -> dict:
    """Response times, error rates and volume, slow queries and bloat, task durations and failure rates,
    each compared with the previous period."""
    length = period_of(config.period)
    now = ctx.now()
    start, prev_start = now - length, now - 2 * length
    if not config.logs and not config.databases and not (config.include_runs and ctx.services is not None):
        raise ConfigError(
            "performance.review has nothing to review", hint="set logs (targets.logs names or globs) and/or databases"
        )
    result: dict[str, Any] = {
        "period": {"since": start.isoformat(), "until": now.isoformat(), "previous_since": prev_start.isoformat()}
    }
    ctx.scope([*config.logs, *config.databases], "logs and databases in the task's config", what="reviewed")
    findings: list[dict] = []
    if config.logs:
        ctx.progress(0.0, "logs")
        result["logs"], found = review_logs(ctx, config, start, prev_start, now)
        findings += found
    if config.databases:
        ctx.progress(0.4, "databases")
        result["databases"], found = review_databases(ctx, config, now)
        findings += found
    if config.include_runs and ctx.services is not None:
        ctx.progress(0.8, "run history")
        result["runs"], found = review_runs(ctx, config, start, prev_start, now)
        findings += found
    parts = []
    for name, figs in (result.get("logs") or {}).items():
        c = figs["current"]
        p95 = f", p95 {c['p95_ms']:.0f} ms" if c["p95_ms"] is not None else ""
        parts.append(f"{name}: {c['requests']} requests, 5xx {c['rate_5xx']:.2%}{p95}")
    if "runs" in result:
        total = sum(t["runs"] for t in result["runs"]["current"].values())
        failed = sum(t["failed"] for t in result["runs"]["current"].values())
        parts.append(f"{total} runs, {failed} failed")
    if "databases" in result:
        parts.append(f"{sum(d['current']['slow_queries'] for d in result['databases'].values())} slow queries")
    regressions = sum(1 for f in findings if f["severity"] != "info")
    summary = f"{config.period}: " + "; ".join(parts) + f"; {regressions} finding(s)"
    return {
        "outcome": outcome_of(findings),
        "summary": summary,
        "findings": findings,
        **result,
    }
