"""Tests for upkeep.engine.schedules: cron (incl. DST), @every, @once, manual, errors, explain."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upkeep.engine.schedules import (
    EPOCH,
    ScheduleError,
    explain_schedule,
    parse_schedule,
    validate_timezone,
)
from upkeep.errors import UserError

ZAGREB = ZoneInfo("Europe/Zagreb")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_times(slots: list[datetime], zone: ZoneInfo) -> list[str]:
    return [slot.astimezone(zone).strftime("%m-%d %H:%M %Z") for slot in slots]


# --- An independent brute-force cron matcher (subset: numbers, names, *, ranges, steps, lists) ---

MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELD_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]  # minute, hour, dom, month, dow


def _value(token: str, names: list[str] | None, offset: int) -> int:
    if names and token in names:
        return names.index(token) + offset
    return int(token)


def expand_field(text: str, low: int, high: int, names: list[str] | None = None, offset: int = 0) -> set[int]:
    values: set[int] = set()
    for term in text.split(","):
        base, _, step_text = term.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-")
            first, last = _value(first_text, names, offset), _value(last_text, names, offset)
        else:
            first = last = _value(base, names, offset)
        values.update(range(first, last + 1, step))
    return values


BRUTE_FORCE_HORIZON = timedelta(days=6 * 366)


def brute_force_next(expr: str, after: datetime) -> datetime | None:
    """First minute strictly after `after` (UTC) matching `expr`, scanning minute by minute.

    Returns None when nothing matches within BRUTE_FORCE_HORIZON (long enough to meet a 29 February).

    Whole days that cannot match are skipped at once (same result, much faster). Day rule as in
    Debian cron: if day-of-month or day-of-week starts with '*', both must match, else either.
    """
    minute_f, hour_f, dom_f, month_f, dow_f = expr.split()
    minutes = expand_field(minute_f, 0, 59)
    hours = expand_field(hour_f, 0, 23)
    doms = expand_field(dom_f, 1, 31)
    months = expand_field(month_f, 1, 12, MONTH_NAMES, 1)
    dows = {d % 7 for d in expand_field(dow_f, 0, 7, DOW_NAMES, 0)}
    day_and = dom_f.startswith("*") or dow_f.startswith("*")

    def day_matches(d: date) -> bool:
        if d.month not in months:
            return False
        dom_ok = d.day in doms
        dow_ok = (d.isoweekday() % 7) in dows
        return (dom_ok and dow_ok) if day_and else (dom_ok or dow_ok)

    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    horizon = after + BRUTE_FORCE_HORIZON
    while t <= horizon:
        if not day_matches(t.date()):
            t = datetime.combine(t.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            continue
        if t.hour in hours and t.minute in minutes:
            return t
        t += timedelta(minutes=1)
    return None


def test_brute_force_matcher_sanity():
    assert brute_force_next("0 3 1-7 * 0", utc(2026, 1, 1)) == utc(2026, 1, 1, 3)  # dom 1 matches
    assert brute_force_next("0 3 8-9 * 0", utc(2026, 1, 1)) == utc(2026, 1, 4, 3)  # Sunday matches
    assert brute_force_next("0 3 */2 * mon", utc(2026, 1, 1)) == utc(2026, 1, 5, 3)  # AND: odd Monday
    assert brute_force_next("*/20 1 * feb *", utc(2026, 1, 1)) == utc(2026, 2, 1, 1, 0)


def field_strategy(index: int) -> st.SearchStrategy[str]:
    low, high = FIELD_BOUNDS[index]
    names = {3: (MONTH_NAMES, 1), 4: (DOW_NAMES, 0)}.get(index)

    @st.composite
    def single(draw) -> str:
        value = draw(st.integers(low, high))
        if names and value - names[1] < len(names[0]) and draw(st.booleans()):
            return names[0][value - names[1]]
        return str(value)

    @st.composite
    def span(draw) -> str:
        first = draw(st.integers(low, high))
        last = draw(st.integers(first, high))
        text = f"{first}-{last}"
        if draw(st.booleans()):
            text += f"/{draw(st.integers(1, high - low + 1))}"
        return text

    star_step = st.integers(1, high - low + 1).map(lambda step: f"*/{step}")
    listed = st.lists(st.one_of(single(), span()), min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), star_step, listed)


cron_expressions = st.tuples(*(field_strategy(i) for i in range(5))).map(" ".join)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=cron_expressions, after=instants)
def test_cron_next_after_matches_brute_force(expr: str, after: datetime):
    expected = brute_force_next(expr, after)
    try:
        schedule = parse_schedule(expr)
    except ScheduleError:
        # cronsim refuses expressions that can never fire (e.g. 31 February); agree with it.
        assert expected is None, f"{expr!r} was rejected but fires at {expected}"
        return
    got = schedule.next_after(after)
    if expected is None:  # nothing within the horizon; e.g. '* * */7 */6 7' waits over 6 years
        assert got is None or got > after + BRUTE_FORCE_HORIZON, f"{expr!r} after {after}: got {got}"
        return
    assert got == expected, f"{expr!r} after {after}: got {got}, brute force {expected}"
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    following = brute_force_next(expr, got)
    if following is not None:
        assert schedule.next_after(got) == following


# --- Cron basics ---


def test_cron_next_after_is_strict_and_utc():
    schedule = parse_schedule("0 3 * * *")
    assert schedule.kind == "cron"
    assert schedule.next_after(utc(2026, 5, 1, 3)) == utc(2026, 5, 2, 3)
    assert schedule.next_after(utc(2026, 5, 1, 2, 59, 59, 999999)) == utc(2026, 5, 1, 3)
    in_zagreb = parse_schedule("0 3 * * *", "Europe/Zagreb").next_after(utc(2026, 5, 1))
    assert in_zagreb == utc(2026, 5, 1, 1) and in_zagreb.tzinfo is UTC


def test_cron_accepts_names_and_normalises_whitespace():
    schedule = parse_schedule("  0  3 * jan,jul  mon-fri ")
    assert schedule.expression == "0 3 * jan,jul mon-fri"
    assert schedule.next_after(utc(2026, 1, 2, 12)) == utc(2026, 1, 5, 3)  # Fri 2nd -> Mon 5th


def test_cron_dom_and_dow_are_ored_when_both_restricted():
    slots = parse_schedule("0 3 1-7 * 0").slots_between(utc(2026, 3, 1), utc(2026, 3, 31))
    days = [slot.day for slot in slots]
    assert days == [1, 2, 3, 4, 5, 6, 7, 8, 15, 22, 29]  # 1-7 plus every Sunday (1, 8, 15, 22, 29)


def test_stepped_single_value_range_means_that_value():
    """cronsim 2.x reads '20-20/5' as '20/5' (20,25,...,55); Debian cron reads it as just 20."""
    schedule = parse_schedule("20-20/5 * * * 0-0/1")
    assert schedule.expression == "20-20/5 * * * 0-0/1"
    slots = schedule.slots_between(utc(2026, 1, 3), utc(2026, 1, 4, 2))  # Saturday 3rd -> Sunday 4th
    assert slots == [utc(2026, 1, 4, 0, 20), utc(2026, 1, 4, 1, 20)]


@pytest.mark.parametrize(
    ("macro", "cron"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_macros_map_to_cron(macro: str, cron: str):
    schedule = parse_schedule(macro)
    assert schedule.kind == "cron"
    assert schedule.expression == macro.lower()
    start, end = utc(2026, 1, 1), utc(2028, 1, 1)
    assert schedule.slots_between(start, end, limit=30) == parse_schedule(cron).slots_between(start, end, limit=30)


def test_first_sunday_and_last_day_extensions():
    first_sundays = parse_schedule("0 3 * * 0#1").slots_between(utc(2026, 1, 1), utc(2026, 4, 30))
    assert [s.date() for s in first_sundays] == [
        date(2026, 1, 4),
        date(2026, 2, 1),
        date(2026, 3, 1),
        date(2026, 4, 5),
    ]
    last_days = parse_schedule("0 3 L * *").slots_between(utc(2026, 1, 1), utc(2026, 4, 30, 12))
    assert [s.day for s in last_days] == [31, 28, 31, 30]
    last_fridays = parse_schedule("0 3 * * 5L").slots_between(utc(2026, 1, 1), utc(2026, 3, 31))
    assert [s.date() for s in last_fridays] == [date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 27)]


def test_slots_between_bounds_and_limit():
    schedule = parse_schedule("0 * * * *")
    slots = schedule.slots_between(utc(2026, 1, 1, 0), utc(2026, 1, 1, 3))
    assert slots == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]  # start excluded, end included
    assert schedule.slots_between(utc(2026, 1, 1), utc(2026, 1, 2), limit=2) == slots[:2]
    assert schedule.slots_between(utc(2026, 1, 2), utc(2026, 1, 1)) == []


# --- DST (Debian cron semantics as implemented by cronsim) ---


def test_zagreb_daily_0230_skipped_at_spring_forward_fires_once_right_after_the_change():
    slots = parse_schedule("30 2 * * *", "Europe/Zagreb").slots_between(utc(2026, 3, 27), utc(2026, 3, 31))
    assert local_times(slots, ZAGREB) == [
        "03-27 02:30 CET",
        "03-28 02:30 CET",
        "03-29 03:00 CEST",  # 02:30 does not exist on 29 March: runs once, at the change
        "03-30 02:30 CEST",
    ]


def test_zagreb_daily_0230_in_repeated_hour_at_fall_back_fires_once():
    schedule = parse_schedule("30 2 * * *", "Europe/Zagreb")
    slots = schedule.slots_between(utc(2026, 10, 23), utc(2026, 10, 27))
    assert local_times(slots, ZAGREB) == [
        "10-23 02:30 CEST",
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",  # first 02:30 only; the repeated 02:30 CET does not fire again
        "10-26 02:30 CET",
    ]
    # Asking from inside the repeated hour, after the slot already ran, moves on to the next day.
    assert schedule.next_after(utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)


def test_new_york_daily_0230_skipped_at_spring_forward_fires_at_0300():
    slots = parse_schedule("30 2 * * *", "America/New_York").slots_between(utc(2026, 3, 7), utc(2026, 3, 10))
    assert local_times(slots, NEW_YORK) == ["03-07 02:30 EST", "03-08 03:00 EDT", "03-09 02:30 EDT"]


def test_new_york_daily_0130_in_repeated_hour_at_fall_back_fires_once():
    schedule = parse_schedule("30 1 * * *", "America/New_York")
    slots = schedule.slots_between(utc(2026, 10, 31), utc(2026, 11, 3))
    assert local_times(slots, NEW_YORK) == ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"]
    # 01:15 EST is inside the repeated hour, after 01:30 EDT already ran.
    assert schedule.next_after(utc(2026, 11, 1, 6, 15)) == utc(2026, 11, 2, 6, 30)


def test_every_15_minutes_keeps_absolute_rhythm_at_spring_forward():
    slots = parse_schedule("*/15 * * * *", "Europe/Zagreb").slots_between(
        utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30)
    )
    assert slots == [
        utc(2026, 3, 29, 0, 45),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 1, 15),
        utc(2026, 3, 29, 1, 30),
    ]
    assert local_times(slots, ZAGREB) == [
        "03-29 01:45 CET",
        "03-29 03:00 CEST",
        "03-29 03:15 CEST",
        "03-29 03:30 CEST",
    ]


def test_every_15_minutes_runs_in_both_passes_of_repeated_hour_at_fall_back():
    """Debian semantics (wildcard hour): the repeated 02:00-02:59 hour runs twice, every 15 min."""
    slots = parse_schedule("*/15 * * * *", "Europe/Zagreb").slots_between(
        utc(2026, 10, 24, 23, 45), utc(2026, 10, 25, 2)
    )
    assert slots == [utc(2026, 10, 25, 0) + timedelta(minutes=15 * k) for k in range(9)]
    assert local_times(slots, ZAGREB) == [
        "10-25 02:00 CEST", "10-25 02:15 CEST", "10-25 02:30 CEST", "10-25 02:45 CEST",
        "10-25 02:00 CET", "10-25 02:15 CET", "10-25 02:30 CET", "10-25 02:45 CET",
        "10-25 03:00 CET",
    ]  # fmt: skip


# --- explain ---


def test_explain_says_or_when_dom_and_dow_both_restricted():
    text = parse_schedule("0 3 1-7 * 0").explain()
    assert " or " in text and "Sunday" in text and "1" in text and "7" in text
    assert "either field" in text
    assert text.startswith("At 03:00")


def test_explain_extensions_and_timezone_note():
    assert "first Sunday" in parse_schedule("0 3 * * 0#1").explain()
    assert "last day" in parse_schedule("0 3 L * *").explain()
    assert "last Friday" in parse_schedule("0 3 * * 5L").explain()
    assert parse_schedule("0 3 * * *", "Europe/Zagreb").explain().endswith(" (Europe/Zagreb)")
    assert "(" not in parse_schedule("0 3 * * *").explain()
    assert " or " not in parse_schedule("0 3 1-7 * *").explain()


def test_explain_schedule_returns_next_slots_in_schedule_timezone():
    info = explain_schedule("0 3 * * *", "Europe/Zagreb", count=3, now=utc(2026, 3, 27, 12))
    assert info["expression"] == "0 3 * * *"
    assert info["timezone"] == "Europe/Zagreb"
    assert info["kind"] == "cron"
    assert info["text"] == "At 03:00 every day (Europe/Zagreb)"
    assert [slot.isoformat() for slot in info["next"]] == [
        "2026-03-28T03:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T03:00:00+02:00",
    ]
    assert all(slot.tzinfo == ZAGREB for slot in info["next"])


def test_explain_schedule_manual_and_every():
    manual = explain_schedule(None, now=utc(2026, 1, 1))
    assert manual == {
        "expression": None,
        "timezone": "UTC",
        "kind": "manual",
        "text": "Manual only (no schedule)",
        "next": [],
    }
    every = explain_schedule("@every 1h30m", count=2, now=utc(2026, 1, 1))
    assert every["text"] == "Every 1 hour 30 minutes, counted from the Unix epoch (1970-01-01 00:00 UTC)"
    assert every["next"] == [utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3)]


# --- @every ---


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("2H", 7200),
    ],
)
def test_every_periods(text: str, seconds: int):
    schedule = parse_schedule(f"@every {text}")
    assert schedule.kind == "every"
    assert schedule.period_seconds == seconds


def test_every_slots_are_anchored_without_drift():
    anchor = utc(2026, 2, 3, 4, 5, 6, 789)
    schedule = parse_schedule("@every 90s", anchor=anchor)
    period = timedelta(seconds=90)
    assert schedule.next_after(anchor + 10.5 * period) == anchor + 11 * period
    assert schedule.next_after(anchor + 11 * period) == anchor + 12 * period  # strictly after
    far = anchor + 1_000_003.25 * period
    assert schedule.next_after(far) == anchor + 1_000_004 * period
    assert schedule.slots_between(anchor, anchor + 3 * period) == [anchor + k * period for k in (1, 2, 3)]


def test_every_without_anchor_counts_from_epoch_and_ignores_timezone():
    utc_schedule = parse_schedule("@every 2h")
    zagreb_schedule = parse_schedule("@every 2h", "Europe/Zagreb")
    assert utc_schedule.anchor == EPOCH
    after = utc(2026, 3, 29, 0, 30)
    assert utc_schedule.next_after(after) == zagreb_schedule.next_after(after) == utc(2026, 3, 29, 2)
    assert utc_schedule.period_seconds == 7200
    assert parse_schedule("0 3 * * *").period_seconds is None


# --- @once and manual ---


def test_once_with_offset():
    schedule = parse_schedule("@once 2026-12-01T03:00:00+01:00", "America/New_York")
    assert schedule.kind == "once"
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 12, 1, 2)
    assert schedule.next_after(utc(2026, 12, 1, 2)) is None
    assert schedule.slots_between(utc(2026, 1, 1), utc(2027, 1, 1)) == [utc(2026, 12, 1, 2)]


def test_once_without_offset_is_read_in_schedule_timezone():
    schedule = parse_schedule("@once 2026-07-01T03:00", "Europe/Zagreb")
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 7, 1, 1)
    assert parse_schedule("@once 2026-07-01T03:00").next_after(utc(2026, 1, 1)) == utc(2026, 7, 1, 3)
    assert schedule.explain() == "Once at 2026-07-01 03:00:00 CEST (Europe/Zagreb)"


@pytest.mark.parametrize("text", [None, "", "   ", "manual", "@manual", "MANUAL"])
def test_manual(text):
    schedule = parse_schedule(text)
    assert schedule.kind == "manual"
    assert schedule.expression is None
    assert schedule.next_after(utc(2026, 1, 1)) is None
    assert schedule.slots_between(utc(2026, 1, 1), utc(2027, 1, 1)) == []
    assert schedule.explain() == "Manual only (no schedule)"
    assert schedule.period_seconds is None


# --- Errors ---


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "61 * * * *",
            ["invalid cron expression '61 * * * *'", "minute must be 0-59", "MIN HOUR DOM MON DOW"],
        ),
        ("0 24 * * *", ["hour must be 0-23"]),
        ("0 0 32 * *", ["day-of-month must be 1-31"]),
        ("0 0 31 2 *", ["day-of-month", "chosen month"]),
        ("0 0 * 13 *", ["month must be 1-12"]),
        ("0 0 * * 8", ["day-of-week must be 0-7"]),
        ("5-1 * * * *", ["bad minute '5-1'"]),
        ("0 0 * * * *", ["expected 5 fields, got 6", "MIN HOUR DOM MON DOW"]),
        ("0 0 *", ["expected 5 fields, got 3"]),
        ("@every 0s", ["at least 1s"]),
        ("@every soon", ["'soon'", "90s, 10m, 2h, 1d"]),
        ("@every", ["90s, 10m, 2h, 1d"]),
        ("@once not-a-date", ["'not-a-date'", "ISO 8601", "2026-12-01T03:00:00+01:00"]),
        ("@reboot", ["unknown schedule '@reboot'", "@every 10m"]),
        ("@daily extra", ["unknown schedule"]),
    ],
)
def test_bad_expressions_raise_helpful_schedule_error(text: str, needles: list[str]):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text)
    assert isinstance(info.value, UserError)
    for needle in needles:
        assert needle in info.value.message


def test_unknown_timezone():
    message = "unknown time zone 'Mars/Base': use an IANA name such as Europe/Zagreb or UTC"
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Base'") as info:
        parse_schedule("0 3 * * *", "Mars/Base")
    assert info.value.message == message
    assert info.value.field == "timezone"
    for bad in ["Mars/Base", "", "../etc/passwd", "Europe"]:
        with pytest.raises(UserError):
            validate_timezone(bad)
    assert validate_timezone("Europe/Zagreb") == ZAGREB


def test_naive_datetimes_are_programmer_errors():
    naive = datetime(2026, 1, 1)
    for text in ["0 3 * * *", "@every 1h", "@once 2027-01-01T00:00Z", None]:
        schedule = parse_schedule(text)
        with pytest.raises(ValueError, match="naive"):
            schedule.next_after(naive)
        with pytest.raises(ValueError, match="naive"):
            schedule.slots_between(naive, utc(2027, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        parse_schedule("@every 1h", anchor=naive)
    with pytest.raises(ValueError, match="naive"):
        explain_schedule("@daily", now=naive)


def test_schedules_are_frozen_values():
    assert parse_schedule("0 3 * * *", "Europe/Zagreb") == parse_schedule("0  3 * * *", "Europe/Zagreb")
    with pytest.raises(AttributeError):
        parse_schedule("@daily").timezone = "Europe/Zagreb"  # type: ignore[misc]


def test_leap_day_schedule_waits_for_leap_year():
    slot = parse_schedule("0 0 29 2 *").next_after(utc(2026, 3, 1))
    assert slot == utc(2028, 2, 29)
    assert calendar.isleap(slot.year)
