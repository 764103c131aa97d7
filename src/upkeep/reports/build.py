"""Collect the digest of a period (day, week, month) from the store, through ``RunServices``.

``services`` is anything with ``run_history(since=, until=)``, ``health_summary(now)``, ``not_ok_in_a_row(names)``,
``targets(now)`` and ``records(domain)`` (``upkeep.app.run_services.RunServices``, which
``report.send`` asks for the digest). Nothing here touches SQLAlchemy.

The digest (plain JSON-able dict)::

    {"period": "week", "since": ISO, "until": ISO, "generated_at": ISO, "timezone": "UTC",
     "runs": {"total", "by_status", "by_outcome", "failed": [{task, type, status, outcome, finished_at}],
              "per_day": [{"day", "ok", "warning", "critical", "failed"}], "tasks": [{task, runs, failed, ...}]},
     "health": {"queue_depth", "failing_tasks": [{name, status, outcome, not_ok_in_a_row}], "overdue_tasks",
                "targets": [{name, kind, status, detail, note}]},  # note: during maintenance, parent down
     "backups": {"created", "verified", "broken", "sources": [{source, latest_at, age_hours, status,
                 verified_at, size}], "sizes": {source: [[ISO, bytes], ...]},
                 "drills": [{source, latest: {drill result}, points: [[ISO, rto_s, rpo_s, met], ...]}]},
     "capacity": {"at", "warnings": [...metric projections with warning/critical...], "too_few": [...],
                  "charts": [{"metric", "samples": [[ISO, value]], "projection": {...}}]},
     "heartbeats": {"monitors": [{name, schedule, status, reason, last_ping_at, successes, failures}],
                    "down": [name, ...]},
     "status": "ok|warning|critical"}
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from upkeep.store.models import FAILED_STATUSES, OUTCOME_RANK

PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30)}
SHOWN_FAILING = 20  # failing tasks the report lists (with their streak of runs not ok)


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    if period not in PERIODS:
        from upkeep.errors import UserError

        raise UserError(f"unknown period {period!r}", hint="use day, week or month", field="period")
    return now - PERIODS[period], now


def _day(iso: str | None) -> str | None:
    return iso[:10] if iso else None


def runs_section(runs: list[dict], since: datetime, until: datetime) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    days: dict[str, dict[str, int]] = {}
    cursor = since.date()
    while cursor <= until.date():
        days[cursor.isoformat()] = {"ok": 0, "warning": 0, "critical": 0, "failed": 0}
        cursor += timedelta(days=1)
    tasks: dict[str, dict[str, Any]] = {}
    failed = []
    for run in runs:
        status = run.get("status") or "?"
        by_status[status] = by_status.get(status, 0) + 1
        bad = status in FAILED_STATUSES
        outcome = run.get("outcome") or ("ok" if status == "completed" else None)
        if outcome:
            by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        day = days.get(_day(run.get("finished_at")) or "")
        if day is not None:
            if bad:
                day["failed"] += 1
            elif outcome in day:
                day[outcome] += 1
        name = run.get("task") or run.get("type") or "?"
        t = tasks.setdefault(
            name, {"task": name, "type": run.get("type"), "runs": 0, "failed": 0, "critical": 0, "total_seconds": 0.0}
        )
        t["runs"] += 1
        t["failed"] += bad
        t["critical"] += outcome == "critical"
        t["total_seconds"] += run.get("duration_seconds") or 0.0
        if bad or outcome == "critical":
            failed.append({k: run.get(k) for k in ("task", "type", "status", "outcome", "finished_at")})
    for t in tasks.values():
        t["avg_seconds"] = round(t.pop("total_seconds") / t["runs"], 2) if t["runs"] else None
    failed.sort(key=lambda r: r.get("finished_at") or "", reverse=True)
    return {
        "total": len(runs),
        "by_status": by_status,
        "by_outcome": by_outcome,
        "failed": failed[:50],
        "failed_count": len(failed),
        "per_day": [{"day": d, **v} for d, v in days.items()],
        "tasks": sorted(tasks.values(), key=lambda t: (-t["failed"], -t["critical"], t["task"])),
    }


def _notes(services: Any, now: datetime) -> dict[str, str]:
    """The alerting annotation of each checked target, by its health check name."""
    notes: dict[str, str] = {}
    for target in services.targets(now):
        text = "; ".join(x for x in (target["note"], target["maintenance"]) if x)
        if target["dependents"]:
            text = "; ".join(x for x in (text, f"also failing because of it: {', '.join(target['dependents'])}") if x)
        if text:
            notes[target["target"].split(".", 1)[1]] = text
    return notes


def health_section(services: Any, now: datetime) -> dict[str, Any]:
    summary = services.health_summary(now)
    notes = _notes(services, now)
    targets = []
    for _, rec in services.records("health").items("target/"):
        if isinstance(rec, dict):
            entry = {k: rec.get(k) for k in ("name", "kind", "status", "detail", "since", "last_check")}
            entry["note"] = notes.get(str(rec.get("name")), "")
            targets.append(entry)
    targets.sort(key=lambda t: (-OUTCOME_RANK.get(t["status"] or "ok", 0), t["name"] or ""))
    failing = summary.get("failing_tasks", [])
    streaks = services.not_ok_in_a_row([t["name"] for t in failing[:SHOWN_FAILING]])
    for task in failing:
        task["not_ok_in_a_row"] = streaks.get(task["name"])
    return {
        "queue_depth": summary.get("queue_depth"),
        "failing_tasks": failing,
        "overdue_tasks": summary.get("overdue_tasks", []),
        "active_runs": summary.get("active_runs"),
        "last_scheduler_tick": summary.get("last_scheduler_tick"),
        "targets": targets,
    }


def backups_section(services: Any, since: datetime, now: datetime) -> dict[str, Any]:
    entries = [v for _, v in services.records("backup").items() if isinstance(v, dict) and v.get("created_at")]
    in_period = [e for e in entries if datetime.fromisoformat(e["created_at"]) >= since]
    verified_in_period = [
        e for e in entries if e.get("verified_at") and datetime.fromisoformat(e["verified_at"]) >= since
    ]
    latest: dict[str, dict] = {}
    sizes: dict[str, list] = {}
    for e in sorted(entries, key=lambda e: e["created_at"]):
        source = e.get("source", "?")
        latest[source] = e
        if datetime.fromisoformat(e["created_at"]) >= since:
            sizes.setdefault(source, []).append([e["created_at"], (e.get("manifest") or {}).get("size") or 0])
    sources = []
    for source, e in sorted(latest.items()):
        age = (now - datetime.fromisoformat(e["created_at"])).total_seconds() / 3600
        sources.append(
            {
                "source": source,
                "id": e.get("id"),
                "latest_at": e["created_at"],
                "age_hours": round(age, 1),
                "status": e.get("status"),
                "verified_at": e.get("verified_at"),
                "size": (e.get("manifest") or {}).get("size"),
            }
        )
    from upkeep.handlers.backup import drills

    return {
        "created": len(in_period),
        "verified": sum(1 for e in verified_in_period if e.get("status") == "verified"),
        "broken": sum(1 for e in verified_in_period if e.get("status") == "broken"),
        "sources": sources,
        "sizes": sizes,
        "drills": list(drills.trend(services.records(drills.DOMAIN), since).values()),
    }


def capacity_section(services: Any, now: datetime, max_charts: int = 6) -> dict[str, Any]:
    from upkeep.handlers.trends.capacity import DOMAIN, PLAN_KEY, load_series

    records = services.records(DOMAIN)
    plan = records.get(PLAN_KEY) or {}
    metrics = plan.get("metrics") or []
    warnings = [m for m in metrics if m.get("status") in ("warning", "critical")]
    too_few = [m["metric"] for m in metrics if m.get("status") == "too_few_samples"]
    chosen = warnings + [
        m
        for m in metrics
        if m not in warnings and m.get("threshold") is not None and m.get("status") not in ("too_few_samples",)
    ]
    series = load_series(records, now - timedelta(days=90)) if chosen else {}
    charts = []
    for m in chosen[:max_charts]:
        points = series.get(m["metric"], [])
        charts.append({"metric": m["metric"], "samples": [[t.isoformat(), v] for t, v in points], "projection": m})
    return {"at": plan.get("at"), "warnings": warnings, "too_few": too_few, "metrics": len(metrics), "charts": charts}


def build_digest(
    services: Any, period: str = "week", now: datetime | None = None, timezone: str | None = None
) -> dict[str, Any]:
    """Everything the report shows for the period ending ``now``; its times are shown in
    ``timezone`` (default: the services' ``settings.timezone``, else UTC)."""
    now = now or datetime.now(UTC)
    timezone = timezone or getattr(getattr(services, "settings", None), "timezone", None) or "UTC"
    since, until = period_bounds(period, now)
    runs = runs_section(services.run_history(since=since, until=until), since, until)
    health = health_section(services, now)
    backups = backups_section(services, since, now)
    capacity = capacity_section(services, now)
    heartbeats = services.heartbeats(since=since, now=now)
    status = "ok"
    if (
        heartbeats["down"]
        or runs["failed_count"]
        or health["failing_tasks"]
        or backups["broken"]
        or health["overdue_tasks"]
        or capacity["warnings"]
        or any(t["status"] != "ok" for t in health["targets"])
    ):
        status = "warning"
    if (
        any(t["status"] == "critical" for t in health["targets"])
        or backups["broken"]
        or any(w.get("status") == "critical" for w in capacity["warnings"])
    ):
        status = "critical"
    return {
        "period": period,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "generated_at": now.isoformat(),
        "timezone": timezone,
        "status": status,
        "runs": runs,
        "health": health,
        "backups": backups,
        "capacity": capacity,
        "heartbeats": heartbeats,
    }
