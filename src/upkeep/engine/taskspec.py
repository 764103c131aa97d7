"""``TaskSpec``: what a scheduled task is, as written in upkeep.yaml, sent to the API or set on the CLI.

One model validates all three. Validation covers the schedule (cron, time zone, windows), the
task type (known handler) and the config (the handler's own model), so nothing invalid is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from upkeep.bounds import (
    MAX_BACKOFF_SECONDS,
    MAX_DURATION_SECONDS,
    MAX_GRACE_SECONDS,
    MAX_JITTER_SECONDS,
    MAX_TIMEOUT_SECONDS,
)
from upkeep.engine.registry import REGISTRY, Registry, format_validation_error
from upkeep.engine.schedules import parse_schedule, validate_timezone
from upkeep.engine.windows import parse_windows
from upkeep.errors import ConfigError

TIERS = ("daily", "weekly", "monthly", "quarterly", "yearly")
TIER_SCHEDULES = {
    "daily": "0 2 * * *",
    "weekly": "0 3 * * 0",
    "monthly": "0 4 1 * *",
    "quarterly": "0 5 1 1,4,7,10 *",
    "yearly": "0 6 1 1 *",
}


class EscalationStep(BaseModel):
    """Where an alert goes next while nobody acknowledges it and it does not resolve."""

    model_config = ConfigDict(extra="forbid")

    after: str = Field(description="How long after the alert opened, e.g. 30m")
    channels: list[str] = Field(min_length=1, description="Channel names from `channels:`")

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s, e.g. 30m")
        return value

    @property
    def after_seconds(self) -> float:
        return parse_duration(self.after)


class NotifySpec(BaseModel):
    """When and where a task alerts (see the alerts section of the README)."""

    model_config = ConfigDict(extra="forbid")

    channels: list[str] = Field(default_factory=list, description="Channel names from `channels:`")
    on_failure: bool = Field(True, description="After the final retry of a failed or timed-out run")
    on_outcome: list[Literal["warning", "critical"]] = Field(
        default_factory=lambda: ["critical"], description="Completed runs whose outcome is one of these"
    )
    on_recovery: bool = Field(True, description="When a task succeeds again after alerting")
    after_consecutive_failures: int = Field(1, ge=1, le=10000, description="Alert only after N failures in a row")
    repeat_interval: str = Field("4h", description="While a state persists, repeat at most this often")
    on_overdue: bool = Field(True, description="Alert once when the task is overdue")
    escalate: list[EscalationStep] = Field(
        default_factory=list,
        description="Steps that send an alert to more channels while it stays unacknowledged and unresolved",
    )

    @field_validator("repeat_interval")
    @classmethod
    def _repeat(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s, e.g. 4h")
        return value

    @model_serializer(mode="wrap")
    def _without_empty_escalation(self, handler):
        # left out when empty, so notify sections stored before escalation existed compare equal
        data = handler(self)
        if not data.get("escalate"):
            data.pop("escalate", None)
        return data


class AffectsSpec(BaseModel):
    """What a task's runs disturb: while one runs and for ``settle`` after it, failing checks of these
    targets are recorded as maintenance and their alerts held."""

    model_config = ConfigDict(extra="forbid")

    services: list[str] = Field(default_factory=list, description="Names under targets.services")
    databases: list[str] = Field(default_factory=list, description="Names under targets.databases")
    settle: str = Field("10m", description="How long after the run ends its effects may last (at most 1d)")

    @field_validator("settle")
    @classmethod
    def _settle(cls, value: str) -> str:
        if parse_duration(value) > 86400:
            raise ValueError("must be at most 1d")
        return value


MAX_AFTER_TASKS = 20
MAX_AFTER_WITHIN_SECONDS = 30 * 86400
TASK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class AfterSpec(BaseModel):
    """Run when other tasks' runs end: ``on`` which ending, and for several tasks (a fan-in) once
    each has one that ended within ``within`` before the last of them did."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(
        min_length=1, max_length=MAX_AFTER_TASKS, description="Names of the tasks whose runs this one waits for"
    )
    on: Literal["success", "failure", "completion"] = Field(
        "success",
        description="success: completed with outcome ok or warning; failure: failed, timed out or outcome "
        "critical, after its last retry; completion: either",
    )
    within: str = Field("24h", description="Fan-in: how close together the upstream runs must have ended, e.g. 6h")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads an unquoted `on:` key as the boolean true
        if isinstance(data, dict) and any(key is True for key in data):
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        import re

        for name in value:
            if not re.fullmatch(TASK_NAME_PATTERN, name or ""):
                raise ValueError(f"{name!r} is not a task name")
        if len(set(value)) != len(value):
            raise ValueError("names a task twice")
        return value

    @field_validator("within")
    @classmethod
    def _within(cls, value: str) -> str:
        seconds = parse_duration(value)
        if not 0 < seconds <= MAX_AFTER_WITHIN_SECONDS:
            raise ValueError("must be longer than 0s and at most 30d, e.g. 6h")
        return value

    @property
    def within_seconds(self) -> float:
        return parse_duration(self.within)


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=TASK_NAME_PATTERN)
    type: str = Field(min_length=1, max_length=200, description="Handler name, domain.action (aliases accepted)")
    description: str = ""
    schedule: str | None = Field(None, description="cron, @daily, @every 10m, @once ISO-8601, or empty")
    timezone: str = Field("UTC", description="IANA time zone the schedule is read in")
    schedule_anchor: datetime | None = Field(None, description="Anchor of @every slots (default: creation)")
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)
    tiers: list[Literal["daily", "weekly", "monthly", "quarterly", "yearly"]] = Field(default_factory=list)
    concurrency: Literal["forbid", "allow", "replace"] = "forbid"
    misfire: Literal["skip", "run_once", "run_all"] = "skip"
    misfire_grace_seconds: int = Field(60, ge=0, le=MAX_GRACE_SECONDS)
    locks: list[str] = Field(default_factory=list, description="Mutexes shared across tasks, e.g. db:main")
    windows: list[str] = Field(default_factory=list, description='e.g. "Sun 02:00-05:00 Europe/Zagreb"')
    max_retries: int = Field(0, ge=0, le=100)
    retry_backoff_seconds: float = Field(30.0, ge=0, le=MAX_BACKOFF_SECONDS)
    retry_backoff_max_seconds: float = Field(3600.0, ge=0, le=MAX_BACKOFF_SECONDS)
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_TIMEOUT_SECONDS)
    jitter_seconds: float = Field(0.0, ge=0, le=MAX_JITTER_SECONDS)
    queue: str = Field("default", min_length=1, max_length=100)
    notify: NotifySpec = Field(default_factory=NotifySpec)
    expect_success_within: str | None = Field(None, description="e.g. 26h: overdue when no success within")
    ping_url: str | None = Field(None, description="Healthchecks-style URL pinged on start/success/fail")
    affects: AffectsSpec | None = Field(
        None, description="Targets its runs disturb, e.g. {services: [api]}: their failing checks are held meanwhile"
    )
    after: AfterSpec | None = Field(
        None, description="Run when other tasks' runs end (cycles are refused), e.g. {tasks: [nightly-backup]}"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        validate_timezone(value)
        return value

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        parse_windows(value)
        return value

    @field_validator("expect_success_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``90s``, ``10m``, ``4h``, ``2d``, ``1h30m`` or a plain number of seconds."""
    import re

    if isinstance(text, int | float):
        seconds = float(text)
    else:
        value = text.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", value):
            seconds = float(value)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
            if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
                raise ValueError(f"invalid duration {text!r}: use forms like 90s, 10m, 4h, 2d or 1h30m")
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
            seconds = sum(float(n) * unit[u] for n, u in parts)
    if not 0 <= seconds <= MAX_DURATION_SECONDS:  # also refuses inf and nan
        raise ValueError(f"duration {text!r} is out of range: at most {MAX_DURATION_SECONDS // 86400}d")
    return seconds


def validate_task(data: dict[str, Any], registry: Registry = REGISTRY, where: str = "task") -> TaskSpec:
    """Validate everything about a task; raise one ConfigError naming the field and the fix."""
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        name = data.get("name") if isinstance(data, dict) else None
        label = f"{where} {name!r}" if name else where
        raise ConfigError(f"invalid {label}: {format_validation_error(exc, prefix='')}".replace(": .", ": ")) from None
    handler, _alias = registry.resolve(spec.type)
    try:
        parse_schedule(spec.schedule, spec.timezone, spec.schedule_anchor)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"task {spec.name!r}: {exc}", field="schedule") from None
    try:
        handler.validate_config(spec.config)
    except ConfigError as exc:
        raise ConfigError(f"task {spec.name!r}: {exc.message}", hint=exc.hint, field=exc.field) from None
    if spec.after is not None and spec.name in spec.after.tasks:
        raise ConfigError(
            f"task {spec.name!r}: after.tasks names the task itself ({spec.name} → {spec.name})",
            hint="a task cannot wait for its own runs",
            field="after.tasks",
        )
    return spec
