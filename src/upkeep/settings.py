"""Process settings: environment variables (``UPKEEP_*``) over the config file's ``server:`` section.

The config file is found via ``--config``, ``UPKEEP_CONFIG``, then ``./upkeep.yaml``,
``~/.config/upkeep/upkeep.yaml`` and ``/etc/upkeep/upkeep.yaml`` (``upkeep.config_file.find_config``).
The data directory (SQLite store, admin key) is ``.upkeep/`` beside the config file unless set;
for the system-wide ``/etc/upkeep/upkeep.yaml`` it is ``/var/lib/upkeep``.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from upkeep.bounds import DAY, HOUR

SYSTEM_CONFIG = Path("/etc/upkeep/upkeep.yaml")
SYSTEM_DATA_DIR = Path("/var/lib/upkeep")


class AuthSettings(BaseModel):
    """``server.auth``: single sign-on through a reverse proxy that authenticates people
    (Authelia, Authentik, oauth2-proxy) and names them in a header."""

    model_config = ConfigDict(extra="forbid")

    proxy_header: str | None = Field(
        default=None,
        description="Header naming the signed-in account (e.g. Remote-User), believed only from trusted_proxies",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDRs of the reverse proxies: their X-Forwarded-For and proxy_header are believed",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
        return value


ENV_PREFIX = "UPKEEP_"


def from_environment(model: type[BaseModel], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The values of ``model``'s fields that ``UPKEEP_<FIELD>`` variables set (names in any case),
    as pydantic-settings reads them: a field that holds a model, a list or a dict from JSON (text
    that is no JSON is left to the model to refuse), every other field from the text itself.

    Read here rather than by pydantic-settings, whose import (all its sources: dotenv, the clouds'
    secret stores, its CLI parser) cost every command more than its settings are worth."""
    env = os.environ if environ is None else environ
    found = {key[len(ENV_PREFIX) :].lower(): value for key, value in env.items() if key.upper().startswith(ENV_PREFIX)}
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in found:
            continue
        value: Any = found[name]
        if _complex(info.annotation):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        values[name] = value
    return values


def _complex(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", None) or annotation
    return (isinstance(origin, type) and issubclass(origin, BaseModel | list | dict | set | tuple)) or any(
        _complex(arg) for arg in getattr(annotation, "__args__", ()) if arg is not type(None)
    )


class Settings(BaseModel):
    """The settings: keyword arguments (the config file's ``server:`` section, CLI options) over
    ``UPKEEP_*`` environment variables over the defaults; ``settings_for`` lets the environment
    win over the file by leaving out what it sets."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**from_environment(type(self)), **values})

    config: Path = Field(default=Path("upkeep.yaml"), description="Path of upkeep.yaml")
    data_dir: Path | None = Field(default=None, description="Defaults to .upkeep/ beside the config file")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    executor: Literal["embedded", "celery"] = "embedded"
    broker_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8750, ge=0, le=65535)
    public_url: str | None = Field(default=None, description="Base URL used in alert links and ping URLs")
    access_log: bool = Field(default=False, description="Log every HTTP request `upkeep serve` answers")
    ping_rate_limit: str = Field(default="200/minute", description="Pings one heartbeat token may send")
    worker_processes: int = Field(default=4, ge=1, le=64, description="At most this many runs at once")
    worker_idle_seconds: float = Field(
        default=30.0, gt=0, le=DAY, description="A worker process idle this long exits (another starts for due runs)"
    )
    workers_warm: int = Field(
        default=0, ge=0, le=64, description="Worker processes kept started while idle (0: none, the lightest)"
    )
    heartbeat_seconds: float = Field(default=10.0, gt=0, le=HOUR)
    stale_after_missed_heartbeats: int = Field(default=3, ge=1, le=1000)
    cancel_grace_seconds: float = Field(default=5.0, ge=0, le=HOUR)
    scheduler_max_sleep_seconds: float = Field(default=30.0, gt=0, le=HOUR)
    requeue_submitted_after_seconds: float = Field(
        default=300.0, gt=0, le=DAY, description="A submitted run not claimed by then is published again (harmless)"
    )
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Sign-in through a reverse proxy")
    timezone: str = Field(
        default="UTC",
        description="Zone of the times in reports and alert messages (a schedule's times use its task's zone)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Zagreb)") from None
        return value

    @cached_property
    def config_path(self) -> Path:
        return self.config.expanduser().resolve()

    @cached_property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir.expanduser().resolve()
        if self.config_path == SYSTEM_CONFIG:
            return SYSTEM_DATA_DIR
        return self.config_path.parent / ".upkeep"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'upkeep.db'}"

    @property
    def stale_after_seconds(self) -> float:
        return self.heartbeat_seconds * self.stale_after_missed_heartbeats

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def base_url(settings: Any) -> str:
    """The address links in messages and ping URLs point at: ``public_url``, else host and port."""
    public = getattr(settings, "public_url", None)
    if public:
        return str(public).rstrip("/")
    host = getattr(settings, "host", "127.0.0.1") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        import socket

        host = socket.gethostname()
    return f"http://{host}:{getattr(settings, 'port', 8750)}"
