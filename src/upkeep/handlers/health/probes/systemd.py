"""systemd unit checks (``type: systemd``) with ``systemctl show``.

Fields: ``unit`` (default the target name; ``.service`` is implied by systemctl), ``warn_on_restart``
(true: warning when ``NRestarts`` grew since the previous run). ``ActiveState=active`` is ok,
``activating``/``reloading`` warning, anything else critical. Where systemctl is missing or systemd
is not running (containers), the target is critical with that reason.
"""

from __future__ import annotations

import shutil
from typing import Any, Literal

from pydantic import Field

from .base import CRITICAL, OK, WARNING, CheckEnv, CheckResult, TargetBase, worst

BLOCKING = True
PROPERTIES = "ActiveState,SubState,NRestarts,LoadState"


class SystemdTarget(TargetBase):
    type: Literal["systemd"]
    unit: str | None = Field(None, description="Unit name, e.g. nginx.service (default: the target name).")
    warn_on_restart: bool = Field(True, description="Warning when NRestarts grew since the last run.")

    def default_name(self) -> str:
        return f"systemd:{self.unit}"


def parse_show(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def evaluate(props: dict[str, str], unit: str, name: str, previous: dict[str, Any]) -> CheckResult:
    active = props.get("ActiveState", "unknown")
    sub = props.get("SubState", "")
    restarts = int(props["NRestarts"]) if props.get("NRestarts", "").isdigit() else 0
    if props.get("LoadState") == "not-found":
        return CheckResult(name, "systemd", CRITICAL, f"unit {unit} not found", state=previous)
    statuses = [OK if active == "active" else WARNING if active in ("activating", "reloading") else CRITICAL]
    detail = f"{unit} {active}/{sub}, {restarts} restarts"
    grew = restarts - int(previous.get("restarts", restarts))
    if grew > 0:
        detail += f", {grew} since last check"
        statuses.append(WARNING)
    return CheckResult(
        name,
        "systemd",
        worst(statuses),
        detail,
        None,
        {"active_state": active, "sub_state": sub, "restarts": restarts},
        {"restarts": restarts},
    )


def check(target: SystemdTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    unit = target.unit or name
    previous = env.previous_state(name)
    binary = shutil.which("systemctl")
    if binary is None:
        return CheckResult(name, "systemd", CRITICAL, "systemctl is not on PATH (no systemd here)", state=previous)
    result = env.run_command([binary, "show", "-p", PROPERTIES, unit], timeout=env.timeout_for(target), check=False)
    if result.returncode != 0 or "ActiveState=" not in result.stdout:
        reason = (result.stderr or result.stdout).strip().splitlines()
        why = reason[0] if reason else f"exit code {result.returncode}"
        return CheckResult(name, "systemd", CRITICAL, f"cannot query systemd for {unit}: {why}", state=previous)
    outcome = evaluate(parse_show(result.stdout), unit, name, previous)
    if not target.warn_on_restart and outcome.status == WARNING and outcome.data.get("active_state") == "active":
        outcome.status = OK
    return outcome
