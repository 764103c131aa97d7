"""Maintenance windows: wall-clock periods in which tasks may run.

Format: ``DAYS HH:MM-HH:MM [TIMEZONE]``, for example ``Sun 02:00-05:00 Europe/Zagreb``,
``Mon-Fri 22:00-06:00 UTC``, ``daily 01:00-03:00`` or ``Sat,Sun 00:00-23:59 America/New_York``.

* DAYS is ``daily``, ``weekdays``, ``weekends``, or a comma list of day names (``mon``/``monday``,
  any case) and ranges (``Mon-Fri``; ``Fri-Mon`` wraps over the weekend).
* The window is half-open, ``[start, end)``. ``24:00`` may be used as the end to mean midnight.
  An end earlier than the start crosses midnight; such a window belongs to its start day
  (``Fri 22:00-06:00`` runs from Friday 22:00 to Saturday 06:00).
* The time zone is an IANA name and defaults to UTC. Times are local wall-clock times, so a window
  keeps its local hours across DST changes. On a DST day each boundary is the first instant the
  wall clock shows that time: a boundary inside the spring-forward gap becomes the moment of the
  change, and a boundary in the repeated fall-back hour is its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from upkeep.clock import ensure_aware
from upkeep.engine.schedules import ScheduleError, validate_timezone
from upkeep.errors import UserError

__all__ = ["Window", "next_window_open", "parse_window", "parse_windows", "window_allows"]

WINDOW_FORMAT = (
    "format: DAYS HH:MM-HH:MM [TIMEZONE], e.g. 'Mon-Fri 22:00-06:00 Europe/Zagreb'; "
    "DAYS is daily, weekdays, weekends, or day names and ranges such as Sat,Sun or Mon-Fri"
)

DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DAY_GROUPS = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
TIMES_RE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")

MINUTES_PER_DAY = 24 * 60
# How far next_open looks ahead; any window with at least one day opens within a week, this is
# only a guard against windows whose occurrences are all swallowed by DST gaps.
SEARCH_DAYS = 400


@dataclass(frozen=True)
class Window:
    """One maintenance window. Build it with :func:`parse_window`.

    ``days`` are Python weekdays (Monday = 0) on which the window starts; ``start`` and ``end``
    are minutes after local midnight (``end`` may be 1440; ``end <= start`` crosses midnight).
    """

    text: str
    days: frozenset[int]
    start: int
    end: int
    timezone: str = "UTC"

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def contains(self, at: datetime) -> bool:
        """True when ``at`` falls inside an occurrence of this window."""
        at = ensure_aware(at)
        today = at.astimezone(self._zone()).date()
        for day in (today - timedelta(days=1), today):
            occurrence = self._occurrence(day)
            if occurrence and occurrence[0] <= at < occurrence[1]:
                return True
        return False

    def next_open(self, after: datetime) -> datetime:
        """Start of the next occurrence at or after ``after`` (UTC); ``after`` itself if inside."""
        after = ensure_aware(after)
        if self.contains(after):
            return after
        day = after.astimezone(self._zone()).date()
        for offset in range(SEARCH_DAYS):
            occurrence = self._occurrence(day + timedelta(days=offset))
            if occurrence and occurrence[0] >= after:
                return occurrence[0]
        raise RuntimeError(f"window {self.text!r} does not open within {SEARCH_DAYS} days")  # unreachable

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _occurrence(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC interval of the occurrence starting on local ``day``, if there is a non-empty one."""
        if day.weekday() not in self.days:
            return None
        midnight = datetime.combine(day, datetime.min.time())
        end = self.end + (MINUTES_PER_DAY if self.crosses_midnight else 0)
        opens = _to_utc(midnight + timedelta(minutes=self.start), self._zone())
        closes = _to_utc(midnight + timedelta(minutes=end), self._zone())
        return (opens, closes) if opens < closes else None


def _to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant a naive local wall-clock time is shown in ``zone``, as UTC.

    A time inside a DST gap never shows; it is moved to the first wall-clock minute after the gap
    (the moment of the change). A repeated time takes its first occurrence (fold=0).
    """
    while True:
        aware = wall.replace(tzinfo=zone, fold=0)
        as_utc = aware.astimezone(UTC)
        if as_utc.astimezone(zone).replace(tzinfo=None) == wall:
            return as_utc
        wall += timedelta(minutes=1)


def parse_window(text: str) -> Window:
    """Parse ``DAYS HH:MM-HH:MM [TIMEZONE]``; raise :class:`UserError` on bad input."""
    normalised = " ".join((text or "").split())

    def fail(problem: str) -> UserError:
        return UserError(f"invalid maintenance window {normalised!r}: {problem} ({WINDOW_FORMAT})", field="window")

    parts = normalised.split(" ")
    if len(parts) not in (2, 3):
        raise fail(f"expected 2 or 3 parts, got {len(parts) if normalised else 0}")
    days_text, times_text = parts[0], parts[1]
    timezone = parts[2] if len(parts) == 3 else "UTC"

    days = _parse_days(days_text, fail)
    start, end = _parse_times(times_text, fail)
    try:
        validate_timezone(timezone)
    except ScheduleError as exc:
        raise fail(exc.message) from None
    return Window(text=normalised, days=days, start=start, end=end, timezone=timezone)


def parse_windows(texts: list[str]) -> list[Window]:
    return [parse_window(text) for text in texts]


def window_allows(windows: list[Window], at: datetime) -> bool:
    """True when there are no windows or ``at`` is inside any of them."""
    ensure_aware(at)
    return not windows or any(window.contains(at) for window in windows)


def next_window_open(windows: list[Window], after: datetime) -> datetime | None:
    """The earliest moment at or after ``after`` when some window is open (``after`` if allowed now)."""
    after = ensure_aware(after)
    if window_allows(windows, after):
        return after
    return min((window.next_open(after) for window in windows), default=None)


def _parse_day(name: str, fail) -> int:
    name = name.lower()
    for index, full in enumerate(DAY_NAMES):
        if name in (full, full[:3]):
            return index
    raise fail(f"unknown day {name!r}; use Mon, Tue, Wed, Thu, Fri, Sat or Sun")


def _parse_days(text: str, fail) -> frozenset[int]:
    if text.lower() in DAY_GROUPS:
        return DAY_GROUPS[text.lower()]
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        begin = _parse_day(first, fail)
        stop = _parse_day(last, fail) if dash else begin
        days.update((begin + step) % 7 for step in range((stop - begin) % 7 + 1))
    return frozenset(days)


def _parse_times(text: str, fail) -> tuple[int, int]:
    match = TIMES_RE.fullmatch(text)
    if match is None:
        raise fail(f"cannot read times {text!r}; write them as HH:MM-HH:MM, e.g. 22:00-06:00")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if start_h > 23 or start_m > 59:
        raise fail(f"start time {text.split('-')[0]!r} must be between 00:00 and 23:59")
    if end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
        raise fail(f"end time {text.split('-')[1]!r} must be between 00:00 and 24:00")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start == end:
        raise fail(f"window {text!r} is empty; for a whole day use 00:00-24:00")
    return start, end
