"""What a crontab line really does, and whether that is what its comment says.

Three things make a line mean something else than it reads:

* cron ORs day-of-month and day-of-week when both are restricted: ``0 3 1-7 * 0`` runs on days
  1-7 *and* on every Sunday;
* a shell test in front of the command (``[ "$(date +%u)" = 7 ] && ...``) drops some of those
  days: the line runs on the days cron picks that also pass the test;
* the comment above it may promise something else (``# 3 AM first Sunday of month``).

``effective_days`` is the set of dates a line really runs on (over ``HORIZON_DAYS``), and
``equivalent`` finds a plain cron expression with the same days and times, so the shell test can
go. ``intent`` reads the comment (times, "daily", "every 5 minutes", weekdays, "first Sunday",
"on the 1st", ...) into cron fields; where it reads nothing, it claims nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from cronsim import CronSim

from upkeep.engine.schedules import MACROS, explain_schedule

HORIZON_DAYS = 800  # two years and some: every month and weekday pattern shows within it
DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}
DATE_RE = r"""["']?(?:\$\(\s*date\s+\+%(?P<fmt{n}>[uwdemaA])\s*\)|`\s*date\s+\+%(?P<bq{n}>[uwdemaA])\s*`)["']?"""
VALUE_RE = r"""["']?(?P<val{n}>[A-Za-z0-9]+)["']?"""
OPS = ("==", "=", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge")
OP_RE = "(?P<op>" + "|".join(re.escape(o) for o in OPS) + ")"
GUARD_RES = [
    re.compile(rf"^\s*(?P<test>(?:\[\[?|test)\s+{lhs}\s+{OP_RE}\s+{rhs}\s*(?:\]\]?)?)\s*&&\s*(?P<rest>.+)$", re.S)
    for lhs, rhs in ((DATE_RE.format(n=1), VALUE_RE.format(n=2)), (VALUE_RE.format(n=1), DATE_RE.format(n=2)))
]


# --- the shell test -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """A date test in front of a command: ``test && rest``."""

    test: str  # as written (after cron's % decoding)
    rest: str  # the command it guards
    predicate: Callable[[date], bool]


def _date_value(fmt: str, day: date) -> str:
    return {
        "u": str(day.isoweekday()),
        "w": str(day.isoweekday() % 7),
        "d": f"{day.day:02d}",
        "e": f"{day.day:2d}",
        "m": f"{day.month:02d}",
        "a": day.strftime("%a"),
        "A": day.strftime("%A"),
    }[fmt]


def _compare(left: str, op: str, right: str) -> bool:
    if op in ("=", "=="):
        return left == right
    if op == "!=":
        return left != right
    try:
        a, b = int(left), int(right)
    except ValueError:
        return False  # test(1) would fail with "integer expression expected"
    return {"-eq": a == b, "-ne": a != b, "-lt": a < b, "-le": a <= b, "-gt": a > b, "-ge": a >= b}[op]


def guard_of(command: str) -> Guard | None:
    """The date test in front of ``command`` (already %-decoded), if it has one upkeep can read."""
    for index, pattern in enumerate(GUARD_RES):
        match = pattern.match(command)
        if match is None:
            continue
        fmt = match.group(f"fmt{index + 1}") or match.group(f"bq{index + 1}")
        value = match.group(f"val{2 - index}")
        op = match.group("op")
        if index == 0:

            def predicate(day: date, fmt=fmt, op=op, value=value) -> bool:
                return _compare(_date_value(fmt, day).strip(), op, value)
        else:

            def predicate(day: date, fmt=fmt, op=op, value=value) -> bool:
                return _compare(value, op, _date_value(fmt, day).strip())

        return Guard(" ".join(match.group("test").split()), match.group("rest").strip(), predicate)
    return None


# --- days and times -------------------------------------------------------------------------------


def cron_fields(schedule: str) -> list[str]:
    """The five fields of a cron expression or macro."""
    return MACROS.get(schedule.lower(), schedule).split()


def days(fields: list[str], start: date, horizon: int = HORIZON_DAYS) -> frozenset[date]:
    """The dates within ``horizon`` days from ``start`` on which the expression has a slot."""
    _, _, dom, month, dow = fields
    begin = datetime.combine(start, time(0, 0)) - timedelta(seconds=1)
    end = start + timedelta(days=horizon)
    out = set()
    for slot in CronSim(f"0 0 {dom} {month} {dow}", begin):
        if slot.date() >= end:
            break
        out.add(slot.date())
    return frozenset(out)


def times(fields: list[str], limit: int = 1440) -> tuple[time, ...]:
    """The times of day of the expression's slots."""
    minute, hour = fields[:2]
    begin = datetime(2001, 1, 1) - timedelta(seconds=1)
    slots = islice(CronSim(f"{minute} {hour} * * *", begin), limit)
    return tuple(sorted({s.time() for s in slots if s.date() == date(2001, 1, 1)}))


@dataclass(frozen=True)
class Firing:
    """When something runs: the days (within the horizon) and the times of day."""

    days: frozenset[date]
    times: tuple[time, ...]


def firing(fields: list[str], start: date, guard: Guard | None = None) -> Firing:
    picked = days(fields, start)
    if guard is not None:
        picked = frozenset(d for d in picked if guard.predicate(d))
    return Firing(picked, times(fields))


def equivalent(fields: list[str], target: Firing, start: date, guard: Guard | None = None) -> str | None:
    """A plain cron expression that fires exactly as ``target`` does (the simplest found), or None."""
    minute, hour, dom, month, dow = fields
    candidates = [" ".join(fields), f"{minute} {hour} * {month} {dow}", f"{minute} {hour} {dom} {month} *"]
    weekdays = {d.isoweekday() % 7 for d in target.days}
    if len(weekdays) == 1:
        [weekday] = weekdays
        candidates.append(f"{minute} {hour} * {month} {weekday}")
        candidates += [f"{minute} {hour} * {month} {weekday}#{k}" for k in range(1, 6)]
        candidates.append(f"{minute} {hour} * {month} {weekday}L")
    seen = set()
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        if firing(candidate.split(), start) == target:
            return candidate
    return None


# --- words ----------------------------------------------------------------------------------------


def _plural_days(dow: str) -> str | None:
    """``0`` -> ``Sundays``, ``1-5`` -> ``Mondays to Fridays``, ``1,4`` -> ``Mondays and Thursdays``."""
    names = [n[:3].lower() for n in DAY_NAMES]

    def one(token: str) -> str | None:
        token = token.lower()
        if token.isdigit() and 0 <= int(token) <= 7:
            return DAY_NAMES[int(token) % 7] + "s"
        if token[:3] in names:
            return DAY_NAMES[names.index(token[:3])] + "s"
        return None

    if "-" in dow and "," not in dow and "/" not in dow:
        first, last = (one(p) for p in dow.split("-", 1))
        return f"{first} to {last}" if first and last else None
    words = [one(p) for p in dow.split(",")]
    if not all(words):
        return None
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]  # type: ignore[operator]


def _days_of_month(dom: str) -> str:
    return f"day {dom}" if dom.isdigit() else f"days {dom}"


def or_reading(fields: list[str]) -> str | None:
    """When both day fields are restricted: how cron reads them (either one matches)."""
    dom, dow = fields[2], fields[4]
    if dom.startswith("*") or dow.startswith("*") or dom == "?" or dow == "?":
        return None
    weekdays = _plural_days(dow) or f"day-of-week {dow}"
    return f"{_days_of_month(dom)} OR {weekdays}"


def days_phrase(expression: str) -> str:
    """The days of a plain expression in words: ``every Sunday``, ``the first Sunday of the month``."""
    _, _, dom, month, dow = expression.split()
    if month == "*":
        match = re.fullmatch(r"(\d)#(\d)", dow)
        if dom == "*" and match:
            return f"the {ORDINALS[int(match[2])]} {DAY_NAMES[int(match[1]) % 7]} of the month"
        match = re.fullmatch(r"(\d)L", dow)
        if dom == "*" and match:
            return f"the last {DAY_NAMES[int(match[1]) % 7]} of the month"
        if dom == "*" and dow.isdigit():
            return f"every {DAY_NAMES[int(dow) % 7]}"
        if dom == "*" and dow == "*":
            return "every day"
        if dow == "*" and dom.isdigit():
            return f"day {dom} of every month"
    return explain_schedule(expression, "UTC", count=0)["text"].removeprefix("At ")


def describe(expression: str) -> str:
    return explain_schedule(expression, "UTC", count=0)["text"]


# --- the comment ----------------------------------------------------------------------------------

WEEKDAY_WORDS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
ORDINAL_WORDS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
DAY_WORD_RE = r"(sun|mon|tues|wednes|thurs|fri|satur)days?"


def intent(comment: str, fields: list[str]) -> tuple[list[str], list[str]] | None:
    """The cron fields the comment describes (the line's own where it says nothing), and the
    phrases it was read from; None when it says nothing upkeep can read."""
    text = comment.lower()  # the same length as the comment: match spans index both
    minute, hour, dom, month, dow = fields
    read: list[str] = []

    def said(match: re.Match) -> str:
        return comment[match.start() : match.end()]

    clock = list(re.finditer(r"\b(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?)(?![a-z])", text))
    clock24 = list(re.finditer(r"\b(\d{1,2}):(\d{2})\b(?!\s*[ap]\.?m)", text))
    if len(clock) + len(clock24) == 1:
        if clock:
            h, m, half = clock[0].groups()
            minute, hour = str(int(m or 0)), str(int(h) % 12 + (12 if half.startswith("p") else 0))
            read.append(said(clock[0]))
        else:
            minute, hour = str(int(clock24[0][2])), str(int(clock24[0][1]))
            read.append(said(clock24[0]))
    elif "midnight" in text:
        minute, hour = "0", "0"
        read.append("midnight")
    every = re.search(r"every (\d+) (minute|hour)s?\b|every (minute|hour)\b|\bhourly\b", text)
    if every:
        n = every.group(1)
        unit = every.group(2) or every.group(3) or "hour"
        if unit == "minute":
            minute, hour = (f"*/{n}" if n else "*"), "*"
        else:
            hour = f"*/{n}" if n else "*"
        dom, dow = "*", "*"
        read.append(said(every))
    daily = re.search(r"\b(daily|nightly|every (day|night)|each (day|night))\b", text)
    if daily:
        dom, dow = "*", "*"
        read.append(said(daily))
    ordinal = re.search(rf"\b(first|1st|second|2nd|third|3rd|fourth|4th|last) {DAY_WORD_RE}\b", text)
    weekday = re.search(rf"\b{DAY_WORD_RE}\b", text)
    if ordinal:
        number = WEEKDAY_WORDS[ordinal.group(2) + "day"]
        dom = "*"
        dow = f"{number}L" if ordinal.group(1) == "last" else f"{number}#{ORDINAL_WORDS[ordinal.group(1)]}"
        read.append(said(ordinal))
    elif re.search(r"\bweekdays\b", text):
        dom, dow = "*", "1-5"
        read.append("weekdays")
    elif weekday:
        dom, dow = "*", str(WEEKDAY_WORDS[weekday.group(1) + "day"])
        read.append(said(weekday))
    elif re.search(r"\bweekly\b|\bevery week\b", text):
        dom = "*"
        read.append("weekly")
    day_of_month = re.search(r"\bon the (\d{1,2})(?:st|nd|rd|th)\b|\b(\d{1,2})(?:st|nd|rd|th) of\b", text)
    if day_of_month:
        dom, dow = day_of_month.group(1) or day_of_month.group(2), "*"
        read.append(said(day_of_month))
    elif re.search(r"\bfirst day of\b", text):
        dom, dow = "1", "*"
        read.append("first day of the month")
    elif re.search(r"\bmonthly\b|\bevery month\b", text) and not ordinal:
        dow = "*"
        read.append("monthly")
    if not read:
        return None
    return [minute, hour, dom, month, dow], read


def today_in(zone: str) -> date:
    return datetime.now(ZoneInfo(zone)).date()
