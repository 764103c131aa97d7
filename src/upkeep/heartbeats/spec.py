"""``HeartbeatSpec``: a heartbeat monitor as written in upkeep.yaml's ``heartbeats:`` or sent to the API.

A monitor expects pings from a job upkeep does not run. ``schedule`` says when:

* a cron expression, read in ``timezone`` exactly as a task's schedule is (Debian cron semantics,
  ``L`` and ``#``): after a ping, the next one is due at the next slot;
* ``@every DURATION``: the next ping is due that long after the previous one (a job that sleeps
  between runs drifts, and that is fine);

and the monitor is overdue when that time plus ``grace`` passes without a ping. A ``/start`` ping
opens a run that must end (a success or failure ping) within ``timeout`` (default: ``grace``), or
it fails. ``notify`` is a task's notify section (channels, on_failure, on_overdue, on_recovery,
after_consecutive_failures, repeat_interval).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from upkeep.engine.registry import format_validation_error
from upkeep.engine.schedules import Schedule, ScheduleError, parse_schedule, validate_timezone
from upkeep.engine.taskspec import NotifySpec, parse_duration
from upkeep.errors import ConfigError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"  # the task name pattern: a monitor reads like a task
DEFAULT_GRACE = "1h"


class HeartbeatSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    description: str = ""
    schedule: str = Field(description="When the job pings: cron (read in `timezone`) or @every DURATION")
    timezone: str = Field("UTC", description="IANA time zone the cron schedule is read in")
    grace: str = Field(DEFAULT_GRACE, description="How late a ping may be before the monitor is overdue")
    timeout: str | None = Field(None, description="How long after /start the end ping may come (default: grace)")
    notify: NotifySpec = Field(default_factory=NotifySpec)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        validate_timezone(value)
        return value

    @field_validator("grace", "timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s, e.g. 30m")
        return value

    @property
    def grace_seconds(self) -> float:
        return parse_duration(self.grace)

    @property
    def timeout_seconds(self) -> float | None:
        return parse_duration(self.timeout) if self.timeout else None


def monitor_schedule(expression: str, timezone: str) -> Schedule:
    """The parsed schedule of a monitor: cron or @every (a monitor needs pings to come again)."""
    schedule = parse_schedule(expression, timezone)
    if schedule.kind not in ("cron", "every"):
        raise ScheduleError(
            f"a heartbeat monitor needs a recurring schedule, not {expression!r}",
            hint="use a cron expression such as '0 3 * * *' or '@every 10m'",
        )
    return schedule


def validate_heartbeat(data: Any, where: str = "heartbeat") -> HeartbeatSpec:
    """Validate a monitor; one ConfigError naming the monitor, the field and the fix."""
    name = data.get("name") if isinstance(data, dict) else None
    label = f"{where} {name!r}" if name else where
    try:
        spec = HeartbeatSpec.model_validate(data)
    except ScheduleError as exc:  # a validator's own error (an unknown time zone): name the monitor
        raise ConfigError(f"{label}: {exc.message}", hint=exc.hint, field=exc.field) from None
    except ValidationError as exc:
        first = ".".join(str(part) for part in exc.errors()[0]["loc"]) or None
        message = f"invalid {label}: {format_validation_error(exc, prefix='').lstrip('.')}"
        raise ConfigError(message, field=first) from None
    try:
        monitor_schedule(spec.schedule, spec.timezone)
    except ScheduleError as exc:
        raise ConfigError(f"{label}: {exc.message}", hint=exc.hint, field="schedule") from None
    return spec


def format_duration(seconds: float) -> str:
    """``3600`` -> ``1h``, ``5400`` -> ``1h30m``, ``90`` -> ``1m30s``: what parse_duration reads back."""
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def normalized(spec: HeartbeatSpec) -> dict[str, Any]:
    """The spec in the one shape the store, the file and the API compare in (durations canonical)."""
    return {
        "name": spec.name,
        "description": spec.description,
        "schedule": " ".join(spec.schedule.split()),
        "timezone": spec.timezone,
        "grace": format_duration(spec.grace_seconds),
        "timeout": format_duration(spec.timeout_seconds) if spec.timeout_seconds else None,
        "notify": spec.notify.model_dump(mode="json"),
    }


def compact(spec: dict[str, Any]) -> dict[str, Any]:
    """A normalized spec without the fields at their default (readable YAML)."""
    defaults = normalized(HeartbeatSpec(name="x", schedule="@daily"))
    return {k: v for k, v in spec.items() if k in ("name", "schedule") or v != defaults.get(k)}
