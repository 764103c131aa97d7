"""``logs.analyze``: errors, request volume, 5xx rate and response times from application logs.

Replaces the seed's ``grep '"level":"ERROR"' | wc -l`` and ``grep durationMs | awk`` pipelines, which
counted over the whole file rather than the last 24 hours. Here every record is placed in the window
by its **own timestamp**; records without a parseable one are counted as ``no_timestamp`` (never in
the window), unparseable lines as ``malformed``.

Formats (``format: auto`` looks at the first 200 lines of each file):

- JSON lines: pino (numeric ``level``, ``time`` in epoch ms, ``req``/``res``, ``responseTime``),
  bunyan (numeric level, ISO ``time``), structlog (``event``, ``level``, ``timestamp``) and plain JSON
  (``level``/``severity``, ``timestamp``/``time``/``ts``/``@timestamp``, ``message``/``msg``,
  ``statusCode``/``status``/``res.statusCode``, ``durationMs``/``responseTime``/``request_time``...,
  ``route``/``path``/``url``/``req.url``). Fields are detected per file; ``*_field`` options force one.
- ``combined``: nginx/apache combined or common log format, with an optional trailing request time
  in seconds (nginx ``$request_time``; Apache's ``%D`` is microseconds: set ``duration_unit: us``).
- ``text``: lines that start with a timestamp, optionally followed by a level word
  (``2026-11-20 10:00:00,123 ERROR something``); lines without one (stack traces) have no timestamp.

Files may be plain, gzip or zstd (sniffed from their magic bytes, so rotated names do not matter:
PM2's ``api-out__2026-12-03_00-00-00.log`` and its ``.gz`` are read alike with ``api-out*.log*``).
Timestamps without an offset are read in ``timezone`` (default UTC). A record's duration is read
from one field per file, in milliseconds unless ``duration_unit`` says otherwise (``auto``: seconds
for ``request_time`` and access logs, milliseconds for everything else).

Engine: DuckDB, chosen by measurement on a 1 GB, 5M-line JSON API log on two cores: its
``read_ndjson`` with typed columns was the fastest scan tried (polars' ``scan_ndjson`` 1.6 s and
pyarrow's JSON reader 2.7 s for the scan alone, with 1 GB RSS; msgspec decoding plus a minimal
Python loop 6.5 s+ of CPU). ``make bench`` (``benchmarks/bench_logs_analyze.py``) times
``upkeep run logs.analyze`` end to end on logs written by pino against the seed's grep|awk
pipeline and a plain DuckDB query, and prints the current figures.
DuckDB also reads gzip and zstd and spills its hash tables under ``memory_limit``. Text formats go
through DuckDB too (``read_csv`` of whole lines plus ``regexp_extract``), so every format lands in one
query.

Percentiles (p50/p95/p99, per route p95) use linear interpolation between ranks (numpy's default,
``statistics.quantiles(method="inclusive")``) over a histogram of durations: exact for whole
milliseconds below 10 s, otherwise durations are rounded to 4 significant digits (at most 0.05 % off).

Inventory (``upkeep.yaml``)::

    targets:
      logs:
        api:
          paths: ["/srv/app/logs/api-out*.log*"]   # globs; rotated and compressed files included
          format: auto                              # auto | json | combined | text
          duration_field: durationMs                # optional; any config field below may be set here
          duration_unit: auto                       # auto | ms | s | us | ns
          by_route: false                           # true: figures per route too (costs a scan's worth)

Per-route figures (requests, 5xx, average and p95 of the ``top_routes`` busiest routes, raw URLs
with their id segments replaced by ``:id``) are opt-in: ``by_route: true``. Reading every record's
URL and normalising it costs about as much as the whole scan of the other fields (measured on the
benchmark's 1M-line pino log, the analysis in one process: 1.36 s of CPU with routes, 0.79 s
without), and the error count, 5xx rate and percentiles an operator checks daily do not need it;
turn it on for the log target whose slow routes you are chasing. A URL is normalised per record,
not once per distinct URL: URLs carrying ids are nearly all distinct, so grouping by them first
would grow with the file (``benchmarks/README.md``).

Thresholds (task config, or per log target): 5xx rate warn 1 % / critical 5 % (only with at least
``min_requests`` requests in the window), p95 warn 500 ms / critical 2000 ms, error count warn and
critical off unless set. Outcome is the worst finding. A glob that matches nothing is a warning finding;
when no glob of the run matches a file, the run fails naming them (an analysis of nothing is no news).

The analysis itself is :func:`upkeep.handlers.logs.parse.analyze_paths`, which health.report,
performance.review and capacity.plan call directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationError

from upkeep.bounds import MAX_CALL_MS, MAX_COUNT
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, format_validation_error, handler, host_scoped, overridable
from upkeep.errors import ConfigError, UserError
from upkeep.handlers.findings import outcome_of
from upkeep.handlers.logs.parse import analyze_paths, parse_window

TARGET_ONLY = ("paths",)


class LogsAnalyzeConfig(HandlerConfig):
    """Which logs to read, over which window, and the thresholds that set the outcome."""

    targets: list[str] = Field(
        default_factory=list,
        description="Names under targets.logs in the inventory; empty with no paths means every log target.",
    )
    paths: list[str] = host_scoped(default_factory=list, description="Extra glob patterns, analysed as target 'paths'.")
    format: Literal["auto", "json", "combined", "text"] = Field("auto", description="Log format, or auto-detect.")
    window: str = overridable("24h", description="Time window back from now: '30m', '24h', '7d', '2w' or 'all'.")
    since: datetime | None = overridable(None, description="Explicit window start (overrides window).")
    until: datetime | None = overridable(None, description="Explicit window end (default now).")
    timezone: str = Field("UTC", description="Time zone of timestamps that carry no offset.")
    time_field: str | None = Field(None, description="JSON key of the timestamp (dotted for nested); auto if unset.")
    level_field: str | None = Field(None, description="JSON key of the level; auto if unset.")
    message_field: str | None = Field(None, description="JSON key of the message; auto if unset.")
    status_field: str | None = Field(None, description="JSON key of the HTTP status; auto if unset.")
    route_field: str | None = Field(None, description="JSON key of the route or URL; auto if unset.")
    duration_field: str | None = Field(
        None, description="JSON key of the duration (durationMs, responseTime, request_time...); auto if unset."
    )
    duration_unit: Literal["auto", "ms", "s", "us", "ns"] = Field(
        "auto", description="Unit of the duration field; auto = s for request_time and access logs, else ms."
    )
    top_errors: int = Field(10, ge=0, le=1000, description="How many grouped error messages to list.")
    by_route: bool = Field(
        False, description="Also figures per route (requests, 5xx, avg, p95); reads and normalises every URL."
    )
    top_routes: int = Field(10, ge=0, le=1000, description="With by_route: how many routes (by request count) to list.")
    rate_5xx_warn: float | None = Field(0.01, ge=0, le=1, description="5xx share of requests that warns.")
    rate_5xx_critical: float | None = Field(0.05, ge=0, le=1, description="5xx share that is critical.")
    min_requests: int = Field(
        20, ge=0, le=MAX_COUNT, description="Fewer requests than this in the window: no 5xx-rate verdict."
    )
    p95_warn_ms: float | None = Field(
        500.0, ge=0, le=MAX_CALL_MS, description="p95 duration (ms) that warns; null = off."
    )
    p95_critical_ms: float | None = Field(
        2000.0, ge=0, le=MAX_CALL_MS, description="p95 duration (ms) that is critical; null = off."
    )
    errors_warn: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Error+fatal records in the window that warn."
    )
    errors_critical: int | None = Field(None, ge=0, le=MAX_COUNT, description="Error+fatal records that are critical.")
    memory_limit: str = Field("256MB", description="DuckDB memory limit (it spills to a temp dir beyond).")


def _target_config(base: LogsAnalyzeConfig, entry: dict[str, Any], name: str) -> tuple[list[str], LogsAnalyzeConfig]:
    entry = dict(entry or {})
    paths = entry.pop("paths", None)
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ConfigError(f"log target {name!r} has no paths", hint=f"set targets.logs.{name}.paths to glob patterns")
    for key in ("targets", "window", "since", "until", "rotation"):
        entry.pop(key, None)
    try:
        merged = LogsAnalyzeConfig.model_validate({**base.model_dump(exclude_unset=True), **entry})
    except ValidationError as exc:
        raise ConfigError(
            f"invalid log target {name!r}: {format_validation_error(exc, prefix=f'targets.logs.{name}')}"
        ) from None
    return list(paths), merged


def findings_for(name: str, analysis: dict, cfg: LogsAnalyzeConfig) -> list[dict]:
    """Threshold checks for one target's figures."""
    out: list[dict] = []

    def add(severity: str, message: str, **data: Any) -> None:
        out.append({"severity": severity, "target": name, "message": message, **data})

    for pattern in analysis["missing"]:
        add("warning", f"no log file matches {pattern}", check="missing", pattern=pattern)
    for f in analysis["files"]:
        if f.get("error"):
            add("warning", f"cannot read {f['path']}: {f['error']}", check="unreadable", path=f["path"])
    records = analysis["records"]
    if records["malformed"]:
        add("info", f"{records['malformed']} malformed lines skipped", check="malformed", count=records["malformed"])
    if records["no_timestamp"]:
        add(
            "info",
            f"{records['no_timestamp']} records without a parseable timestamp (not in the window)",
            check="no_timestamp",
            count=records["no_timestamp"],
        )
    requests = analysis["requests"]
    rate = requests["rate_5xx"]
    if requests["total"] >= max(cfg.min_requests, 1):
        for severity, limit in (("critical", cfg.rate_5xx_critical), ("warning", cfg.rate_5xx_warn)):
            if limit is not None and rate >= limit:
                add(
                    severity,
                    f"5xx rate {rate:.2%} of {requests['total']} requests (threshold {limit:.2%})",
                    check="rate_5xx",
                    value=rate,
                    threshold=limit,
                )
                break
    p95 = analysis["duration"]["p95_ms"]
    if p95 is not None:
        for severity, limit in (("critical", cfg.p95_critical_ms), ("warning", cfg.p95_warn_ms)):
            if limit is not None and p95 >= limit:
                add(
                    severity,
                    f"p95 duration {p95:.0f} ms (threshold {limit:g} ms)",
                    check="p95",
                    value=p95,
                    threshold=limit,
                )
                break
    errors = analysis["errors"]
    for severity, limit in (("critical", cfg.errors_critical), ("warning", cfg.errors_warn)):
        if limit is not None and errors >= limit:
            add(
                severity,
                f"{errors} error records in the window (threshold {limit})",
                check="errors",
                value=errors,
                threshold=limit,
            )
            break
    return out


