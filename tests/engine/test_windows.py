"""Tests for upkeep.engine.windows: parsing, contains/next_open, crossing midnight, DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from upkeep.engine.windows import (
    Window,
    next_window_open,
    parse_window,
    parse_windows,
    window_allows,
)
from upkeep.errors import UserError

# 2026-01-04, 2026-03-29 (Europe spring-forward), 2026-10-25 (Europe fall-back),
# 2026-03-08 and 2026-11-01 (US changes) are all Sundays.


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_parse_examples():
    sunday = parse_window("Sun 02:00-05:00 Europe/Zagreb")
    assert (sunday.days, sunday.start, sunday.end, sunday.timezone) == (
        frozenset({6}),
        120,
        300,
        "Europe/Zagreb",
    )
    nights = parse_window("Mon-Fri 22:00-06:00 UTC")
    assert nights.days == frozenset(range(5)) and nights.crosses_midnight
    daily = parse_window("daily 01:00-03:00")
    assert daily.days == frozenset(range(7)) and daily.timezone == "UTC" and not daily.crosses_midnight
    weekend = parse_window("Sat,Sun 00:00-23:59 America/New_York")
    assert weekend.days == frozenset({5, 6}) and weekend.end == 23 * 60 + 59


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("weekdays", {0, 1, 2, 3, 4}),
        ("weekends", {5, 6}),
        ("Fri-Mon", {4, 5, 6, 0}),
        ("monday,WED,fri", {0, 2, 4}),
        ("Mon-Tue,Sat", {0, 1, 5}),
        ("DAILY", set(range(7))),
    ],
)
def test_parse_days(days: str, expected: set[int]):
    assert parse_window(f"{days} 01:00-02:00").days == frozenset(expected)


def test_contains_is_half_open_in_local_time():
    window = parse_window("Sun 02:00-05:00 Europe/Zagreb")  # CET (UTC+1) in January
    assert not window.contains(utc(2026, 1, 4, 0, 59))
    assert window.contains(utc(2026, 1, 4, 1, 0))
    assert window.contains(utc(2026, 1, 4, 3, 59))
    assert not window.contains(utc(2026, 1, 4, 4, 0))
    assert not window.contains(utc(2026, 1, 5, 2, 0))  # Monday


def test_crossing_midnight_belongs_to_start_day():
    window = parse_window("Mon-Fri 22:00-06:00 UTC")
    assert window.contains(utc(2026, 1, 9, 23))  # Friday night
    assert window.contains(utc(2026, 1, 10, 5, 59))  # Saturday morning, Friday's window
    assert not window.contains(utc(2026, 1, 10, 6))
    assert not window.contains(utc(2026, 1, 10, 22))  # Saturday night: no window
    assert not window.contains(utc(2026, 1, 5, 3))  # Monday morning would be Sunday's window
    assert window.contains(utc(2026, 1, 5, 22))
    assert window.contains(utc(2026, 1, 6, 3))


def test_next_open():
    window = parse_window("Mon-Fri 22:00-06:00 UTC")
    inside = utc(2026, 1, 6, 3, 17, 5)
    assert window.next_open(inside) == inside
    assert window.next_open(utc(2026, 1, 10, 12)) == utc(2026, 1, 12, 22)  # Saturday -> Monday
    assert window.next_open(utc(2026, 1, 9, 6)) == utc(2026, 1, 9, 22)
    assert window.next_open(utc(2026, 1, 9, 21, 59, 59)) == utc(2026, 1, 9, 22)
    in_zagreb = parse_window("daily 01:00-03:00 Europe/Zagreb").next_open(utc(2026, 7, 1, 12))
    assert in_zagreb == utc(2026, 7, 1, 23) and in_zagreb.tzinfo is UTC  # 01:00 CEST next day


def test_next_open_converts_any_aware_input_to_utc():
    window = parse_window("daily 01:00-03:00")
    plus_two = datetime(2026, 1, 1, 4, 30, tzinfo=timezone(timedelta(hours=2)))  # 02:30 UTC, inside
    assert window.next_open(plus_two) == utc(2026, 1, 1, 2, 30)
    assert window.next_open(plus_two).tzinfo is UTC


def test_whole_weekend_in_new_york():
    window = parse_window("Sat,Sun 00:00-23:59 America/New_York")
    assert window.contains(utc(2026, 1, 10, 5))  # Sat 00:00 EST
    assert not window.contains(utc(2026, 1, 10, 4, 59))  # Fri 23:59 EST
    assert window.contains(utc(2026, 1, 12, 4, 58))  # Sun 23:58 EST
    assert not window.contains(utc(2026, 1, 12, 4, 59))  # Sun 23:59 EST: end is exclusive
    assert parse_window("Sat,Sun 00:00-24:00 America/New_York").contains(utc(2026, 1, 12, 4, 59, 30))


# --- DST days: boundaries are local wall-clock times ---


def test_spring_forward_window_starting_in_the_gap_opens_at_the_change():
    window = parse_window("Sun 02:00-05:00 Europe/Zagreb")
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 05:00 CEST is 03:00 UTC.
    assert window.next_open(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert not window.contains(utc(2026, 3, 29, 0, 59))
    assert window.contains(utc(2026, 3, 29, 1))
    assert window.contains(utc(2026, 3, 29, 2, 59))
    assert not window.contains(utc(2026, 3, 29, 3))
    assert parse_window("Sun 02:30-04:00 Europe/Zagreb").next_open(utc(2026, 3, 28)) == utc(2026, 3, 29, 1)


def test_window_entirely_inside_the_gap_is_skipped_that_day():
    window = parse_window("Sun 02:00-02:30 Europe/Zagreb")
    assert window.next_open(utc(2026, 3, 28)) == utc(2026, 4, 5, 0)  # next Sunday, 02:00 CEST


def test_fall_back_window_opens_at_first_occurrence_and_keeps_local_end():
    window = parse_window("Sun 02:00-05:00 Europe/Zagreb")
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; the window runs 00:00-04:00 UTC (4 hours).
    assert window.next_open(utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0)
    assert not window.contains(utc(2026, 10, 24, 23, 59))
    assert window.contains(utc(2026, 10, 25, 1, 30))  # 02:30 CET, second pass
    assert window.contains(utc(2026, 10, 25, 3, 59))
    assert not window.contains(utc(2026, 10, 25, 4))


def test_crossing_midnight_into_dst_change():
    window = parse_window("Sat 22:00-06:00 Europe/Zagreb")
    # Sat 28 March 22:00 CET = 21:00 UTC to Sun 29 March 06:00 CEST = 04:00 UTC (7 hours).
    assert window.next_open(utc(2026, 3, 28, 12)) == utc(2026, 3, 28, 21)
    assert window.contains(utc(2026, 3, 29, 3, 59))
    assert not window.contains(utc(2026, 3, 29, 4))


def test_new_york_fall_back_repeated_hour_is_inside():
    window = parse_window("daily 01:00-02:00 America/New_York")
    # 1 November 2026: 01:00 EDT (05:00 UTC) until the wall clock first shows 02:00,
    # i.e. 02:00 EST (07:00 UTC).
    assert window.next_open(utc(2026, 11, 1)) == utc(2026, 11, 1, 5)
    assert window.contains(utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert window.contains(utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert not window.contains(utc(2026, 11, 1, 7))
    # Spring-forward: 8 March 2026 01:00 EST (06:00 UTC) to 02:00 EST = 03:00 EDT (07:00 UTC).
    assert window.contains(utc(2026, 3, 8, 6, 59))
    assert not window.contains(utc(2026, 3, 8, 7))


# --- Helpers over lists of windows ---


def test_window_allows_and_next_window_open():
    windows = parse_windows(["Sun 02:00-05:00 UTC", "Wed 12:00-13:00 UTC"])
    assert window_allows([], utc(2026, 1, 1))
    assert next_window_open([], utc(2026, 1, 1)) == utc(2026, 1, 1)
    assert window_allows(windows, utc(2026, 1, 7, 12, 30))  # Wednesday
    assert not window_allows(windows, utc(2026, 1, 7, 13))
    assert next_window_open(windows, utc(2026, 1, 7, 12, 30)) == utc(2026, 1, 7, 12, 30)
    assert next_window_open(windows, utc(2026, 1, 5)) == utc(2026, 1, 7, 12)  # Monday -> Wednesday
    assert next_window_open(windows, utc(2026, 1, 8)) == utc(2026, 1, 11, 2)  # Thursday -> Sunday


def test_windows_are_frozen_values():
    assert parse_window("Sun  02:00-05:00") == parse_window("Sun 02:00-05:00")
    window = parse_window("Sun 02:00-05:00")
    assert isinstance(window, Window)
    with pytest.raises(AttributeError):
        window.start = 0  # type: ignore[misc]


# --- Errors ---


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "expected 2 or 3 parts, got 0"),
        ("Sun", "expected 2 or 3 parts, got 1"),
        ("Sun 02:00-05:00 UTC extra", "expected 2 or 3 parts, got 4"),
        ("Funday 02:00-05:00", "unknown day 'funday'"),
        ("Mon-Xyz 02:00-05:00", "unknown day 'xyz'"),
        ("Sun 2-5", "cannot read times '2-5'"),
        ("Sun 25:00-26:00", "start time '25:00'"),
        ("Sun 02:00-24:30", "end time '24:30'"),
        ("Sun 02:60-05:00", "start time '02:60'"),
        ("Sun 02:00-02:00", "is empty"),
        ("Sun 02:00-05:00 Mars/Base", "unknown time zone 'Mars/Base'"),
    ],
)
def test_bad_windows_raise_user_error_with_format(text: str, needle: str):
    with pytest.raises(UserError) as info:
        parse_window(text)
    assert needle in info.value.message
    assert "format: DAYS HH:MM-HH:MM [TIMEZONE]" in info.value.message
    assert info.value.field == "window"


def test_naive_datetimes_are_programmer_errors():
    window = parse_window("daily 01:00-03:00")
    naive = datetime(2026, 1, 1, 2)
    for call in (window.contains, window.next_open):
        with pytest.raises(ValueError, match="naive"):
            call(naive)
    with pytest.raises(ValueError, match="naive"):
        window_allows([], naive)
    with pytest.raises(ValueError, match="naive"):
        next_window_open([window], naive)
