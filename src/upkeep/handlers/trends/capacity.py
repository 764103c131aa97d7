"""``capacity.sample`` records metrics over time; ``capacity.plan`` fits their trends and projects when
each will cross its threshold. The seed said "estimate by hand"; this does the arithmetic.

Samples
-------
``capacity.sample`` writes one record per run in records domain ``capacity``, key ``sample/<ISO time>``::

    {"at": "2026-11-22T03:00:00+00:00", "metrics": {"disk.used_percent:/": 61.2, ...}, "units": {...}}

Metric names are ``<family>:<subject>``:

============================  ======  ==============================================================
family                        unit    source
============================  ======  ==============================================================
``disk.used_percent``         %       ``disk_paths`` (psutil.disk_usage)
``disk.used_bytes``           bytes   ``disk_paths``
``dir.bytes``                 bytes   ``size_paths``: total size of the files under a directory (logs,
                                      uploads, backups)
``db.size``                   bytes   ``databases`` targets: ``<target>`` (all databases) and
                                      ``<target>/<db>``; SQLite: the file
``table.bytes``/``table.rows``        the ``top_tables`` (10) largest tables of the target's database
``requests.per_min``          req/min ``logs`` (targets.logs names or globs): requests in the last
                                      ``request_window`` (1h) / its minutes, via ``logs.analyze``
``cpu.percent``               %       psutil over ``cpu_sample_seconds``
``memory.used_percent``       %       psutil
``queue.depth``               runs    upkeep's runs waiting to start (pending + submitted, due now)
============================  ======  ==============================================================

Samples older than ``keep_days`` (400) are deleted by each sample run.

Projection
----------
``capacity.plan`` takes each metric's samples of the last ``lookback_days`` (90) and fits a straight
line by ordinary least squares over time (``value = intercept + slope * days``). ``growth_per_day`` is the
slope; when the slope is positive and the metric has a threshold, the **crossing date** is where the
line meets it. Thresholds are glob patterns over metric names (``thresholds`` in config, merged over
these defaults, the seed's scaling triggers): ``disk.used_percent:*`` 80, ``db.size:*`` 100 GiB,
``requests.per_min:*`` 1,000, ``queue.depth*`` 5,000.

Per metric ``status``: ``too_few_samples`` (fewer than ``min_samples`` (3) samples or spanning less than
``min_span_days`` (1): said, never guessed), ``no_threshold``, ``critical`` (the latest sample is at or
over the threshold), ``warning`` (the crossing is within ``warn_within_days`` (30)), else ``ok``. The
outcome is the worst status. The plan is also kept as record ``plan/latest`` for reports and the UI.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any

import psutil
from pydantic import Field

from upkeep.bounds import MAX_BYTES, MAX_CALL_SECONDS, MAX_COUNT, MAX_DAYS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError, ConnectionFailed
from upkeep.handlers.findings import worst_of

DOMAIN = "capacity"
SAMPLE_PREFIX = "sample/"
PLAN_KEY = "plan/latest"
GIB = 1024**3
MAX_PROJECTION_DAYS = 100 * 365
DEFAULT_THRESHOLDS: dict[str, float] = {
    "disk.used_percent:*": 80.0,
    "db.size:*": 100.0 * GIB,
    "requests.per_min:*": 1000.0,
    "queue.depth*": 5000.0,
}
UNITS = {
    "disk.used_percent": "%",
    "disk.used_bytes": "bytes",
    "dir.bytes": "bytes",
    "db.size": "bytes",
    "table.bytes": "bytes",
    "table.rows": "rows",
    "requests.per_min": "req/min",
    "cpu.percent": "%",
    "memory.used_percent": "%",
    "queue.depth": "runs",
}


def unit_of(metric: str) -> str:
    return UNITS.get(metric.split(":", 1)[0], "")


def fmt(value: float, unit: str) -> str:
    """A value for messages: bytes as KiB/MiB/GiB, percentages with %, others with their unit."""
    if unit == "bytes":
        sign = "-" if value < 0 else ""
        value = abs(value)
        for name in ("B", "KiB", "MiB", "GiB", "TiB"):
            if value < 1024 or name == "TiB":
                return f"{sign}{value:.0f} {name}" if name == "B" else f"{sign}{value:.1f} {name}"
            value /= 1024
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:,.4g} {unit}".strip()


# --- sampling ------------------------------------------------------------------------------------------


class CapacitySampleConfig(HandlerConfig):
    """What to measure on each run."""

    disk_paths: list[str] = host_scoped(["/"], description="Filesystems whose usage is sampled.")
    size_paths: list[str] = host_scoped(default_factory=list, description="Directories whose total size is sampled.")
    databases: list[str] = host_scoped(
        default_factory=list,
        refs=("databases",),
        also=("upkeep",),
        description="Database targets (names, 'upkeep' or URLs).",
    )
    top_tables: int = Field(10, ge=0, le=1000, description="Largest tables sampled per database target.")
    logs: list[str] = host_scoped(
        default_factory=list, refs=("logs",), description="targets.logs names or globs for request volume."
    )
    request_window: str = Field("1h", description="Window of the request rate (as in logs.analyze).")
    cpu: bool = Field(True, description="Sample CPU percent.")
    cpu_sample_seconds: float = Field(0.5, gt=0, le=10, description="CPU sampling window in seconds.")
    memory: bool = Field(True, description="Sample memory used percent.")
    queue: bool = Field(True, description="Sample upkeep's own queue depth.")
    keep_days: int = Field(400, ge=1, le=MAX_DAYS, description="Delete samples older than this.")
    connect_timeout: float = Field(
        5.0, gt=0, le=MAX_CALL_SECONDS, description="Seconds to wait for each database connection."
    )


def dir_size(path: str) -> int:
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _database_metrics(ctx: RunContext, name: str, config: CapacitySampleConfig) -> dict[str, float]:
    from upkeep.handlers.db.postgres import connect
    from upkeep.handlers.db.targets import is_sqlite, sqlite_path, target_from_ctx

    target = target_from_ctx(ctx, name)
    label = name if "://" not in name else target.get("name", "db")
    if is_sqlite(target):
        path = sqlite_path(target)
        size = sum(os.path.getsize(p) for p in (str(path), f"{path}-wal") if os.path.exists(p))
        return {f"db.size:{label}": float(size)}
    out: dict[str, float] = {}
    with connect(target, connect_timeout=config.connect_timeout) as conn:
        rows = conn.execute(
            "SELECT datname, pg_database_size(datname) FROM pg_database "
            "WHERE datallowconn AND NOT datistemplate ORDER BY datname"
        ).fetchall()
        for db, size in rows:
            out[f"db.size:{label}/{db}"] = float(size)
        out[f"db.size:{label}"] = float(sum(size for _, size in rows))
        if config.top_tables:
            db = conn.info.dbname
            tables = conn.execute(
                "SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid), "
                "coalesce(s.n_live_tup, c.reltuples::bigint) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%%' ORDER BY 2 DESC LIMIT %s",
                (config.top_tables,),
            ).fetchall()
            for table, size, rows_ in tables:
                out[f"table.bytes:{label}/{db}/{table}"] = float(size)
                out[f"table.rows:{label}/{db}/{table}"] = float(max(0, rows_ or 0))
    return out


def _request_metrics(ctx: RunContext, config: CapacitySampleConfig) -> dict[str, float]:
    from upkeep.handlers.logs.parse import analyze_paths, parse_window

    now = ctx.now()
    start, end = parse_window(config.request_window, now)
    if start is None or end is None:
        raise ConfigError("request_window must be a duration such as '1h'", field="request_window")
    minutes = max((end - start).total_seconds() / 60, 1e-9)
    out = {}
    for entry in config.logs:
        if entry in ctx.targets.names("logs"):
            spec = ctx.targets.get("logs", entry)
            paths = spec.get("paths") if isinstance(spec, dict) else None
            paths = [paths] if isinstance(paths, str) else list(paths or [])
            name = entry
        else:
            paths, name = [entry], entry
        analysis = analyze_paths(paths, window=config.request_window, now=now)
        out[f"requests.per_min:{name}"] = round(analysis["requests"]["total"] / minutes, 3)
    return out


def take_sample(ctx: RunContext, config: CapacitySampleConfig) -> tuple[dict[str, float], list[dict]]:
    """All configured metrics now; problems become findings instead of failing the whole sample."""
    metrics: dict[str, float] = {}
    findings: list[dict] = []
    for path in config.disk_paths:
        try:
            usage = psutil.disk_usage(path)
        except OSError as exc:
            findings.append({"severity": "warning", "item": path, "message": f"cannot stat {path}: {exc.strerror}"})
            continue
        metrics[f"disk.used_percent:{path}"] = round(usage.percent, 3)
        metrics[f"disk.used_bytes:{path}"] = float(usage.used)
    for path in config.size_paths:
        ctx.check_cancelled()
        if not os.path.isdir(path):
            findings.append({"severity": "warning", "item": path, "message": f"{path} is not a directory"})
            continue
        metrics[f"dir.bytes:{path}"] = float(dir_size(path))
    for name in config.databases:
        ctx.check_cancelled()
        try:
            metrics.update(_database_metrics(ctx, name, config))
        except ConnectionFailed as exc:
            findings.append({"severity": "warning", "item": name, "message": str(exc)})
    if config.logs:
        metrics.update(_request_metrics(ctx, config))
    if config.cpu:
        psutil.cpu_percent(None)
        time.sleep(config.cpu_sample_seconds)
        metrics["cpu.percent"] = float(psutil.cpu_percent(None))
    if config.memory:
        metrics["memory.used_percent"] = float(psutil.virtual_memory().percent)
    if config.queue and ctx.services is not None and hasattr(ctx.services, "health_summary"):
        depth = ctx.services.health_summary(ctx.now())["queue_depth"]
        metrics["queue.depth"] = float(depth.get("pending", 0) + depth.get("submitted", 0))
    return metrics, findings


def sample_key(at: datetime) -> str:
    return SAMPLE_PREFIX + at.isoformat(timespec="seconds")


def store_sample(records: Any, at: datetime, metrics: dict[str, float]) -> None:
    records.put(sample_key(at), {"at": at.isoformat(), "metrics": metrics, "units": {m: unit_of(m) for m in metrics}})


@handler("capacity.sample", config=CapacitySampleConfig, aliases=["capacity.collect"])
def capacity_sample(ctx: RunContext, config: CapacitySampleConfig) -> dict:
    """Record disk, directory, database and table sizes, request volume, CPU, memory and queue depth."""
    now = ctx.now()
    chosen = [*config.disk_paths, *config.size_paths, *config.databases, *config.logs]
    ctx.scope(chosen, "disk_paths, size_paths, databases and logs in the task's config", what="sampled")
    metrics, findings = take_sample(ctx, config)
    records = ctx.records(DOMAIN)
    store_sample(records, now, metrics)
    cutoff = sample_key(now - timedelta(days=config.keep_days))
    removed = 0
    for key in records.keys(SAMPLE_PREFIX):
        if key >= cutoff:
            break
        records.delete(key)
        removed += 1
    outcome = "warning" if findings else "ok"
    return {
        "outcome": outcome,
        "summary": f"{len(metrics)} metrics sampled" + (f", {len(findings)} problems" if findings else ""),
        "at": now.isoformat(),
        "metrics": metrics,
        "findings": findings,
        "samples_removed": removed,
    }


# --- planning -----------------------------------------------------------------------------------------------


def load_series(records: Any, since: datetime | None = None) -> dict[str, list[tuple[datetime, float]]]:
    """Every metric's samples ``[(time, value)]``, oldest first, from the records."""
    start = sample_key(since) if since else ""
    series: dict[str, list[tuple[datetime, float]]] = {}
    for key, value in records.items(SAMPLE_PREFIX):
        if key < start or not isinstance(value, dict):
            continue
        at = datetime.fromisoformat(value["at"])
        for metric, v in (value.get("metrics") or {}).items():
            if isinstance(v, int | float):
                series.setdefault(metric, []).append((at, float(v)))
    for points in series.values():
        points.sort(key=lambda p: p[0])
    return series


