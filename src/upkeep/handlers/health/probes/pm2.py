"""PM2 app checks (``type: pm2``) from ``pm2 jlist`` (run once per health.check run).

Fields: ``app`` (PM2 app name; default the target name), ``max_restarts`` (none: warning when PM2's
``restart_time`` reaches it), ``warn_on_restart`` (true: warning when ``restart_time`` grew since
the previous run). Status ``online`` is required; every instance of a clustered app is judged.
Without ``pm2`` on PATH the target is critical with a message saying so.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from typing import Any, Literal

from pydantic import Field

from upkeep.bounds import MAX_COUNT

from .base import CRITICAL, OK, WARNING, CheckEnv, CheckResult, TargetBase, worst

BLOCKING = True
_LOCK = threading.Lock()


class Pm2Target(TargetBase):
    type: Literal["pm2"]
    app: str | None = Field(None, description="PM2 app name (default: the target name).")
    max_restarts: int | None = Field(None, ge=0, le=MAX_COUNT, description="Warning at this many PM2 restarts.")
    warn_on_restart: bool = Field(True, description="Warning when restart_time grew since the last run.")

    def default_name(self) -> str:
        return f"pm2:{self.app}"


def _jlist(env: CheckEnv, timeout: float) -> list[dict[str, Any]] | str:
    """PM2's process list, or the reason it cannot be read (cached for the run)."""
    with _LOCK:
        if "pm2" in env.shared:
            return env.shared["pm2"]
        binary = shutil.which("pm2")
        if binary is None:
            value: list[dict[str, Any]] | str = "pm2 is not on PATH (install PM2 or remove this pm2 target)"
        else:
            result = env.run_command([binary, "jlist"], timeout=timeout, check=False)
            if result.returncode != 0:
                value = f"`pm2 jlist` exited with {result.returncode}: {result.tail(2)}"
            else:
                value = parse_jlist(result.stdout)
        env.shared["pm2"] = value
        return value


def parse_jlist(text: str) -> list[dict[str, Any]] | str:
    """``pm2 jlist`` prints JSON after any daemon chatter; find the array."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    while start >= 0:
        try:
            data, _ = decoder.raw_decode(text, start)
        except ValueError:
            data = None
        if isinstance(data, list) and all(isinstance(item, dict) for item in data):
            return data
        start = text.find("[", start + 1)
    return "`pm2 jlist` did not print a JSON list"


def evaluate(
    apps: list[dict[str, Any]], target: Pm2Target, name: str, previous: dict[str, Any], now: float | None = None
) -> CheckResult:
    """Judge one app from ``pm2 jlist`` entries (pure: tested with recorded jlist output)."""
    app = target.app or name
    entries = [a for a in apps if a.get("name") == app]
    if not entries:
        known = ", ".join(sorted({str(a.get("name")) for a in apps})) or "none"
        return CheckResult(name, "pm2", CRITICAL, f"no PM2 app named {app!r} (known: {known})", state=previous)
    now = time.time() if now is None else now
    statuses = []
    down = []
    restarts = 0
    uptimes = []
    for entry in entries:
        env = entry.get("pm2_env") or {}
        state = env.get("status", "unknown")
        restarts += int(env.get("restart_time") or 0)
        if state != "online":
            down.append(f"{entry.get('pm_id', '?')}:{state}")
        elif env.get("pm_uptime"):
            uptimes.append(max(0.0, now - float(env["pm_uptime"]) / 1000.0))
    if down:
        statuses.append(CRITICAL)
    grew = restarts - int(previous.get("restart_time", restarts))
    detail_parts = [f"{len(entries) - len(down)}/{len(entries)} online", f"{restarts} restarts"]
    if down:
        detail_parts.insert(0, "not online: " + ", ".join(down))
    if uptimes:
        detail_parts.append(f"up {min(uptimes):.0f}s")
    if grew > 0:
        detail_parts.append(f"{grew} restart(s) since last check")
        if target.warn_on_restart:
            statuses.append(WARNING)
    if target.max_restarts is not None and restarts >= target.max_restarts:
        statuses.append(WARNING)
        detail_parts.append(f"restarts >= {target.max_restarts}")
    status = worst(statuses) if statuses else OK
    data = {"instances": len(entries), "online": len(entries) - len(down), "restart_time": restarts}
    return CheckResult(name, "pm2", status, ", ".join(detail_parts), None, data, {"restart_time": restarts})


def check(target: Pm2Target, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    apps = _jlist(env, env.timeout_for(target))
    if isinstance(apps, str):
        return CheckResult(name, "pm2", CRITICAL, apps, state=env.previous_state(name))
    return evaluate(apps, target, name, env.previous_state(name))
