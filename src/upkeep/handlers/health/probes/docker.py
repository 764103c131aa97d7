"""Docker container checks (``type: docker``) through the Engine API, never the docker CLI.

Fields: ``container`` (name or id; default the target name), ``docker_host`` (default the task's
``docker_host``, then ``$DOCKER_HOST``, then ``unix:///var/run/docker.sock``; ``tcp://host:2375`` and
``http://`` URLs work too), ``max_restarts`` (none: warning at this ``RestartCount``),
``warn_on_restart`` (true: warning when ``RestartCount`` grew since the previous run).

Judgement: not running, restarting, dead or ``Health.Status == unhealthy`` is critical; health
``starting`` is warning; running and healthy (or without a healthcheck) is ok. Requests:
``GET /containers/json?all=1`` (once per engine per run) and ``GET /containers/{id}/json``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Literal

from pydantic import Field

from upkeep.bounds import MAX_COUNT
from upkeep.engine.registry import host_scoped

from .base import CRITICAL, WARNING, CheckEnv, CheckResult, TargetBase, ms, worst

BLOCKING = False
DEFAULT_HOST = "unix:///var/run/docker.sock"


class DockerTarget(TargetBase):
    type: Literal["docker"]
    container: str | None = Field(None, description="Container name or id (default: the target name).")
    docker_host: str | None = host_scoped(None, description="Engine address: unix:///path.sock or tcp://host:port.")
    max_restarts: int | None = Field(None, ge=0, le=MAX_COUNT, description="Warning at this RestartCount.")
    warn_on_restart: bool = Field(True, description="Warning when RestartCount grew since the last run.")

    def default_name(self) -> str:
        return f"docker:{self.container}"


class Engine:
    """One Engine API endpoint: an httpx client and the container list, fetched once per run."""

    def __init__(self, host: str, timeout: float):
        import httpx  # here, not at module level: loading the handlers must not load it

        self.host = host
        if host.startswith("unix://"):
            transport = httpx.AsyncHTTPTransport(uds=host[len("unix://") :])
            self.client = httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=timeout)
        else:
            base = "http://" + host[len("tcp://") :] if host.startswith("tcp://") else host
            self.client = httpx.AsyncClient(base_url=base, timeout=timeout, trust_env=False)
        self._lock = asyncio.Lock()
        self._containers: list[dict[str, Any]] | None = None

    async def containers(self) -> list[dict[str, Any]]:
        async with self._lock:
            if self._containers is None:
                response = await self.client.get("/containers/json", params={"all": "1"})
                response.raise_for_status()
                self._containers = response.json()
            return self._containers

    async def inspect(self, container_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/containers/{container_id}/json")
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self.client.aclose()


class Engines:
    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}

    def get(self, host: str, timeout: float) -> Engine:
        if host not in self._engines:
            self._engines[host] = Engine(host, timeout)
        return self._engines[host]

    async def aclose(self) -> None:
        for engine in self._engines.values():
            await engine.aclose()


def _find(containers: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    for c in containers:
        names = [n.lstrip("/") for n in c.get("Names") or []]
        if wanted in names or (len(wanted) >= 12 and str(c.get("Id", "")).startswith(wanted)):
            return c
    return None


def evaluate(
    info: dict[str, Any], wanted: str, name: str, previous: dict[str, Any], target: DockerTarget
) -> CheckResult:
    """Judge one container from its inspect document."""
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    restarts = int(info.get("RestartCount") or 0)
    status_text = state.get("Status", "unknown")
    statuses = []
    if state.get("Restarting") or status_text == "restarting" or not state.get("Running"):
        statuses.append(CRITICAL)
    if health == "unhealthy":
        statuses.append(CRITICAL)
    elif health == "starting":
        statuses.append(WARNING)
    parts = [f"{wanted} {status_text}"]
    if health:
        parts[0] += f" ({health})"
    parts.append(f"{restarts} restarts")
    if state.get("ExitCode") and not state.get("Running"):
        parts.append(f"exit code {state['ExitCode']}")
    grew = restarts - int(previous.get("restarts", restarts))
    if grew > 0:
        parts.append(f"{grew} since last check")
        if target.warn_on_restart:
            statuses.append(WARNING)
    if target.max_restarts is not None and restarts >= target.max_restarts:
        statuses.append(WARNING)
        parts.append(f"restarts >= {target.max_restarts}")
    data = {"state": status_text, "health": health, "restart_count": restarts, "id": str(info.get("Id", ""))[:12]}
    return CheckResult(name, "docker", worst(statuses), ", ".join(parts), None, data, {"restarts": restarts})


async def check(target: DockerTarget, env: CheckEnv) -> CheckResult:
    import httpx

    name = target.name or target.default_name()
    wanted = target.container or name
    host = target.docker_host or env.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    engines = env.shared.setdefault("docker", Engines())
    engine = engines.get(host, env.timeout_for(target))
    previous = env.previous_state(name)
    started = time.perf_counter()
    try:
        found = _find(await engine.containers(), wanted)
        if found is None:
            return CheckResult(name, "docker", CRITICAL, f"no container named {wanted!r} on {host}", state=previous)
        info = await engine.inspect(found["Id"])
    except (httpx.TransportError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        return CheckResult(name, "docker", CRITICAL, f"no Docker engine reachable at {host} ({reason})", state=previous)
    except (httpx.HTTPStatusError, ValueError) as exc:
        return CheckResult(name, "docker", CRITICAL, f"Docker engine at {host} answered badly: {exc}", state=previous)
    result = evaluate(info, wanted, name, previous, target)
    result.latency_ms = ms(time.perf_counter() - started)
    return result
