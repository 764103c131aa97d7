"""Shared pieces of the health checks: statuses, the result of one check, the target base model.

Statuses are Nagios-like: ``ok`` < ``warning`` < ``critical``; a run's outcome is the worst one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from upkeep.bounds import MAX_CALL_SECONDS
from upkeep.handlers.findings import OUTCOMES, RANK, worst_of

STATUSES = OUTCOMES  # a check's status is a run's outcome word
OK, WARNING, CRITICAL = STATUSES

# upkeep-wide TLS certificate expiry defaults (days before notAfter).
CERT_WARN_DAYS = 30
CERT_CRITICAL_DAYS = 7


def worst(statuses: Iterable[str]) -> str:
    """The most severe status of ``statuses`` (``ok`` when empty): the findings' rule."""
    return worst_of(statuses)


def rank(status: str) -> int:
    return RANK[status]


def threshold_status(value: float, warn: float | None, critical: float | None) -> str:
    """``critical`` when ``value >= critical``, ``warning`` when ``value >= warn``, else ``ok``."""
    if critical is not None and value >= critical:
        return CRITICAL
    if warn is not None and value >= warn:
        return WARNING
    return OK


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(value: int | str | None) -> int | None:
    """Bytes from ``1048576``, ``"500M"``, ``"10G"``, ``"1.5GiB"`` (binary units)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"not a size: {value!r} (use bytes or a number with K, M, G, T)")
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (use bytes or a number with K, M, G, T)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover


class TargetBase(BaseModel):
    """Fields every target kind accepts (in ``targets.services.NAME`` or in a task's ``checks``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        description="Target name; in the inventory the key is the name. Inline checks default to a name "
        "derived from the target (e.g. http:URL).",
    )
    timeout: float | None = Field(
        None,
        gt=0,
        le=MAX_CALL_SECONDS,
        description="Seconds before the check gives up (default: the task's `timeout`, 10 s).",
    )
    failure_threshold: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="Consecutive critical observations before the target is reported critical "
        "(default: the task's `failure_threshold`, 1).",
    )
    success_threshold: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="Consecutive non-critical observations before a critical target is reported recovered "
        "(default: the task's `success_threshold`, 1).",
    )

    def default_name(self) -> str:
        return getattr(self, "type", "target")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("a target name cannot be empty")
        return value


@dataclass
class CheckResult:
    """What one check observed (before flap damping)."""

    name: str
    kind: str
    status: str
    detail: str
    latency_ms: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # check-specific memory kept in the record


@dataclass
class CheckEnv:
    """What a check may use: the clock, defaults, the previous record, a command runner, shared clients."""

    now: datetime
    timeout: float = 10.0
    cert_warn_days: int = CERT_WARN_DAYS
    cert_critical_days: int = CERT_CRITICAL_DAYS
    docker_host: str | None = None
    concurrency: int = 100
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # target name -> record
    run_command: Callable[..., Any] | None = None
    shared: dict[str, Any] = field(default_factory=dict)  # per-run clients and caches, keyed by kind

    def timeout_for(self, target: TargetBase) -> float:
        return target.timeout or self.timeout

    def previous_state(self, name: str) -> dict[str, Any]:
        return dict((self.previous.get(name) or {}).get("state") or {})


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
