"""``system.resources``: disk, memory, swap, CPU, load and top processes (psutil), for reports and
capacity planning.

Config: ``paths`` (["/"]) for disk; thresholds ``disk_warn_percent`` 80 / ``disk_critical_percent`` 90,
``memory_warn_percent`` 90 / ``memory_critical_percent`` 95, ``swap_warn_percent`` (none),
``load_warn_per_core`` {"load5": 1.0} / ``load_critical_per_core`` {"load5": 2.0} (same defaults as the
health check kinds); ``cpu_sample_seconds`` (0.5) is the window for CPU percent, system-wide and per
process; ``top`` (5) processes by CPU and by RSS.

Result (besides ``outcome``/``summary``/``findings``)::

    {"disks": [{path, total, used, free, used_percent, status}],
     "memory": {total, available, used, used_percent, status}, "swap": {total, used, free, used_percent},
     "cpu": {percent, per_cpu: [...], cores, sample_seconds},
     "load": {cores, load1, load5, load15, per_core: {...}, status},
     "top_cpu": [{pid, name, user, cpu_percent, rss, cmdline}], "top_rss": [...],
     "sampled_at": ISO-8601}
"""

from __future__ import annotations

import time
from typing import Any

import psutil
from pydantic import Field

from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError
from upkeep.handlers.health.probes import disk, load, memory
from upkeep.handlers.health.probes.base import OK, STATUSES, human_bytes, threshold_status, worst


class SystemResourcesConfig(HandlerConfig):
    paths: list[str] = host_scoped(
        ["/"],
        refs=("services",),
        overridable=True,
        description="Filesystem paths whose disk usage is reported, or names of targets.services disk targets "
        "(their path).",
    )
    disk_warn_percent: float = Field(disk.DISK_WARN_PERCENT, ge=0, le=100, description="Disk used % warning.")
    disk_critical_percent: float = Field(disk.DISK_CRITICAL_PERCENT, ge=0, le=100, description="Disk used % critical.")
    memory_warn_percent: float = Field(memory.MEMORY_WARN_PERCENT, ge=0, le=100, description="RAM used % warning.")
    memory_critical_percent: float = Field(
        memory.MEMORY_CRITICAL_PERCENT, ge=0, le=100, description="RAM used % critical."
    )
    swap_warn_percent: float | None = Field(None, ge=0, le=100, description="Swap used % warning (none: report only).")
    load_warn_per_core: dict[load.Window, load.PerCore] = Field(
        default_factory=lambda: dict(load.LOAD_WARN_PER_CORE), description="Per-core load warning by window."
    )
    load_critical_per_core: dict[load.Window, load.PerCore] = Field(
        default_factory=lambda: dict(load.LOAD_CRITICAL_PER_CORE), description="Per-core load critical by window."
    )
    cpu_sample_seconds: float = Field(0.5, gt=0, le=10, description="CPU sampling window in seconds.")
    top: int = overridable(5, ge=0, le=100, description="How many processes to list by CPU and by RSS.")


def _sample_processes(seconds: float) -> tuple[float, list[float], list[dict[str, Any]]]:
    """CPU percent (total, per CPU) and per-process CPU over one window of ``seconds``."""
    procs = list(psutil.process_iter(["pid", "name", "username"]))
    for proc in procs:
        try:
            proc.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.cpu_percent(None)
    psutil.cpu_percent(None, percpu=True)
    time.sleep(seconds)
    total = psutil.cpu_percent(None)
    per_cpu = psutil.cpu_percent(None, percpu=True)
    rows = []
    for proc in procs:
        try:
            with proc.oneshot():
                rows.append(
                    {
                        "pid": proc.pid,
                        "name": proc.info.get("name"),
                        "user": proc.info.get("username"),
                        "cpu_percent": round(proc.cpu_percent(None), 1),
                        "rss": proc.memory_info().rss,
                        "cmdline": " ".join(proc.cmdline())[:200],
                    }
                )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total, per_cpu, rows


