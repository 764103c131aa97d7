"""The rules of ``logs.rotate``: ``RotateRule`` (one rule: paths and logrotate's options),
``LogsRotateConfig``, the rules a run follows (``resolve_rules``: the task's, else the ``targets.logs``
entries') and the ``logs`` kind of target of the inventory (``check_log_target``)."""

from __future__ import annotations

import os
import signal as signals
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from upkeep.bounds import MAX_BYTES, MAX_CALL_SECONDS, MAX_COUNT, MAX_DAYS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import (
    HandlerConfig,
    format_validation_error,
    host_scoped,
    inventory_kind,
    overridable,
    validation_errors,
)
from upkeep.errors import ConfigError
from upkeep.handlers.logs.compress import resolve_level
from upkeep.handlers.logs.rotation import ByteSize, check_dateformat


class RotateRule(BaseModel):
    """One group of log files rotated alike (logrotate's stanza)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Rule name for reports (the inventory target's name)")
    paths: list[str] = host_scoped(..., min_length=1, description="Absolute paths or globs of the active log files")
    frequency: Literal["hourly", "daily", "weekly", "monthly", "yearly"] | None = Field(
        None, description="Rotate by calendar period since the last rotation (daily when no size is set)"
    )
    size: ByteSize | None = Field(
        None, ge=1, le=MAX_BYTES, description="Rotate once the file reaches this size (e.g. 100M)"
    )
    minsize: ByteSize | None = Field(
        None, ge=0, le=MAX_BYTES, description="A time-triggered rotation also needs this size"
    )
    rotate: int = Field(7, ge=0, le=MAX_COUNT, description="Keep this many rotated versions (0: delete on rotation)")
    maxage: float | None = Field(
        None, ge=0, le=MAX_DAYS, description="Delete rotated versions older than this many days"
    )
    dateext: bool = Field(True, description="Date-suffixed names (false: numeric .1, .2, ... shifted)")
    dateformat: str = Field("-%Y%m%d", description="strftime suffix: %Y %m %d %H %M %S %V %s only")
    compress: bool = Field(True, description="Compress rotated versions")
    compress_method: Literal["gzip", "zstd"] = Field("gzip", description="gzip (.gz) or zstd (.zst)")
    compress_level: int | None = Field(None, ge=1, le=22, description="gzip 1-9 (default 6), zstd 1-22 (default 3)")
    delaycompress: bool = Field(False, description="Leave the newest rotated version uncompressed")
    missingok: bool = Field(False, description="A pattern matching no file is not reported")
    notifempty: bool = Field(True, description="Do not rotate empty files")
    mode: Literal["rename", "copytruncate"] = Field("rename", description="rename + create, or copy + truncate")
    create: bool = Field(True, description="rename mode: create a new empty file after renaming")
    create_mode: str | None = host_scoped(None, description="Octal mode of the new file (default: the old file's)")
    create_owner: str | None = host_scoped(None, description="Owner of the new file (default: the old file's)")
    create_group: str | None = host_scoped(None, description="Group of the new file (default: the old file's)")
    postrotate: list[str] | None = host_scoped(None, description="argv run once per rule after rotating")
    pidfile: str | None = host_scoped(None, description="Send `signal` to the pid in this file after rotating")
    signal: str = host_scoped("HUP", description="Signal for the pidfile's process (HUP, USR1, ...)")
    open_wait_seconds: float = Field(
        2.0,
        ge=0,
        le=MAX_CALL_SECONDS,
        description="After rotating, wait up to this long for writers to release rotated files",
    )

    @field_validator("paths", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        for path in value if isinstance(value, list) else []:
            if isinstance(path, str) and not os.path.isabs(os.path.expanduser(path)):
                raise ValueError(f"path {path!r} is relative: use absolute paths or globs")
        return value

    @field_validator("dateformat")
    @classmethod
    def _dateformat(cls, value: str) -> str:
        return check_dateformat(value)

    @field_validator("create_mode")
    @classmethod
    def _mode(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if not 0 <= int(value, 8) <= 0o7777:
                    raise ValueError
            except ValueError:
                raise ValueError(f"create_mode {value!r} is not an octal mode like 0640") from None
        return value

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        parse_signal(value)
        return value

    @model_validator(mode="after")
    def _level(self) -> RotateRule:
        resolve_level(self.compress_method, self.compress_level)
        return self

    @property
    def label(self) -> str:
        return self.name or self.paths[0]


ANALYZE_ONLY_PER_TASK = ("targets", "paths", "window", "since", "until")


def check_log_target(name: str, entry: dict[str, Any]) -> None:
    """A ``targets.logs`` entry: ``paths``, rotation options under ``rotation:``, and the fields of
    ``logs.analyze`` that describe the log (format, time_field, thresholds...)."""
    from upkeep.handlers.logs.analyze import LogsAnalyzeConfig

    rotation = entry.get("rotation") or {}
    if not isinstance(rotation, dict):
        raise ConfigError("must be a mapping of rotation options", field="rotation")
    try:
        RotateRule.model_validate({**rotation, "paths": entry.get("paths")})
    except ValidationError as exc:
        loc, message = validation_errors(exc)[0]
        raise ConfigError(message, field=loc if loc.startswith("paths") else f"rotation.{loc}") from None
    analyzed = {k: v for k, v in entry.items() if k not in ("paths", "rotation")}
    misplaced = sorted(k for k in analyzed if k in RotateRule.model_fields)
    if misplaced:
        raise ConfigError("a rotation option: put it under rotation:", field=misplaced[0])
    for key in ANALYZE_ONLY_PER_TASK:
        if key in analyzed:
            raise ConfigError("is set per task (logs.analyze config), not on the target", field=key)
    try:
        LogsAnalyzeConfig.model_validate(analyzed)
    except ValidationError as exc:
        loc, message = validation_errors(exc)[0]
        raise ConfigError(message, field=loc) from None


inventory_kind("logs", check_log_target)


class LogsRotateConfig(HandlerConfig):
    rules: list[RotateRule] = Field(default_factory=list, description="Rotation rules (else targets.logs)")
    targets: list[str] | None = Field(None, description="Only these targets.logs entries (default: all)")
    force: bool = overridable(False, description="Rotate every matched file now, whatever the triggers")
    timezone: str | None = Field(
        None, description="IANA zone for dates in names and calendar triggers (default: system)"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from None
        return value


def parse_signal(value: str | int) -> signals.Signals:
    if isinstance(value, int) or str(value).isdigit():
        return signals.Signals(int(value))
    name = str(value).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signals.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {value!r} (use HUP, USR1, USR2, ...)") from None


def resolve_rules(ctx: RunContext, config: LogsRotateConfig) -> list[RotateRule]:
    if config.rules:
        return list(config.rules)
    names = config.targets if config.targets is not None else ctx.targets.names("logs")
    rules = []
    for name in names:
        raw = dict(ctx.targets.get("logs", name) or {})  # a clear UserError for an unknown name
        nested = raw.get("rotation") or {}
        if not isinstance(nested, dict):
            raise ConfigError(f"targets.logs.{name}.rotation must be a mapping of rotation options")
        try:
            rules.append(RotateRule.model_validate({"name": name, **nested, "paths": raw.get("paths")}))
        except ValidationError as exc:
            prefix = f"targets.logs.{name}.rotation"
            raise ConfigError(f"invalid log target: {format_validation_error(exc, prefix)}") from None
    if not rules:
        raise ConfigError(
            "logs.rotate has no rules",
            hint="set rules: [{paths: [...]}] in the task or define targets.logs in upkeep.yaml",
        )
    return rules
