"""Time, always aware and UTC inside upkeep; injectable for tests. Shown to people (UI, reports,
alert messages), a time carries its zone and, where it helps, how far it is from now."""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: upkeep only handles time-zone aware datetimes")
    return value.astimezone(UTC)


class Clock:
    """The real clock. Tests pass a ``FakeClock`` wherever a ``Clock`` is accepted."""

    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime):
        self._now = ensure_aware(start)

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> datetime:
        from datetime import timedelta

        self._now = self._now + timedelta(seconds=seconds)
        return self._now

    def set(self, at: datetime) -> None:
        self._now = ensure_aware(at)


# --- times as people read them: with their zone, and how far from now ------------------------------


def zone(name: str | None) -> tzinfo:
    """The zone called ``name``; UTC for none or one this machine does not know (labelled as such)."""
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name) if name else UTC
    except (ValueError, KeyError):
        return UTC


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_time(value: datetime | str | None, tz: str | None = None, *, seconds: bool = True) -> str:
    """``2026-12-06 03:00:00 CET``: the time in zone ``tz`` (UTC by default), never without its zone."""
    parsed = _aware(value)
    if parsed is None:
        return "—"
    return parsed.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


_UNITS = ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min"))


def relative(value: datetime | str | None, now: datetime) -> str:
    """ "in 3 min", "2 h ago": how far a time is from ``now``, in the largest unit that fits."""
    parsed = _aware(value)
    if parsed is None:
        return ""
    delta = (parsed - now).total_seconds()
    span = abs(delta)
    if span < 45:
        return "just now" if delta <= 0 else "in a moment"
    # a unit is used from twice its size ("90 min", "36 h"), so a rounded figure stays close
    size, unit = next((u for u in _UNITS if span >= 2 * u[0]), _UNITS[-1])
    text = f"{max(round(span / size), 1)} {unit}"
    return f"in {text}" if delta > 0 else f"{text} ago"


def format_when(
    value: datetime | str | None, now: datetime | None, tz: str | None = None, *, seconds: bool = True
) -> str:
    """``2026-12-06 03:00:00 CET (in 5 h)``: ``format_time`` and, given ``now``, ``relative``."""
    text = format_time(value, tz, seconds=seconds)
    rel = relative(value, now) if now is not None else ""
    return f"{text} ({rel})" if rel else text