def fit_trend(points: list[tuple[datetime, float]]) -> dict[str, float] | None:
    """Least-squares line through ``points``: slope per day, value at the first point, r²; None if flat time."""
    if len(points) < 2:
        return None
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() / 86400 for t, _ in points]
    ys = [v for _, v in points]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    syy = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - ss_res / syy if syy else 1.0
    return {"slope_per_day": slope, "intercept": intercept, "r2": r2, "t0": t0.timestamp()}


def threshold_for(metric: str, thresholds: dict[str, float]) -> float | None:
    """The threshold of the most specific (longest) matching pattern."""
    matches = [(len(p), v) for p, v in thresholds.items() if fnmatchcase(metric, p)]
    return max(matches)[1] if matches else None


def project(
    metric: str,
    points: list[tuple[datetime, float]],
    threshold: float | None,
    now: datetime,
    *,
    min_samples: int = 3,
    min_span_days: float = 1.0,
    warn_within_days: float = 30,
) -> dict[str, Any]:
    """One metric's trend, projected crossing date and status (see the module docstring)."""
    span = (points[-1][0] - points[0][0]).total_seconds() / 86400 if points else 0.0
    out: dict[str, Any] = {
        "metric": metric,
        "unit": unit_of(metric),
        "samples": len(points),
        "span_days": round(span, 3),
        "latest": points[-1][1] if points else None,
        "latest_at": points[-1][0].isoformat() if points else None,
        "threshold": threshold,
        "growth_per_day": None,
        "crossing_date": None,
        "days_until_crossing": None,
        "r2": None,
        "fit": None,
    }
    if len(points) < min_samples or span < min_span_days:
        out["status"] = "too_few_samples"
        out["message"] = (
            f"too few samples to project: {len(points)} over {span:.1f} days (need at least "
            f"{min_samples} over {min_span_days:g} day(s))"
        )
        return out
    fit = fit_trend(points)
    if fit is None:
        out["status"] = "too_few_samples"
        out["message"] = "too few distinct sample times to fit a trend"
        return out
    t0 = datetime.fromtimestamp(fit["t0"], now.tzinfo)
    slope = fit["slope_per_day"]
    out["growth_per_day"] = slope
    out["r2"] = round(fit["r2"], 4)
    out["fit"] = {"t0": t0.isoformat(), "intercept": fit["intercept"], "slope_per_day": slope}
    if threshold is None:
        out["status"] = "no_threshold"
        out["message"] = f"changing {'+' if slope >= 0 else ''}{fmt(slope, out['unit'])}/day; no threshold set"
        return out
    if out["latest"] >= threshold:
        out["status"] = "critical"
        out["days_until_crossing"] = 0.0
        out["crossing_date"] = points[-1][0].isoformat()
        out["message"] = f"at {fmt(out['latest'], out['unit'])}, over the threshold {fmt(threshold, out['unit'])}"
        return out
    if slope <= 0:
        out["status"] = "ok"
        out["message"] = f"not growing ({fmt(slope, out['unit'])}/day); threshold {fmt(threshold, out['unit'])}"
        return out
    offset_days = (threshold - fit["intercept"]) / slope
    if offset_days > MAX_PROJECTION_DAYS:  # a tiny slope: no meaningful date (and beyond datetime's range)
        out["status"] = "ok"
        out["message"] = (
            f"growing {fmt(slope, out['unit'])}/day; reaches {fmt(threshold, out['unit'])} in more "
            f"than {MAX_PROJECTION_DAYS // 365} years"
        )
        return out
    crossing = t0 + timedelta(days=offset_days)
    days = max(0.0, (crossing - now).total_seconds() / 86400)
    out["crossing_date"] = max(crossing, now).isoformat()
    out["days_until_crossing"] = round(days, 2)
    out["status"] = "warning" if days <= warn_within_days else "ok"
    out["message"] = (
        f"growing {fmt(slope, out['unit'])}/day; reaches {fmt(threshold, out['unit'])} around "
        f"{max(crossing, now):%Y-%m-%d} (in {days:.0f} days)"
    )
    return out


