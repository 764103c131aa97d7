"""Memory checks (``type: memory``): used percent of RAM (``psutil.virtual_memory().percent``,
i.e. not counting reclaimable cache). ``warn_percent`` (90) / ``critical_percent`` (95)."""

from __future__ import annotations

from typing import Any, Literal

import psutil
from pydantic import Field

from .base import CheckEnv, CheckResult, TargetBase, human_bytes, threshold_status

BLOCKING = False
MEMORY_WARN_PERCENT = 90.0
MEMORY_CRITICAL_PERCENT = 95.0


class MemoryTarget(TargetBase):
    type: Literal["memory"]
    warn_percent: float = Field(MEMORY_WARN_PERCENT, ge=0, le=100, description="Used % warning threshold.")
    critical_percent: float = Field(MEMORY_CRITICAL_PERCENT, ge=0, le=100, description="Used % critical threshold.")

    def default_name(self) -> str:
        return "memory"


def measure() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return {
        "memory": {
            "total": vm.total,
            "available": vm.available,
            "used": vm.total - vm.available,
            "used_percent": round(vm.percent, 1),
        },
        "swap": {"total": sw.total, "used": sw.used, "free": sw.free, "used_percent": round(sw.percent, 1)},
    }


async def check(target: MemoryTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    figures = measure()
    mem = figures["memory"]
    status = threshold_status(mem["used_percent"], target.warn_percent, target.critical_percent)
    detail = (
        f"{mem['used_percent']:.1f}% used, {human_bytes(mem['available'])} available of {human_bytes(mem['total'])}"
    )
    return CheckResult(name, "memory", status, detail, None, figures)
