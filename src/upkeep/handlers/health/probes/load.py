"""Load checks (``type: load``): load averages divided by the number of CPUs.

``warn_per_core`` ({"load5": 1.0}) and ``critical_per_core`` ({"load5": 2.0}) map a window
(``load1``, ``load5``, ``load15``) to a per-core threshold; every window given is judged.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import psutil
from pydantic import Field

from .base import CheckEnv, CheckResult, TargetBase, threshold_status, worst

BLOCKING = False
Window = Literal["load1", "load5", "load15"]
LOAD_WARN_PER_CORE = {"load5": 1.0}
LOAD_CRITICAL_PER_CORE = {"load5": 2.0}


# load per core: a load of 1000 per core is past any machine's
PerCore = Annotated[float, Field(ge=0, le=1000)]


class LoadTarget(TargetBase):
    type: Literal["load"]
    warn_per_core: dict[Window, PerCore] = Field(
        default_factory=lambda: dict(LOAD_WARN_PER_CORE), description="Per-core warning thresholds by window."
    )
    critical_per_core: dict[Window, PerCore] = Field(
        default_factory=lambda: dict(LOAD_CRITICAL_PER_CORE), description="Per-core critical thresholds by window."
    )

    def default_name(self) -> str:
        return "load"


def measure() -> dict[str, Any]:
    cores = psutil.cpu_count() or os.cpu_count() or 1
    load1, load5, load15 = psutil.getloadavg()
    return {
        "cores": cores,
        "load1": round(load1, 2),
        "load5": round(load5, 2),
        "load15": round(load15, 2),
        "per_core": {
            "load1": round(load1 / cores, 3),
            "load5": round(load5 / cores, 3),
            "load15": round(load15 / cores, 3),
        },
    }


def judge(figures: dict[str, Any], warn: dict[str, float], critical: dict[str, float]) -> str:
    windows = set(warn) | set(critical)
    return worst(threshold_status(figures["per_core"][w], warn.get(w), critical.get(w)) for w in windows)


async def check(target: LoadTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    figures = measure()
    status = judge(figures, target.warn_per_core, target.critical_per_core)
    pc = figures["per_core"]
    detail = (
        f"load {figures['load1']:.2f} {figures['load5']:.2f} {figures['load15']:.2f} on {figures['cores']} "
        f"cores ({pc['load1']:.2f}/{pc['load5']:.2f}/{pc['load15']:.2f} per core)"
    )
    return CheckResult(name, "load", status, detail, None, figures)
