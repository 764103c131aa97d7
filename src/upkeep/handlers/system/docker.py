"""``docker.cleanup``: stopped containers, dangling images, unused networks and build cache, through the
Docker Engine API (never the docker CLI).

The originals ran ``docker system prune -a`` and ``docker volume prune -f`` on a schedule: data loss.
Here **volumes are never pruned**: ``/volumes/prune`` is never called. A named volume is removed only
when it is listed in ``volumes`` (``DELETE /volumes/{name}``; the engine refuses a volume in use).

Config: ``docker_host`` (default ``$DOCKER_HOST``, then ``unix:///var/run/docker.sock``; ``tcp://host:port``
works), ``containers`` / ``images`` / ``networks`` / ``build_cache`` (all true) choose what goes,
``until`` (``24h``; ``30m``, ``7d``, ``1h30m``; null = no age limit) keeps anything younger,
``labels`` (``key`` or ``key=value``, all must match) and ``exclude_labels`` (``label!=`` filters).

``dry_run`` only reads (``GET /containers/json``, ``/images/json``, ``/networks``, ``/networks/{id}``,
``/system/df``, ``/volumes/{name}``) and lists every item that would go with the space it frees. A real
run calls the engine's prune endpoints (``POST /containers/prune``, ``/images/prune`` with
``dangling=true``, ``/networks/prune``, ``/build/prune``) with the same filters and reports what the engine
deleted and reclaimed. No reachable engine raises ``ConnectionFailed`` naming the address.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from upkeep.bounds import MAX_CALL_SECONDS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError, ConnectionFailed, UserError
from upkeep.handlers.findings import outcome_of
from upkeep.handlers.health.probes.base import human_bytes
from upkeep.handlers.health.probes.docker import DEFAULT_HOST, Engine

if TYPE_CHECKING:  # httpx is imported where it is used: loading the handlers must not load it
    import httpx

DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
BUILTIN_NETWORKS = {"bridge", "host", "none", "ingress", "docker_gwbridge"}
STOPPED = ["exited", "created", "dead"]


def parse_until(text: str | None) -> float | None:
    """``'24h'``, ``'7d'``, ``'1h30m'`` -> seconds; None/empty -> None."""
    if text is None or not str(text).strip():
        return None
    compact = str(text).strip().lower().replace(" ", "")
    parts = DURATION_RE.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(f"until {text!r} is not a duration", hint="use e.g. '24h', '7d', '1h30m'", field="until")
    return sum(float(n) * UNIT_SECONDS[u] for n, u in parts)


class DockerCleanupConfig(HandlerConfig):
    """What to clean, the age and label filters, and the named volumes that may go."""

    docker_host: str | None = host_scoped(
        None, description="Engine address (default $DOCKER_HOST, then the unix socket)."
    )
    containers: bool = Field(True, description="Remove stopped containers (exited, created, dead).")
    images: bool = Field(True, description="Remove dangling images (untagged layers).")
    networks: bool = Field(True, description="Remove user networks no container uses.")
    build_cache: bool = Field(True, description="Remove build cache entries not in use.")
    until: str | None = overridable("24h", description="Only what was created (cache: last used) longer ago.")
    labels: list[str] = Field(default_factory=list, description="Only items with these labels (key or key=value).")
    exclude_labels: list[str] = Field(default_factory=list, description="Never items with these labels.")
    volumes: list[str] = host_scoped(
        default_factory=list, description="Named volumes to remove. Volumes are never pruned: only these go."
    )
    timeout: float = Field(120, gt=0, le=MAX_CALL_SECONDS, description="Seconds each Engine API call may take.")

    @field_validator("until")
    @classmethod
    def _check_until(cls, value: str | None) -> str | None:
        parse_until(value)
        return value


def _label_match(labels: dict[str, str] | None, wanted: list[str], excluded: list[str]) -> bool:
    labels = labels or {}

    def has(spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in labels and (not eq or labels[key] == value)

    return all(has(s) for s in wanted) and not any(has(s) for s in excluded)


def _filters(config: DockerCleanupConfig, until_seconds: float | None, **extra: list[str]) -> str:
    filters: dict[str, list[str]] = {k: v for k, v in extra.items() if v}
    if until_seconds is not None:
        filters["until"] = [f"{int(until_seconds)}s"]
    if config.labels:
        filters["label"] = list(config.labels)
    if config.exclude_labels:
        filters["label!"] = list(config.exclude_labels)
    return json.dumps(filters)


def _created(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        from datetime import UTC

        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None
    return None


class Cleaner:
    def __init__(self, client: httpx.AsyncClient, config: DockerCleanupConfig, now: datetime):
        self.client = client
        self.config = config
        self.until = parse_until(config.until)
        self.cutoff = now - timedelta(seconds=self.until) if self.until is not None else None

    async def get(self, path: str, **params: str) -> Any:
        response = await self.client.get(path, params=params or None)
        response.raise_for_status()
        return response.json()

    def _old_enough(self, created: Any) -> bool:
        if self.cutoff is None:
            return True
        when = _created(created)
        return when is not None and when < self.cutoff

    async def plan(self) -> dict[str, list[dict]]:
        """What a real run would remove, read-only."""
        c = self.config
        plan: dict[str, list[dict]] = {"containers": [], "images": [], "networks": [], "build_cache": [], "volumes": []}
        if c.containers:
            rows = await self.get("/containers/json", all="1", size="1", filters=json.dumps({"status": STOPPED}))
            for row in rows:
                if self._old_enough(row.get("Created")) and _label_match(row.get("Labels"), c.labels, c.exclude_labels):
                    name = ((row.get("Names") or ["/?"])[0]).lstrip("/")
                    plan["containers"].append(
                        {
                            "id": row["Id"][:12],
                            "name": name,
                            "state": row.get("State"),
                            "image": row.get("Image"),
                            "bytes": int(row.get("SizeRw") or 0),
                        }
                    )
        if c.images:
            rows = await self.get("/images/json", filters=json.dumps({"dangling": ["true"]}))
            for row in rows:
                if self._old_enough(row.get("Created")) and _label_match(row.get("Labels"), c.labels, c.exclude_labels):
                    plan["images"].append({"id": row["Id"].split(":")[-1][:12], "bytes": int(row.get("Size") or 0)})
        if c.networks:
            for row in await self.get("/networks"):
                if row.get("Name") in BUILTIN_NETWORKS or not self._old_enough(row.get("Created")):
                    continue
                if not _label_match(row.get("Labels"), c.labels, c.exclude_labels):
                    continue
                detail = await self.get(f"/networks/{row['Id']}")
                if not detail.get("Containers"):
                    plan["networks"].append({"id": row["Id"][:12], "name": row.get("Name"), "bytes": 0})
        df: dict[str, Any] | None = None
        if c.build_cache:
            df = await self.get("/system/df")
            for row in df.get("BuildCache") or []:
                if row.get("InUse"):
                    continue
                if self._old_enough(row.get("LastUsedAt") or row.get("CreatedAt")):
                    plan["build_cache"].append(
                        {
                            "id": str(row.get("ID", ""))[:12],
                            "type": row.get("Type"),
                            "bytes": 0 if row.get("Shared") else int(row.get("Size") or 0),
                        }
                    )
        if c.volumes:
            if df is None:
                df = await self.get("/system/df")
            sizes = {v.get("Name"): (v.get("UsageData") or {}).get("Size", 0) for v in df.get("Volumes") or []}
            refs = {v.get("Name"): (v.get("UsageData") or {}).get("RefCount", 0) for v in df.get("Volumes") or []}
            for name in c.volumes:
                response = await self.client.get(f"/volumes/{name}")
                if response.status_code == 404:
                    plan["volumes"].append({"name": name, "bytes": 0, "missing": True})
                    continue
                response.raise_for_status()
                plan["volumes"].append(
                    {"name": name, "bytes": max(0, int(sizes.get(name) or 0)), "in_use": bool(refs.get(name))}
                )
        return plan

    async def run(self) -> dict[str, Any]:
        """Prune through the engine's endpoints; never ``/volumes/prune``."""
        c = self.config
        out: dict[str, Any] = {
            "containers": [],
            "images": [],
            "networks": [],
            "build_cache": [],
            "volumes": [],
            "reclaimed": {},
        }

        async def prune(path: str, filters: str) -> dict[str, Any]:
            response = await self.client.post(path, params={"filters": filters})
            response.raise_for_status()
            return response.json() or {}

        if c.containers:
            answer = await prune("/containers/prune", _filters(c, self.until))
            out["containers"] = [{"id": i[:12]} for i in answer.get("ContainersDeleted") or []]
            out["reclaimed"]["containers"] = int(answer.get("SpaceReclaimed") or 0)
        if c.images:
            answer = await prune("/images/prune", _filters(c, self.until, dangling=["true"]))
            out["images"] = [{"id": next(iter(d.values()))} for d in answer.get("ImagesDeleted") or [] if d]
            out["reclaimed"]["images"] = int(answer.get("SpaceReclaimed") or 0)
        if c.networks:
            answer = await prune("/networks/prune", _filters(c, self.until))
            out["networks"] = [{"name": n} for n in answer.get("NetworksDeleted") or []]
        if c.build_cache:
            answer = await prune("/build/prune", _filters(c, self.until))
            out["build_cache"] = [{"id": str(i)[:12]} for i in answer.get("CachesDeleted") or []]
            out["reclaimed"]["build_cache"] = int(answer.get("SpaceReclaimed") or 0)
        for name in c.volumes:
            response = await self.client.delete(f"/volumes/{name}")
            if response.status_code == 404:
                out["volumes"].append({"name": name, "removed": False, "error": "no such volume"})
            elif response.status_code == 409:
                out["volumes"].append({"name": name, "removed": False, "error": "in use by a container"})
            else:
                response.raise_for_status()
                out["volumes"].append({"name": name, "removed": True})
        return out


