"""TCP connect checks (``type: tcp``): ``host`` (127.0.0.1), ``port``, ``warn_ms``/``critical_ms`` (none)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from pydantic import Field

from upkeep.bounds import MAX_CALL_MS

from .base import CRITICAL, OK, CheckEnv, CheckResult, TargetBase, ms, threshold_status

BLOCKING = False


class TcpTarget(TargetBase):
    type: Literal["tcp"]
    host: str = Field("127.0.0.1", description="Host name or address.")
    port: int = Field(ge=1, le=65535, description="TCP port.")
    warn_ms: float | None = Field(None, ge=0, le=MAX_CALL_MS, description="Connect time warning threshold (ms).")
    critical_ms: float | None = Field(None, ge=0, le=MAX_CALL_MS, description="Connect time critical threshold (ms).")

    def default_name(self) -> str:
        return f"tcp:{self.host}:{self.port}"


async def check(target: TcpTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    timeout = env.timeout_for(target)
    where = f"{target.host}:{target.port}"
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), timeout)
    except TimeoutError:
        return CheckResult(name, "tcp", CRITICAL, f"connect to {where} timed out after {timeout:g}s")
    except OSError as exc:
        return CheckResult(name, "tcp", CRITICAL, f"cannot connect to {where}: {exc.strerror or exc}")
    latency = ms(time.perf_counter() - started)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    status = threshold_status(latency, target.warn_ms, target.critical_ms)
    detail = f"connected to {where} in {latency:.1f} ms"
    if status != OK:
        detail += " (slow)"
    return CheckResult(name, "tcp", status, detail, latency)
