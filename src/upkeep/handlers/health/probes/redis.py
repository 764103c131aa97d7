"""Redis checks (``type: redis``): PING latency and memory use against ``maxmemory``.

Fields: ``url`` (``redis://[:password@]host:6379/0``), ``memory_warn_percent`` (80) /
``memory_critical_percent`` (95) of ``maxmemory`` (not judged when maxmemory is 0 = unlimited),
``warn_ms`` (none) / ``critical_ms`` (none) on the PING round trip.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from upkeep.bounds import MAX_CALL_MS
from upkeep.engine.registry import host_scoped
from upkeep.secrets import redact_url_password

from .base import CRITICAL, OK, CheckEnv, CheckResult, TargetBase, human_bytes, ms, threshold_status, worst

BLOCKING = True


class RedisTarget(TargetBase):
    type: Literal["redis"]
    url: str = host_scoped(description="redis:// or rediss:// URL.")
    memory_warn_percent: float = Field(80.0, ge=0, le=100, description="used_memory / maxmemory warning (%).")
    memory_critical_percent: float = Field(95.0, ge=0, le=100, description="used_memory / maxmemory critical (%).")
    warn_ms: float | None = Field(None, ge=0, le=MAX_CALL_MS, description="PING warning threshold (ms).")
    critical_ms: float | None = Field(None, ge=0, le=MAX_CALL_MS, description="PING critical threshold (ms).")

    def default_name(self) -> str:
        return f"redis:{redact_url_password(self.url)}"


def check(target: RedisTarget, env: CheckEnv) -> CheckResult:
    import redis

    name = target.name or target.default_name()
    timeout = env.timeout_for(target)
    shown = redact_url_password(target.url)
    client = redis.Redis.from_url(target.url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        started = time.perf_counter()
        client.ping()
        latency = ms(time.perf_counter() - started)
        info = client.info("memory")
    except redis.RedisError as exc:
        return CheckResult(name, "redis", CRITICAL, f"cannot reach Redis at {shown}: {redact_url_password(str(exc))}")
    finally:
        client.close()
    used = int(info.get("used_memory", 0))
    maxmemory = int(info.get("maxmemory", 0))
    data = {"used_memory": used, "maxmemory": maxmemory}
    statuses = [threshold_status(latency, target.warn_ms, target.critical_ms)]
    detail = f"PING {latency:.1f} ms, memory {human_bytes(used)}"
    if maxmemory > 0:
        percent = round(used * 100.0 / maxmemory, 1)
        data["memory_percent"] = percent
        statuses.append(threshold_status(percent, target.memory_warn_percent, target.memory_critical_percent))
        detail += f" of {human_bytes(maxmemory)} maxmemory ({percent:.1f}%)"
    else:
        detail += " (no maxmemory set)"
    status = worst(statuses)
    if status != OK and statuses[0] != OK:
        detail += " (slow PING)"
    return CheckResult(name, "redis", status, detail, latency, data)