class CapacityPlanConfig(HandlerConfig):
    """How trends are fitted and judged."""

    metrics: list[str] = overridable(["*"], description="Glob patterns of the metrics to plan.")
    thresholds: dict[str, Annotated[float, Field(ge=0, le=MAX_BYTES)]] = Field(
        default_factory=dict, description="Metric glob -> threshold, merged over the seed's scaling triggers."
    )
    lookback_days: float = Field(90, gt=0, le=MAX_DAYS, description="Fit over the samples of this many days.")
    min_samples: int = Field(
        3, ge=2, le=MAX_COUNT, description="Fewer samples than this: 'too few samples', no projection."
    )
    min_span_days: float = Field(1.0, ge=0, le=MAX_DAYS, description="Samples must span at least this many days.")
    warn_within_days: float = Field(
        30, ge=0, le=MAX_DAYS, description="Warning when a crossing is within this many days."
    )


@handler("capacity.plan", config=CapacityPlanConfig, aliases=["capacity.project"])
def capacity_plan(ctx: RunContext, config: CapacityPlanConfig) -> dict:
    """Fit each metric's trend, report growth per day and the date it crosses its threshold."""
    now = ctx.now()
    thresholds = {**DEFAULT_THRESHOLDS, **config.thresholds}
    records = ctx.records(DOMAIN)
    series = load_series(records, now - timedelta(days=config.lookback_days))
    results = []
    for metric in sorted(series):
        if not any(fnmatchcase(metric, p) for p in config.metrics):
            continue
        results.append(
            project(
                metric,
                series[metric],
                threshold_for(metric, thresholds),
                now,
                min_samples=config.min_samples,
                min_span_days=config.min_span_days,
                warn_within_days=config.warn_within_days,
            )
        )
    outcome = worst_of(r["status"] for r in results)  # no_threshold, too_few_samples: ok
    findings = [
        {
            "severity": r["status"],
            "item": r["metric"],
            "message": f"{r['metric']}: {r['message']}",
            "crossing_date": r["crossing_date"],
        }
        for r in results
        if r["status"] in ("warning", "critical")
    ]
    few = [r["metric"] for r in results if r["status"] == "too_few_samples"]
    for f in findings:
        ctx.warning("capacity", f["message"], metric=f["item"], crossing_date=f["crossing_date"])
    if not results:
        summary = "no capacity samples yet: schedule capacity.sample (too few samples to project)"
    else:
        summary = f"{len(results)} metrics: {len(findings)} near or over threshold"
        if findings:
            summary += " (" + "; ".join(f["message"] for f in findings[:2]) + ")"
        if few:
            summary += f"; {len(few)} with too few samples"
    plan = {"at": now.isoformat(), "outcome": outcome, "metrics": results, "thresholds": thresholds}
    records.put(PLAN_KEY, plan)
    return {
        "outcome": outcome,
        "summary": summary,
        "metrics": results,
        "findings": findings,
        "too_few_samples": few,
        "thresholds": thresholds,
    }
