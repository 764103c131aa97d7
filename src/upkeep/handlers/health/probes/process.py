"""Process checks (``type: process``) with psutil: running, uptime and restarts between runs.

Select processes with exactly one of ``process_name`` (exact process name), ``cmdline`` (regular
expression searched in the joined command line) or ``pidfile``. ``min_count`` (1) processes must
match. The *main* process is the oldest match; when its pid (or start time) differs from the one in
the previous run's record the process restarted: ``restarts`` counts these, and with
``warn_on_restart`` (true) the run that sees a restart reports warning.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import Field, model_validator

from upkeep.bounds import MAX_COUNT
from upkeep.engine.registry import host_scoped

from .base import CRITICAL, OK, WARNING, CheckEnv, CheckResult, TargetBase

BLOCKING = True


class ProcessTarget(TargetBase):
    type: Literal["process"]
    process_name: str | None = Field(None, description="Exact process name (as in `ps -o comm`).")
    cmdline: str | None = Field(None, description="Regular expression searched in the command line.")
    pidfile: str | None = host_scoped(None, description="File holding the pid.")
    min_count: int = Field(1, ge=1, le=MAX_COUNT, description="Processes that must match.")
    warn_on_restart: bool = Field(True, description="Report warning when the main pid changed since last run.")

    @model_validator(mode="after")
    def _one(self) -> ProcessTarget:
        given = [k for k in ("process_name", "cmdline", "pidfile") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("a process target has exactly one of process_name, cmdline, pidfile")
        if self.cmdline:
            try:
                re.compile(self.cmdline)
            except re.error as exc:
                raise ValueError(f"invalid cmdline regex {self.cmdline!r}: {exc}") from None
        return self

    def default_name(self) -> str:
        return f"process:{self.process_name or self.pidfile or self.cmdline}"

    def describe(self) -> str:
        if self.process_name:
            return f"process named {self.process_name!r}"
        if self.pidfile:
            return f"pidfile {self.pidfile}"
        return f"command line matching /{self.cmdline}/"


def _matches(target: ProcessTarget) -> tuple[list[psutil.Process], str | None]:
    if target.pidfile:
        path = Path(target.pidfile)
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return [], f"pidfile {path} does not exist"
        except OSError as exc:
            return [], f"cannot read pidfile {path}: {exc.strerror or exc}"
        if not text.split() or not text.split()[0].isdigit():
            return [], f"pidfile {path} holds no pid (its first word is not a number)"  # never echo a file
        pid = int(text.split()[0])
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return [], f"pid {pid} from {path} is a zombie"
            return [proc], None
        except psutil.NoSuchProcess:
            return [], f"pid {pid} from {path} is not running"
    pattern = re.compile(target.cmdline) if target.cmdline else None
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        info = proc.info
        if proc.pid == me or info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        by_name = bool(target.process_name) and info.get("name") == target.process_name
        if by_name or (pattern is not None and pattern.search(" ".join(info.get("cmdline") or []))):
            found.append(proc)
    return found, None


def check(target: ProcessTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    procs, problem = _matches(target)
    previous = env.previous_state(name)
    restarts = int(previous.get("restarts", 0))
    if not procs:
        detail = problem or f"no {target.describe()} is running"
        return CheckResult(name, "process", CRITICAL, detail, state={**previous, "restarts": restarts})
    started: list[tuple[float, int]] = []
    for proc in procs:
        try:
            started.append((proc.create_time(), proc.pid))
        except psutil.NoSuchProcess:
            continue
    if not started:
        return CheckResult(name, "process", CRITICAL, f"no {target.describe()} is running", state=previous)
    started.sort()
    main_started, main_pid = started[0]
    restarted = bool(previous.get("main_pid")) and (
        previous.get("main_pid") != main_pid or abs(float(previous.get("main_started", 0)) - main_started) > 1
    )
    if restarted:
        restarts += 1
    uptime = max(0.0, time.time() - main_started)
    state: dict[str, Any] = {"main_pid": main_pid, "main_started": main_started, "restarts": restarts}
    data = {
        "pids": [pid for _, pid in started],
        "count": len(started),
        "uptime_seconds": round(uptime),
        "restarts": restarts,
        "restarted": restarted,
    }
    status = OK
    detail = f"{len(started)} running, pid {main_pid}, up {_duration(uptime)}"
    if len(started) < target.min_count:
        status = CRITICAL
        detail = f"{len(started)} of {target.min_count} required processes running (pid {main_pid})"
    elif restarted:
        detail += f"; restarted since last check (pid {previous.get('main_pid')} -> {main_pid})"
        if target.warn_on_restart:
            status = WARNING
    return CheckResult(name, "process", status, detail, None, data, state)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
