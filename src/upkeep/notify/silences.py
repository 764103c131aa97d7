"""Silences: hold the alerts that fit ``match`` until a time, during recurring windows, or both.

``match`` keys, all of which must fit (at least one is needed):

- ``task``: alerts of that task (its runs, and the targets its health checks observe);
- ``target``: alerts of that target (``services.api``);
- ``tier``: alerts of tasks in that tier (``daily``, ``weekly``, ...);
- ``channel``: every alert on that channel;
- ``heartbeat``: alerts of that heartbeat monitor.

``windows`` uses the tasks' window syntax (``Sun 02:00-05:00 Europe/Zagreb``, see
``upkeep.engine.windows``): the silence holds only inside one of them, local wall-clock hours kept
across DST changes. ``until`` ends it for good. A silenced message is not sent: it is recorded as
``suppressed`` in the history and on its alert, and the alert state still moves (so the silence
ending does not replay old alerts: the next check that still shows the problem alerts again).

Silences are made in upkeep.yaml (``silences:``), through the API and UI, or ``upkeep notify
silence``: the use cases are in ``upkeep.app.alerts``; this module says what a silence means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from upkeep.engine.taskspec import TIERS, parse_duration
from upkeep.engine.windows import parse_window
from upkeep.errors import ConfigError, UserError
from upkeep.store.models import Silence

MATCH_KEYS = ("task", "target", "tier", "channel", "heartbeat")
_window = lru_cache(maxsize=1024)(parse_window)  # silences are read at every evaluation


@dataclass(frozen=True)
class Subject:
    """What an alert is about, as silences see it. ``name`` keys its alert state and its alert: the
    task's name, ``heartbeat/NAME`` or ``target/KIND.NAME``."""

    name: str
    task: str | None = None  # the task whose notify section applies
    tiers: tuple[str, ...] = ()
    target: str | None = None
    heartbeat: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tiers": list(self.tiers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, fallback: str | None = None) -> Subject:
        if not data:
            return cls(name=fallback or "", task=fallback)
        return cls(**{**data, "tiers": tuple(data.get("tiers") or ())})


def parse_until(text: str, now: datetime) -> datetime:
    """``2h``/``1d``/``90m`` from now, or an ISO-8601 time (UTC when it has no offset)."""
    value = (text or "").strip()
    if not value:
        raise UserError("--until is empty", hint="e.g. --until 2h or --until 2030-01-01T08:00+01:00", field="until")
    try:
        return now + timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"cannot read {value!r} as a time",
            hint="use a duration (2h, 1d) or an ISO-8601 time (2030-01-01T08:00+01:00)",
            field="until",
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def validate_silence(match: Any, windows: Any, until: datetime | None) -> tuple[dict[str, str], list[str]]:
    """``(match, windows)`` normalized; a ConfigError naming the field otherwise."""
    if not isinstance(match, dict) or not match:
        raise ConfigError(
            "a silence needs a match: one or more of " + ", ".join(MATCH_KEYS),
            hint="e.g. match: {task: nightly-backup}",
            field="match",
        )
    clean: dict[str, str] = {}
    for key, value in match.items():
        if key not in MATCH_KEYS:
            raise ConfigError(f"unknown key {key!r}", hint=f"match takes {', '.join(MATCH_KEYS)}", field=f"match.{key}")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("must be a name", field=f"match.{key}")
        clean[key] = value.strip()
    if "tier" in clean and clean["tier"] not in TIERS:
        raise ConfigError(f"unknown tier {clean['tier']!r}", hint=f"one of {', '.join(TIERS)}", field="match.tier")
    if not isinstance(windows, list) or not all(isinstance(w, str) for w in windows):
        raise ConfigError("must be a list of windows such as 'Sun 02:00-05:00 Europe/Zagreb'", field="windows")
    normalized = []
    for index, text in enumerate(windows):
        try:
            normalized.append(parse_window(text).text)
        except UserError as exc:
            raise ConfigError(exc.message, field=f"windows.{index}") from None
    if not normalized and until is None:
        raise ConfigError(
            "a silence needs windows (recurring) or until (one-off)",
            hint="e.g. windows: ['Sun 02:00-05:00 Europe/Zagreb'], or --until 2h",
            field="windows",
        )
    if until is not None and until.tzinfo is None:
        raise ConfigError("the end of a silence needs a time zone", field="until")
    return clean, normalized


def describe_match(match: dict[str, Any]) -> str:
    """``task=nightly-backup, channel=email``."""
    return ", ".join(f"{k}={match[k]}" for k in MATCH_KEYS if k in match)


def fits(match: dict[str, Any], subject: Subject, channel: str) -> bool:
    """True when every key of ``match`` fits the alert of ``subject`` on ``channel``."""
    for key, value in match.items():
        if key == "task" and subject.task != value:
            return False
        if key == "target" and subject.target != value:
            return False
        if key == "tier" and value not in subject.tiers:
            return False
        if key == "channel" and channel != value:
            return False
        if key == "heartbeat" and subject.heartbeat != value:
            return False
    return bool(match)


def in_force(row: Silence, now: datetime) -> bool:
    """Not ended, and inside one of its windows when it has any."""
    if row.until is not None and row.until <= now:
        return False
    windows = row.windows or []
    return not windows or any(_window(text).contains(now) for text in windows)


def ended(row: Silence, now: datetime) -> bool:
    return row.until is not None and row.until <= now


def active_silences(session, now: datetime) -> list[Silence]:
    """The silences that have not ended (whether a window is open is judged per message)."""
    return list(
        session.execute(sa.select(Silence).where(sa.or_(Silence.until.is_(None), Silence.until > now))).scalars()
    )


def matching_silence(silences: Iterable[Silence], subject: Subject, channel: str, now: datetime) -> Silence | None:
    """The silence holding the alert of ``subject`` on ``channel`` at ``now``, if any."""
    for row in silences:
        if fits(row.match or {}, subject, channel) and in_force(row, now):
            return row
    return None


def held_by(row: Silence) -> str:
    """How a suppressed message names the silence that held it."""
    scope = f"during {', '.join(row.windows)}" if row.windows else f"until {row.until.isoformat()}"
    return f"silence {row.id} ({describe_match(row.match or {})}) {scope}"


def silence_view(row: Silence, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "id": row.id,
        "match": dict(row.match or {}),
        "windows": list(row.windows or []),
        "until": row.until.isoformat() if row.until else None,
        "reason": row.reason,
        "managed_by": row.managed_by,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "ended": ended(row, now),
        "active": in_force(row, now),
    }