def _summary_of(name: str, a: dict) -> str:
    if not a["files"]:
        return f"{name}: no log file matches {', '.join(a['missing'])}"
    req = a["requests"]
    parts = [f"{a['errors']} errors"]
    if req["total"]:
        parts.append(f"{req['total']} requests, 5xx {req['rate_5xx']:.2%}")
    if a["duration"]["p95_ms"] is not None:
        parts.append(f"p95 {a['duration']['p95_ms']:.0f} ms")
    return f"{name}: " + ", ".join(parts)


@handler(
    "logs.analyze",
    config=LogsAnalyzeConfig,
    aliases=["logs.analyse", "logs.errors"],
    preload=["duckdb", "upkeep.handlers.logs.parse.engine:open_ahead"],
    speculative=lambda config: bool(config.paths) and not config.targets,  # the inventory is a run's
)
def logs_analyze(ctx: RunContext, config: LogsAnalyzeConfig) -> dict:
    """Errors, requests, 5xx rate and response times from logs, over a window by each record's time."""
    jobs: list[tuple[str, list[str], LogsAnalyzeConfig]] = []
    names = config.targets or ([] if config.paths else ctx.targets.names("logs"))
    for name in names:
        paths, cfg = _target_config(config, ctx.targets.get("logs", name), name)
        jobs.append((name, paths, cfg))
    if config.paths:
        jobs.append(("paths", list(config.paths), config))
    if not jobs:
        raise ConfigError(
            "logs.analyze has nothing to read",
            hint="set paths in the task config or define targets.logs in upkeep.yaml",
        )
    why = "targets and paths in the task's config" if config.targets or config.paths else "every targets.logs entry"
    ctx.scope([f"{name}: {', '.join(paths)}" for name, paths, _ in jobs], why, what="logs")
    now = ctx.now()
    start, end = parse_window(config.window, now, config.since, config.until)
    analyses: dict[str, dict] = {}
    findings: list[dict] = []
    for index, (name, paths, cfg) in enumerate(jobs):
        ctx.check_cancelled()
        ctx.progress(index / len(jobs), f"analysing {name}")
        fields = {
            "time": cfg.time_field,
            "level": cfg.level_field,
            "message": cfg.message_field,
            "status": cfg.status_field,
            "route": cfg.route_field,
        }
        analysis = analyze_paths(
            paths,
            window="all" if start is None else None,
            now=now,
            since=start,
            until=end,
            format=cfg.format,
            duration_field=cfg.duration_field,
            duration_unit=cfg.duration_unit,
            timezone=cfg.timezone,
            fields=fields,
            top_errors=cfg.top_errors,
            top_routes=cfg.top_routes,
            by_route=cfg.by_route,
            memory_limit=cfg.memory_limit,
        )
        analyses[name] = analysis
        found = findings_for(name, analysis, cfg)
        findings.extend(found)
        for f in found:
            if f["severity"] != "info":
                ctx.warning("threshold", f["message"], target=name, check=f.get("check"))
    ctx.progress(1.0, "done")
    if not any(a["files"] for a in analyses.values()):
        raise UserError(
            "nothing was analysed: no log file matches "
            + "; ".join(f"{name}: {', '.join(paths)}" for name, paths, _ in jobs),
            hint="check the paths of targets.logs in upkeep.yaml, or the task's paths",
        )
    window = {
        "since": start.isoformat() if start else None,
        "until": end.isoformat() if end else None,
        "window": config.window if config.since is None else None,
    }
    summary = "; ".join(_summary_of(n, a) for n, a in analyses.items())
    return {
        "outcome": outcome_of(findings),
        "summary": summary + (f" ({config.window})" if config.since is None else ""),
        "window": window,
        "targets": analyses,
        "findings": findings,
    }