def _disk_paths(ctx: RunContext, entries: list[str]) -> list[str]:
    """Paths as given, names of ``targets.services`` disk targets as their path."""
    services = ctx.targets.names("services")
    out = []
    for entry in entries:
        if entry in services:
            spec = ctx.targets.get("services", entry)
            if not isinstance(spec, dict) or spec.get("type") != "disk":
                raise ConfigError(f"targets.services.{entry} is not a disk target", field="config.paths")
            entry = str(spec.get("path") or "/")
        out.append(entry)
    return out


@handler("system.resources", config=SystemResourcesConfig)
def system_resources(ctx: RunContext, config: SystemResourcesConfig) -> dict:
    """Disk, memory, swap, CPU, load and top processes, judged against documented thresholds."""
    findings: list[dict[str, Any]] = []
    statuses = []
    disks = []
    paths = _disk_paths(ctx, config.paths)
    ctx.scope(paths, "paths in the task's config", what="filesystems")
    for path in paths:
        ctx.check_cancelled()
        try:
            figures = disk.measure(path)
        except OSError as exc:
            findings.append({"severity": "critical", "item": path, "message": f"cannot stat {path}: {exc.strerror}"})
            statuses.append("critical")
            continue
        status, detail = disk.judge(figures, config.disk_warn_percent, config.disk_critical_percent)
        disks.append({**figures, "status": status})
        statuses.append(status)
        if status != OK:
            findings.append({"severity": status, "item": f"disk:{path}", "message": detail})
    mem = memory.measure()
    mem_status = threshold_status(
        mem["memory"]["used_percent"], config.memory_warn_percent, config.memory_critical_percent
    )
    statuses.append(mem_status)
    if mem_status != OK:
        findings.append(
            {"severity": mem_status, "item": "memory", "message": f"memory {mem['memory']['used_percent']:.1f}% used"}
        )
    swap_status = OK
    if config.swap_warn_percent is not None and mem["swap"]["total"]:
        swap_status = threshold_status(mem["swap"]["used_percent"], config.swap_warn_percent, None)
        statuses.append(swap_status)
        if swap_status != OK:
            findings.append(
                {"severity": swap_status, "item": "swap", "message": f"swap {mem['swap']['used_percent']:.1f}% used"}
            )
    loads = load.measure()
    load_status = load.judge(loads, config.load_warn_per_core, config.load_critical_per_core)
    statuses.append(load_status)
    if load_status != OK:
        pc = loads["per_core"]
        findings.append(
            {
                "severity": load_status,
                "item": "load",
                "message": f"load per core {pc['load1']:.2f}/{pc['load5']:.2f}/{pc['load15']:.2f}",
            }
        )
    ctx.progress(0.5, "sampling CPU")
    cpu_total, per_cpu, procs = _sample_processes(config.cpu_sample_seconds)
    top_cpu = sorted(procs, key=lambda p: (-p["cpu_percent"], -p["rss"]))[: config.top]
    top_rss = sorted(procs, key=lambda p: -p["rss"])[: config.top]
    outcome = worst(statuses)
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in STATUSES if s != OK}
    disk_text = ", ".join(f"{d['path']} {d['used_percent']:.0f}%" for d in disks) or "no disks"
    summary = (
        f"disk {disk_text}; memory {mem['memory']['used_percent']:.0f}% of "
        f"{human_bytes(mem['memory']['total'])}; cpu {cpu_total:.0f}%; load5/core "
        f"{loads['per_core']['load5']:.2f}"
    )
    if findings:
        summary += " (" + "; ".join(f["message"] for f in findings[:3]) + ")"
    return {
        "outcome": outcome,
        "summary": summary,
        "findings": findings,
        "counts": counts,
        "disks": disks,
        "memory": {**mem["memory"], "status": mem_status},
        "swap": {**mem["swap"], "status": swap_status},
        "cpu": {
            "percent": cpu_total,
            "per_cpu": per_cpu,
            "cores": loads["cores"],
            "sample_seconds": config.cpu_sample_seconds,
        },
        "load": {**loads, "status": load_status},
        "top_cpu": top_cpu,
        "top_rss": top_rss,
        "sampled_at": ctx.now().isoformat(),
    }
