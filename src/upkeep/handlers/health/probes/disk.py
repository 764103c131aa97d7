"""Disk checks (``type: disk``): used percent and free space of the filesystem holding ``path``.

Fields: ``path`` ("/"), ``warn_percent`` (80) / ``critical_percent`` (90) of used space (as ``df``:
used / (used + available to unprivileged users)), ``min_free`` (none; bytes or "10G": critical below).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psutil
from pydantic import BeforeValidator, Field

from upkeep.bounds import MAX_BYTES
from upkeep.engine.registry import host_scoped

from .base import CRITICAL, CheckEnv, CheckResult, TargetBase, human_bytes, parse_size, threshold_status, worst

BLOCKING = True  # statvfs on a hung network mount blocks
DISK_WARN_PERCENT = 80.0
DISK_CRITICAL_PERCENT = 90.0


class DiskTarget(TargetBase):
    type: Literal["disk"]
    path: str = host_scoped("/", description="A path on the filesystem to check.")
    warn_percent: float = Field(DISK_WARN_PERCENT, ge=0, le=100, description="Used % warning threshold.")
    critical_percent: float = Field(DISK_CRITICAL_PERCENT, ge=0, le=100, description="Used % critical threshold.")
    min_free: Annotated[int, BeforeValidator(parse_size)] | None = Field(
        None, ge=0, le=MAX_BYTES, description="Critical when less is free (bytes or 10G, 500M)."
    )

    def default_name(self) -> str:
        return f"disk:{self.path}"


def measure(path: str) -> dict[str, Any]:
    usage = psutil.disk_usage(path)
    return {
        "path": path,
        "total": usage.total,
        "used": usage.used,
        "free": usage.free,
        "used_percent": round(usage.percent, 1),
    }


def judge(figures: dict[str, Any], warn: float, critical: float, min_free: int | None = None) -> tuple[str, str]:
    statuses = [threshold_status(figures["used_percent"], warn, critical)]
    detail = (
        f"{figures['path']}: {figures['used_percent']:.1f}% used, {human_bytes(figures['free'])} free "
        f"of {human_bytes(figures['total'])}"
    )
    if min_free is not None and figures["free"] < min_free:
        statuses.append(CRITICAL)
        detail += f" (below min_free {human_bytes(min_free)})"
    return worst(statuses), detail


def check(target: DiskTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    try:
        figures = measure(target.path)
    except OSError as exc:
        return CheckResult(name, "disk", CRITICAL, f"cannot stat {target.path}: {exc.strerror or exc}")
    status, detail = judge(figures, target.warn_percent, target.critical_percent, parse_size(target.min_free))
    return CheckResult(name, "disk", status, detail, None, figures)