async def _cleanup(
    host: str, config: DockerCleanupConfig, now: datetime, dry_run: bool, announce: Callable[[dict], None]
) -> dict[str, Any]:
    engine = Engine(host, config.timeout)
    try:
        ping = await engine.client.get("/_ping")
        ping.raise_for_status()
        cleaner = Cleaner(engine.client, config, now)
        plan = await cleaner.plan()
        announce(plan)
        done = None if dry_run else await cleaner.run()
        return {"plan": plan, "done": done}
    finally:
        await engine.aclose()


def _announce(ctx: RunContext, config: DockerCleanupConfig, plan: dict[str, list[dict]]) -> None:
    filters = [f"created more than {config.until} ago" if config.until else "any age"]
    filters += [f"labels {', '.join(config.labels)}"] if config.labels else []
    filters += [f"not labels {', '.join(config.exclude_labels)}"] if config.exclude_labels else []
    for kind, items in plan.items():
        why = "volumes named in the task's config" if kind == "volumes" else f"unused, {'; '.join(filters)}"
        ctx.scope([item.get("name") or item.get("id") for item in items], why, what=kind.replace("_", " "))


@handler("docker.cleanup", config=DockerCleanupConfig, aliases=["docker.prune"], destructive=True)
def docker_cleanup(ctx: RunContext, config: DockerCleanupConfig) -> dict:
    """Remove stopped containers, dangling images, unused networks and build cache; never unlisted volumes."""
    import httpx

    host = config.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    try:
        result = asyncio.run(_cleanup(host, config, ctx.now(), ctx.dry_run, lambda plan: _announce(ctx, config, plan)))
    except (httpx.TransportError, OSError) as exc:
        raise ConnectionFailed(
            f"no Docker engine reachable at {host} ({str(exc) or type(exc).__name__})",
            hint="start Docker, or set docker_host (unix:///path.sock or tcp://host:port)",
        ) from None
    except httpx.HTTPStatusError as exc:
        body = exc.response.text.strip()[:200]
        raise UserError(
            f"the Docker engine at {host} refused {exc.request.method} {exc.request.url.path}: "
            f"HTTP {exc.response.status_code} {body}"
        ) from None
    plan = result["plan"]
    would_free = sum(item["bytes"] for items in plan.values() for item in items)
    for kind, items in plan.items():
        for item in items:
            label = item.get("name") or item.get("id")
            verb = "would remove" if ctx.dry_run else "remove"
            ctx.info(
                "plan",
                f"{verb} {kind.rstrip('s').replace('_', ' ')} {label} ({human_bytes(item['bytes'])})",
                action="remove",
                kind=kind,
                **item,
            )
    counts = {kind: len(items) for kind, items in plan.items()}
    findings = []
    for volume in plan["volumes"]:
        if volume.get("in_use"):
            findings.append(
                {
                    "severity": "warning",
                    "item": f"volume:{volume['name']}",
                    "message": f"volume {volume['name']} is in use: the engine will refuse to remove it",
                }
            )
        if volume.get("missing"):
            findings.append(
                {
                    "severity": "info",
                    "item": f"volume:{volume['name']}",
                    "message": f"volume {volume['name']} does not exist",
                }
            )
    what = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n) or "nothing"
    if ctx.dry_run:
        summary = f"dry run: would remove {what}, freeing {human_bytes(would_free)}"
        return {
            "outcome": "ok",
            "summary": summary,
            "dry_run": True,
            "would_remove": plan,
            "counts": counts,
            "would_free_bytes": would_free,
            "findings": findings,
            "docker_host": host,
        }
    done = result["done"]
    reclaimed = sum(done["reclaimed"].values())
    removed = {k: len(done[k]) for k in ("containers", "images", "networks", "build_cache")}
    removed["volumes"] = sum(1 for v in done["volumes"] if v.get("removed"))
    for volume in done["volumes"]:
        if not volume.get("removed") and volume.get("error") != "no such volume":
            findings.append(
                {
                    "severity": "warning",
                    "item": f"volume:{volume['name']}",
                    "message": f"volume {volume['name']} not removed: {volume['error']}",
                }
            )
    outcome = outcome_of(findings)
    what = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in removed.items() if n) or "nothing"
    return {
        "outcome": outcome,
        "summary": f"removed {what}, reclaimed {human_bytes(reclaimed)}",
        "dry_run": False,
        "removed": done,
        "counts": removed,
        "reclaimed_bytes": reclaimed,
        "planned": plan,
        "findings": findings,
        "docker_host": host,
    }
