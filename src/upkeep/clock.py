"""Time, always aware and UTC inside upkeep; injectable for tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime


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
