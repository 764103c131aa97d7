"""``health.check``: concurrent health checks of services, with flap damping kept in records.

Targets
-------
From the inventory, ``upkeep.yaml``::

    targets:
      services:
        api:      {type: http, url: "https://api.example.com/health",
                   expect_body: [{jsonpath: '$.status == "healthy"'}], warn_ms: 500}
        db:       {type: postgres, url: "postgresql://app:${env:PG_PASSWORD}@127.0.0.1:5432/app"}
        cache:    {type: redis, url: "redis://127.0.0.1:6379/0", memory_warn_percent: 80}
        web:      {type: docker, container: web}
        worker:   {type: process, pidfile: /run/worker.pid}
        app:      {type: pm2, app: meta-chat-api, max_restarts: 5}
        nginx:    {type: systemd, unit: nginx.service}
        smtp:     {type: tcp, host: 127.0.0.1, port: 25}
        rootfs:   {type: disk, path: /, warn_percent: 80, critical_percent: 90, min_free: 5G}
        ram:      {type: memory}
        cpu:      {type: load, warn_per_core: {load5: 1.0}}

and/or inline in the task config (``checks: [{name: x, type: http, url: ...}, ...]``). The key of an
inventory entry is its name. ``databases: [main]`` also checks ``targets.databases`` entries
(PostgreSQL: connect and ``SELECT 1``; Redis: ``PING``), with the postgres and redis kinds' defaults.
Every kind accepts ``timeout``, ``failure_threshold`` and ``success_threshold``; the kind-specific
fields and thresholds are documented in ``upkeep/handlers/health/probes/<kind>.py``. HTTP body conditions:
``contains`` is a SUBSTRING test (``contains: healthy`` also matches ``"unhealthy"``); use
``jsonpath: '$.status == "healthy"'``.
Expected status defaults to 2xx: a 500 is never healthy.

Execution
---------
All targets run on one asyncio loop, at most ``concurrency`` (100) at a time: HTTP through one shared
aiohttp session, TCP and Docker natively async, blocking checks (PostgreSQL, Redis, process, PM2,
systemd, disk) in a thread pool. Each check is bounded by its ``timeout`` (task default 10 s).

Result
------
``outcome`` is the worst reported status; ``summary`` e.g. ``"12 targets: 11 ok, 1 critical (api: HTTP
500: expected 2xx)"``; ``targets``: one entry per target ``{name, kind, status, observed, latency_ms,
detail, data}``; ``counts``; ``findings`` for every target not ok; ``timing`` (seconds spent checking
and writing records).

Flap damping and the record format
----------------------------------
Each target keeps one record in records domain ``health`` under key ``target/<name>``::

    {
      "version": 1,
      "name": "api", "kind": "http",
      "status": "ok|warning|critical",      # REPORTED status (after damping)
      "observed": "ok|warning|critical",    # what the last check itself saw
      "detail": "HTTP 500: expected 2xx",   # the last check's detail
      "note": "failure 1 of 2 before critical" | "recovering: 1 of 2 successes" | "",
      "latency_ms": 12.3 | null,
      "consecutive_failures": 0, "consecutive_successes": 5,
      "failure_threshold": 1, "success_threshold": 1,
      "since": ISO-8601,                    # when the reported status last changed
      "previous_status": "critical" | null, # reported status before that change
      "last_check": ISO-8601, "last_ok": ISO-8601 | null, "last_failure": ISO-8601 | null,
      "checks": 42,                         # observations so far
      "state": {...}                        # kind-specific memory (process pid, restart counters)
    }

A failure is an observed critical. With ``failure_threshold`` N (default 1: no damping) a target is
reported critical only after N consecutive failures; the failures before that are reported as
**warning** with the note "failure k of N before critical". A critical target is reported recovered
after ``success_threshold`` M consecutive non-critical observations (default 1). Times come from
``ctx.now()``. ``summarize_health_records`` reads these records for ``health.report``.
Records of targets no longer configured are left alone (another task may still check them); their
``last_check`` shows they are stale.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, ValidationError

from upkeep.bounds import MAX_CALL_SECONDS, MAX_DAYS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import (
    HandlerConfig,
    format_validation_error,
    handler,
    host_scoped,
    inventory_kind,
    inventory_names,
    overridable,
)
from upkeep.engine.targets import target_id
from upkeep.errors import ConfigError
from upkeep.handlers.health.probes import (
    TARGET_ADAPTER,
    TARGET_MODELS,
    AnyTarget,
    CheckEnv,
    CheckResult,
    TargetBase,
    run_checks,
)
from upkeep.handlers.health.probes.base import CERT_CRITICAL_DAYS, CERT_WARN_DAYS, OK, STATUSES, WARNING, rank, worst
from upkeep.handlers.health.probes.damping import apply as apply_damping
from upkeep.secrets import scrub

DOMAIN = "health"
KEY_PREFIX = "target/"
INVENTORY_KIND = "services"
DATABASES_KIND = "databases"
MAX_TARGET_EVENTS = 50


class HealthCheckConfig(HandlerConfig):
    services: list[str] | None = inventory_names(
        "services",
        None,
        overridable=True,
        description="Inventory targets (targets.services) to check; null checks all of them, [] none "
        "(only the inline `checks`).",
    )
    databases: list[str] = inventory_names(
        "databases",
        [],
        overridable=True,
        description="Inventory targets (targets.databases) to check: PostgreSQL connect and SELECT 1, Redis PING.",
    )
    checks: list[AnyTarget] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Inline targets, each with `type` and the kind's fields."
    )
    concurrency: int = Field(100, ge=1, le=2000, description="Checks in flight at once.")
    timeout: float = overridable(10.0, gt=0, le=MAX_CALL_SECONDS, description="Default per-check timeout in seconds.")
    failure_threshold: int = Field(
        1,
        ge=1,
        le=10000,
        description="Default consecutive failures before a target is reported critical (1 = at once).",
    )
    success_threshold: int = Field(
        1, ge=1, le=10000, description="Default consecutive successes before a critical target is reported recovered."
    )
    cert_warn_days: int = Field(CERT_WARN_DAYS, ge=0, le=MAX_DAYS, description="TLS certificate expiry warning (days).")
    cert_critical_days: int = Field(
        CERT_CRITICAL_DAYS, ge=0, le=MAX_DAYS, description="TLS certificate expiry critical (days)."
    )
    docker_host: str | None = host_scoped(
        None, description="Docker Engine address for docker targets (default $DOCKER_HOST or the unix socket)."
    )


def _check_service(name: str, entry: dict[str, Any]) -> TargetBase:
    """A ``targets.services`` entry: the target model of its ``type`` (the key is its name)."""
    model = TARGET_MODELS.get(str(entry.get("type")))
    if model is None:
        raise ConfigError(f"type must be one of {', '.join(TARGET_MODELS)}", field="type")
    return model.model_validate({**entry, "name": name})


inventory_kind(INVENTORY_KIND, _check_service)


def _collect_targets(ctx: RunContext, config: HealthCheckConfig) -> list[tuple[str, TargetBase, str | None]]:
    """``(name, target, inventory id)`` of every target to check (the id is None for inline checks)."""
    chosen: list[tuple[str, TargetBase, str | None]] = []
    names = ctx.targets.names(INVENTORY_KIND) if config.services is None else config.services
    for name in names:
        raw = ctx.targets.get(INVENTORY_KIND, name)
        if not isinstance(raw, dict):
            raise ConfigError(f"targets.{INVENTORY_KIND}.{name} must be a mapping with a `type`")
        try:
            target = TARGET_ADAPTER.validate_python({**raw, "name": name})
        except ValidationError as exc:
            raise ConfigError(
                f"invalid health target: {format_validation_error(exc, prefix=f'targets.{INVENTORY_KIND}.{name}')}"
            ) from None
        chosen.append((name, target, target_id(INVENTORY_KIND, name)))
    for name in config.databases:
        chosen.append(
            (name, _database_check(name, ctx.targets.get(DATABASES_KIND, name)), target_id(DATABASES_KIND, name))
        )
    for target in config.checks:
        chosen.append((target.name or target.default_name(), target, None))
    seen: set[str] = set()
    for name, _, _ in chosen:
        if name in seen:
            raise ConfigError(
                f"two health targets are named {name!r}",
                hint="give inline checks a distinct `name` (inventory keys are names)",
            )
        seen.add(name)
    return chosen


def _database_check(name: str, entry: Any) -> TargetBase:
    """The check of a ``targets.databases`` entry: a postgres or redis target built from it."""
    from upkeep.handlers.db import postgres as _pg
    from upkeep.handlers.db.targets import is_sqlite

    where = f"targets.{DATABASES_KIND}.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping")
    url = str(entry.get("url") or "")
    kind = entry.get("type") or ("redis" if url.startswith(("redis://", "rediss://")) else None)
    if kind == "redis":
        return TARGET_MODELS["redis"].model_validate({"type": "redis", "name": name, "url": url})
    if kind not in (None, "postgres") or is_sqlite(entry):
        raise ConfigError(
            f"health.check checks PostgreSQL and Redis databases; {where} is {kind or 'SQLite'}",
            field="databases",
        )
    spec = {k: v for k, v in entry.items() if k in ("url", "dsn", "database", *_pg.LIBPQ_KEYS)}
    target = _pg.PgTarget.of(spec)
    return TARGET_MODELS["postgres"].model_validate({"type": "postgres", "name": name, "url": target.url()})


def _put_records(records: Any, items: list[tuple[str, dict]]) -> None:
    put_many = getattr(records, "put_many", None)
    if put_many is not None:  # one transaction when the records API offers it
        put_many(items)
        return
    for key, value in items:
        records.put(key, value)


@handler("health.check", config=HealthCheckConfig, requires=())
def health_check(ctx: RunContext, config: HealthCheckConfig) -> dict:
    """Check services concurrently (HTTP, TCP, PostgreSQL, Redis, processes, PM2, systemd, Docker,
    disk, memory, load); report each target's status with flap damping kept in records."""
    targets = _collect_targets(ctx, config)
    why = "every targets.services entry" if config.services is None else "services in the task's config"
    if config.databases:
        why += f" and targets.databases {', '.join(config.databases)}"
    ctx.scope(
        [name for name, _, _ in targets], why + (" and its inline checks" if config.checks else ""), what="targets"
    )
    if not targets:
        return {"outcome": OK, "summary": "no health targets configured", "targets": [], "counts": {}, "findings": []}
    records = ctx.records(DOMAIN)
    previous = {key[len(KEY_PREFIX) :]: value for key, value in records.items(KEY_PREFIX)}
    env = CheckEnv(
        now=ctx.now(),
        timeout=config.timeout,
        cert_warn_days=config.cert_warn_days,
        cert_critical_days=config.cert_critical_days,
        docker_host=config.docker_host,
        previous=previous,
        run_command=ctx.run_command,
    )
    done = [0, time.monotonic()]

    def on_result(_: CheckResult) -> None:  # progress at most twice a second: each is a store write
        done[0] += 1
        if time.monotonic() - done[1] >= 0.5:
            done[1] = time.monotonic()
            ctx.progress(done[0] / len(targets), f"{done[0]}/{len(targets)} targets checked")

    started = time.perf_counter()
    results = run_checks(
        [(name, target) for name, target, _ in targets],
        env,
        concurrency=config.concurrency,
        on_result=on_result,
        before_each=ctx.check_cancelled,
    )
    checks_seconds = time.perf_counter() - started
    now = ctx.now()
    rows: list[dict[str, Any]] = []
    writes: list[tuple[str, dict]] = []
    by_name = {name: (target, inventory_id) for name, target, inventory_id in targets}
    for result in results:
        target, inventory_id = by_name[result.name]
        result.detail = scrub(result.detail, ctx.secrets)
        record, reported, note = apply_damping(
            previous.get(result.name),
            result,
            now,
            target.failure_threshold or config.failure_threshold,
            target.success_threshold or config.success_threshold,
        )
        writes.append((KEY_PREFIX + result.name, record))
        detail = f"{result.detail} ({note})" if note else result.detail
        rows.append(
            {
                "name": result.name,
                "kind": result.kind,
                "status": reported,
                "observed": result.status,
                "latency_ms": result.latency_ms,
                "detail": detail,
                "data": result.data,
                "target": inventory_id,
            }
        )
    started = time.perf_counter()
    _put_records(records, writes)
    timing = {"checks_seconds": round(checks_seconds, 3), "records_seconds": round(time.perf_counter() - started, 3)}
    findings = [
        {"severity": r["status"], "target": r["name"], "kind": r["kind"], "message": r["detail"]}
        for r in sorted(rows, key=lambda r: -rank(r["status"]))
        if r["status"] != OK
    ]
    for finding in findings[:MAX_TARGET_EVENTS]:  # one event each (a store write), bounded
        ctx.log(
            "error" if finding["severity"] == "critical" else "warning",
            "target",
            f"{finding['target']}: {finding['message']}",
            target=finding["target"],
            status=finding["severity"],
        )
    if len(findings) > MAX_TARGET_EVENTS:
        ctx.warning("target", f"{len(findings) - MAX_TARGET_EVENTS} more targets not ok (see the result)")
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    outcome = worst(r["status"] for r in rows)
    summary = summary_line([(r["name"], r["status"], r["detail"]) for r in rows])
    ctx.info("summary", summary, counts=counts)
    return {
        "outcome": outcome,
        "summary": summary,
        "counts": counts,
        "targets": rows,
        "findings": findings,
        "timing": timing,
    }


