"""``backup.drill``: a disaster-recovery drill with a measured RTO and RPO.

For each source: restore its newest verified backup (locally, or its copy in ``from_repository``)
into a scratch database on the scratch server (``scratch_target``, default the source's), run the
source's SQL assertions, the drill's ``assertions`` and its health ``checks`` against it, and drop
it. **RTO** is the time from the drill's start to the checks passing, fallbacks included; **RPO** is
the age of the restored data (its dump's start) at the drill's start. A backup that fails (corrupt
artifact, failed restore or assertion) is marked broken and the drill falls back to the previous
verified one, saying so. The objectives give the outcome: a missed objective or nothing restorable
is critical, a fallback a warning. Results go to records domain ``backup-drill`` (trend for the
backups page and reports; ``upkeep backups estimate`` predicts restore times from them).

``checks`` are health-check targets (the kinds ``health.check`` runs); in their strings
``{scratch_url}`` becomes the scratch database's connection URL and ``{scratch_database}`` its name,
e.g. ``{type: postgres, url: "{scratch_url}"}``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import Field, field_validator

from upkeep.engine.registry import handler, host_scoped, overridable
from upkeep.engine.taskspec import parse_duration
from upkeep.errors import ConfigError
from upkeep.handlers.backup import catalog, drills, offsite, replicate
from upkeep.handlers.backup.checks import check
from upkeep.handlers.backup.config import PgToolsConfig, VerifyConfig, restore_memory_field
from upkeep.handlers.backup.reading import content_verified, held_by, verified_in, verify_entry
from upkeep.handlers.backup.sources import SourceField, source_name

PLACEHOLDERS = ("{scratch_url}", "{scratch_database}")


class DrillConfig(PgToolsConfig):
    sources: list[str] = Field(min_length=1, description="Sources to drill (catalogued / targets names).")
    rto_objective: str = Field("30m", description="Recovery time objective, e.g. 30m: slower is critical.")
    rpo_objective: str = Field("26h", description="Recovery point objective, e.g. 26h: older data is critical.")
    checks: list[dict[str, Any]] = host_scoped(
        default_factory=list,
        description="Health checks (health.check kinds) against the restored copy; {scratch_url} and "
        "{scratch_database} in their strings name it.",
    )
    assertions: list[str] = host_scoped(
        default_factory=list, description="SQL run in the restored database besides the source's own assertions."
    )
    scratch_target: SourceField | None = host_scoped(
        None,
        refs=("databases",),
        description="Server to restore on (targets.databases name or inline); default the source's.",
    )
    from_repository: str | None = overridable(None, description="Drill from the copies in this off-site repository.")
    restore_jobs: int = Field(2, ge=1, le=32, description="pg_restore -j.")
    restore_memory_mb: int = restore_memory_field()
    scratch_dir: str | None = host_scoped(
        None, description="Where downloads and decoded copies go (default the temp dir)."
    )
    redis_check_rdb_path: str | None = host_scoped(None, description="redis-check-rdb executable.")

    @field_validator("rto_objective", "rpo_objective")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("checks")
    @classmethod
    def _checks(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from upkeep.handlers.health.probes import TARGET_ADAPTER

        for raw in value:  # placeholders are plain strings here; validated again once filled in
            TARGET_ADAPTER.validate_python(raw)
        return value


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, text in names.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


def scratch_url(spec: dict[str, Any]) -> str:
    """A connection URL of the scratch database a test restore made (password included)."""
    if spec.get("type") == "mysql":
        auth = quote(spec.get("user") or "", safe="")
        if spec.get("password"):
            auth += ":" + quote(spec["password"], safe="")
        return f"mysql://{auth}@{spec['host']}:{spec['port']}/{spec['database']}"
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{k: v for k, v in spec.items() if k != "type"})


def _health(ctx, raw_checks: list[dict[str, Any]], spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    from upkeep.handlers.health.probes import TARGET_ADAPTER, run_checks
    from upkeep.handlers.health.probes.base import OK, CheckEnv
    from upkeep.secrets import scrub

    if not raw_checks:
        return []
    names = {}
    if spec is not None:
        names = {"{scratch_url}": scratch_url(spec), "{scratch_database}": str(spec.get("dbname") or spec["database"])}
        if spec.get("password"):
            ctx.secrets.append(str(spec["password"]))
    targets = []
    for i, raw in enumerate(raw_checks):
        filled = _fill(raw, names)
        if any(p in str(filled) for p in PLACEHOLDERS):
            raise ConfigError(
                "drill checks name {scratch_url}/{scratch_database}, but this kind of source has no scratch database",
                field=f"config.checks.{i}",
            )
        target = TARGET_ADAPTER.validate_python(filled)
        targets.append((target.name or f"{target.default_name()}#{i}", target))
    env = CheckEnv(now=ctx.now(), run_command=ctx.run_command)
    results = run_checks(targets, env, before_each=ctx.check_cancelled)
    return [
        check("health", r.status == OK, f"{r.name}: {r.status} {scrub(r.detail, ctx.secrets)}".strip()) for r in results
    ]


def _candidates(ctx, source: str, repo) -> list[dict[str, Any]]:
    """Verified backups of ``source``, newest first: those the drill may restore."""
    records = ctx.records(catalog.DOMAIN)
    return [
        e
        for e in catalog.entries(records, source)
        if held_by(e, repo) and (verified_in(e, repo) or (repo is not None and content_verified(e, repo)))
    ]


def drill_source(ctx, config: DrillConfig, name: str, repo) -> dict[str, Any]:
    source = source_name(ctx, name)
    assert source is not None
    at = ctx.now()
    started = time.monotonic()
    rto_objective, rpo_objective = parse_duration(config.rto_objective), parse_duration(config.rpo_objective)
    verify_config = VerifyConfig(
        source=name,
        scratch_target=config.scratch_target,
        assertions=config.assertions,
        restore_jobs=config.restore_jobs,
        restore_memory_mb=config.restore_memory_mb,
        scratch_dir=config.scratch_dir,
        redis_check_rdb_path=config.redis_check_rdb_path,
        pg_dump_path=config.pg_dump_path,
        pg_bin_dir=config.pg_bin_dir,
        mysql_bin_dir=config.mysql_bin_dir,
        encryption_key_env=config.encryption_key_env,
    )
    result: dict[str, Any] = {
        "source": source,
        "at": at.isoformat(),
        "ok": False,
        "repository": repo.name if repo else None,
        "rto_objective_s": rto_objective,
        "rpo_objective_s": rpo_objective,
        "fell_back_from": [],
        "met": False,
    }
    for entry in _candidates(ctx, source, repo):
        ctx.check_cancelled()
        attempt = time.monotonic()
        passed_at: list[float] = []

        def on_restored(spec: dict[str, Any], passed_at: list[float] = passed_at) -> list[dict[str, Any]]:
            out = _health(ctx, config.checks, spec)
            passed_at.append(time.monotonic())
            return out

        ctx.info("drill_restore", f"drill: restoring {source}/{entry['id']}", backup_id=entry["id"])
        ok, checks = verify_entry(ctx, entry, verify_config, on_restored, repo)
        if ok and not passed_at and config.checks:  # kinds without a scratch database
            checks += _health(ctx, config.checks, None)
            ok = all(c["ok"] for c in checks)
        done = passed_at[0] if passed_at else time.monotonic()
        if repo is None:
            catalog.record_verification(ctx.records(catalog.DOMAIN), entry, ok, checks, ctx.now())
        else:
            replicate.record_verification(ctx, repo.name, entry, ok, checks)
        if not ok:
            reason = "; ".join(f"{c['check']}: {c['message']}" for c in checks if not c["ok"])
            result["fell_back_from"].append({"id": entry["id"], "reason": reason})
            ctx.warning(
                "drill_fallback",
                f"drill: {source}/{entry['id']} failed ({reason}); falling back to the previous verified backup",
                backup_id=entry["id"],
            )
            continue
        rpo = (at - datetime.fromisoformat(entry["manifest"]["started_at"])).total_seconds()
        result.update(
            ok=True,
            backup_id=entry["id"],
            rto_s=round(done - started, 3),
            restore_s=round(done - attempt, 3),
            rpo_s=round(rpo, 1),
            raw_size=entry["manifest"].get("raw_size"),
            size=entry["manifest"].get("size"),
            checks=checks,
        )
        result["met"] = result["rto_s"] <= rto_objective and rpo <= rpo_objective
        break
    result["message"] = _message(result)
    drills.put(ctx.records(drills.DOMAIN), result)
    return result


def _message(r: dict[str, Any]) -> str:
    if not r["ok"]:
        tried = len(r["fell_back_from"])
        return f"{r['source']}: nothing restorable" + (f" ({tried} verified backup(s) failed)" if tried else "")
    text = (
        f"{r['source']}: restored {r['backup_id']} with RTO {r['rto_s']:.1f}s "
        f"(objective {r['rto_objective_s']:g}s), RPO {r['rpo_s'] / 3600:.1f}h "
        f"(objective {r['rpo_objective_s'] / 3600:g}h)"
    )
    if r["fell_back_from"]:
        text += f"; fell back past {', '.join(f['id'] for f in r['fell_back_from'])}"
    return text


def outcome_of(r: dict[str, Any]) -> str:
    if not r["ok"] or not r["met"]:
        return "critical"
    return "warning" if r["fell_back_from"] else "ok"


@handler(
    "backup.drill",
    config=DrillConfig,
    aliases=["backup.dr_test"],
    requires=("pg_restore",),
)
def backup_drill(ctx, config: DrillConfig) -> dict:
    """Disaster-recovery drill: restore each source's newest verified backup into a scratch database,
    run its assertions and health checks, record RTO and RPO against the objectives."""
    repo = offsite.find(ctx, config.from_repository) if config.from_repository else None
    results = []
    try:
        for i, name in enumerate(config.sources):
            ctx.progress(i / len(config.sources), f"drilling {name}")
            results.append(drill_source(ctx, config, name, repo))
    finally:
        if repo is not None:
            repo.close()
    outcomes = [outcome_of(r) for r in results]
    outcome = "critical" if "critical" in outcomes else "warning" if "warning" in outcomes else "ok"
    return {"outcome": outcome, "summary": "; ".join(r["message"] for r in results), "drills": results}