def summary_line(entries: list[tuple[str, str, str]], limit: int = 3) -> str:
    """``"12 targets: 11 ok, 1 critical (api: HTTP 500)"`` from ``(name, status, detail)`` tuples."""
    if not entries:
        return "no targets"
    counts = {s: sum(1 for _, status, _ in entries if status == s) for s in STATUSES}
    text = f"{len(entries)} target{'s' if len(entries) != 1 else ''}: " + ", ".join(
        f"{n} {s}" for s, n in counts.items() if n
    )
    problems = sorted((e for e in entries if e[1] != OK), key=lambda e: -rank(e[1]))
    if problems:
        shown = "; ".join(f"{name}: {_short(detail)}" for name, _, detail in problems[:limit])
        more = f"; +{len(problems) - limit} more" if len(problems) > limit else ""
        text += f" ({shown}{more})"
    return text


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def summarize_health_records(
    items: list[tuple[str, dict]],
    now: datetime | None = None,
    stale_after: timedelta = timedelta(days=1),
) -> dict[str, Any]:
    """Summarise ``ctx.records("health").items("target/")`` for ``health.report`` (pure function).

    Returns ``{"outcome", "summary", "total", "counts": {ok, warning, critical}, "problems": [...],
    "targets": [...], "stale": [...]}``. ``problems`` lists targets not ok, critical first, each
    ``{name, kind, status, detail, note, since, consecutive_failures, last_check}``; ``stale`` names
    targets whose ``last_check`` is older than ``stale_after`` before ``now`` (when ``now`` is given);
    stale targets make the outcome at least ``warning`` (checks that stopped running are a problem).
    Unknown or malformed records are skipped.
    """
    targets = []
    for key, record in items:
        if not isinstance(record, dict) or record.get("status") not in STATUSES:
            continue
        name = record.get("name") or key.removeprefix(KEY_PREFIX)
        targets.append(
            {
                "name": name,
                "kind": record.get("kind"),
                "status": record["status"],
                "observed": record.get("observed"),
                "detail": record.get("detail", ""),
                "note": record.get("note", ""),
                "latency_ms": record.get("latency_ms"),
                "since": record.get("since"),
                "last_check": record.get("last_check"),
                "consecutive_failures": record.get("consecutive_failures", 0),
            }
        )
    targets.sort(key=lambda t: t["name"])
    stale = []
    if now is not None:
        for t in targets:
            try:
                checked = datetime.fromisoformat(t["last_check"]) if t["last_check"] else None
            except ValueError:
                checked = None
            if checked is None or now - checked > stale_after:
                stale.append(t["name"])
    problems = sorted((t for t in targets if t["status"] != OK), key=lambda t: (-rank(t["status"]), t["name"]))
    counts = {s: sum(1 for t in targets if t["status"] == s) for s in STATUSES}
    outcome = worst(t["status"] for t in targets)
    entries = [(t["name"], t["status"], t["detail"] + (f" ({t['note']})" if t["note"] else "")) for t in targets]
    summary = summary_line(entries) if targets else "no health targets recorded"
    if stale:
        summary += f"; {len(stale)} not checked for over {stale_after}"
        outcome = worst([outcome, WARNING])
    return {
        "outcome": outcome,
        "summary": summary,
        "total": len(targets),
        "counts": counts,
        "problems": problems,
        "targets": targets,
        "stale": stale,
    }
