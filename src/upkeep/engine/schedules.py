"""Task schedules: when a maintenance task should run.

A schedule is text, parsed once by :func:`parse_schedule`:

* a 5-field cron expression ``MIN HOUR DOM MON DOW`` read as Debian cron reads it (names such as
  ``mon``/``jan``; ``L`` and ``#`` extensions such as ``0 3 * * 0#1`` = first Sunday; when both
  day-of-month and day-of-week are restricted a day matching *either* one fires), evaluated in the
  schedule's IANA time zone by ``cronsim``, which also carries Debian cron's DST behaviour: a
  fixed-time slot skipped by spring-forward fires once right after the change, a fixed-time slot
  in the repeated hour fires once, and jobs with ``*`` in minute or hour keep their rhythm in
  absolute time;
* ``@hourly @daily @midnight @weekly @monthly @yearly @annually``, shorthands for cron;
* ``@every <duration>`` (``90s``, ``10m``, ``2h``, ``1d``, ``1h30m``): slots are
  ``anchor + k * period`` for every integer ``k``, where the anchor is the one passed to
  :func:`parse_schedule` (normally the task's creation time) or, when none is given, the Unix
  epoch (1970-01-01 00:00 UTC). Slots never drift, and the time zone plays no part;
* ``@once <ISO 8601 datetime>``: a single slot; a value without an offset is read in the
  schedule's time zone;
* ``None``, ``""``, ``manual`` or ``@manual``: no slots, the task only runs when asked to.

Every datetime in or out is time-zone aware; passing a naive one is a programmer error
(``ValueError``). Bad user input raises :class:`ScheduleError` with the problem and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from cronsim.explain import explain as cron_explain

from upkeep.bounds import MAX_DURATION_SECONDS
from upkeep.clock import ensure_aware, utcnow
from upkeep.errors import UserError

__all__ = [
    "EPOCH",
    "Schedule",
    "ScheduleError",
    "explain_schedule",
    "parse_schedule",
    "validate_timezone",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CRON_FORMAT = "format: MIN HOUR DOM MON DOW"
SCHEDULE_FORMATS = (
    "use a 5-field cron expression such as '0 3 * * *', @hourly, @daily, @weekly, @monthly, @yearly, "
    "'@every 10m', '@once 2026-12-01T03:00:00+01:00' or 'manual'"
)

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MANUAL = {"", "manual", "@manual"}

# What each cron field accepts, keyed by the field name in cronsim's "Bad <field>" messages.
CRON_FIELDS = {
    "minute": "minute must be 0-59",
    "hour": "hour must be 0-23",
    "day-of-month": "day-of-month must be 1-31, L or LW, and must exist in the chosen month(s)",
    "month": "month must be 1-12 or jan-dec",
    "day-of-week": "day-of-week must be 0-7 or sun-sat, optionally as 5L (last Friday) or 0#1 (first Sunday)",
}
CRON_FIELD_ORDER = list(CRON_FIELDS)

MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
STEPPED_RANGE_RE = re.compile(r"(\w+)-(\w+)/\d+")

DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# @every periods longer than this are refused: ten years is rarer than any maintenance needs
MAX_EVERY_SECONDS = MAX_DURATION_SECONDS
DURATION_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))

OR_NOTE = "(cron matches either field when both are restricted)"


class ScheduleError(UserError):
    """A schedule expression or its time zone is invalid."""

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = "schedule"):
        super().__init__(message, hint=hint, field=field)


def validate_timezone(name: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for an IANA name, or raise :class:`ScheduleError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Zagreb or UTC",
            field="timezone",
        ) from None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. Build it with :func:`parse_schedule`, not directly.

    ``expression`` is the text as given with whitespace normalised (``None`` for manual);
    ``cron`` is the cron expression actually evaluated (macros expanded); ``every`` and
    ``anchor`` describe ``@every``; ``at`` is the ``@once`` instant (UTC).
    """

    expression: str | None
    timezone: str = "UTC"
    kind: str = "manual"  # "cron" | "every" | "once" | "manual"
    cron: str | None = None
    every: timedelta | None = None
    anchor: datetime | None = None
    at: datetime | None = None

    @property
    def period_seconds(self) -> float | None:
        """The ``@every`` period in seconds; ``None`` for other kinds."""
        return self.every.total_seconds() if self.every is not None else None

    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (UTC-aware), or ``None`` when there is none."""
        return next(self._slots_after(after), None)

    def slots_between(self, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
        """Slots ``s`` with ``start < s <= end`` in order (UTC-aware), at most ``limit`` of them."""
        end = ensure_aware(end)
        slots: list[datetime] = []
        for slot in self._slots_after(start):
            if slot > end or (limit is not None and len(slots) >= limit):
                break
            slots.append(slot)
        return slots

    def explain(self) -> str:
        """What the schedule means, in words."""
        if self.kind == "manual":
            return "Manual only (no schedule)"
        if self.kind == "every":
            assert self.every is not None and self.anchor is not None
            start = (
                "the Unix epoch (1970-01-01 00:00 UTC)"
                if self.anchor == EPOCH
                else self.anchor.strftime("%Y-%m-%d %H:%M:%S UTC")
            )
            return f"Every {_format_duration(self.every)}, counted from {start}"
        if self.kind == "once":
            assert self.at is not None
            local = self.at.astimezone(_zone(self.timezone))
            return f"Once at {local:%Y-%m-%d %H:%M:%S} {local.tzname()}" + self._tz_note()
        assert self.cron is not None
        return _explain_cron(self.cron) + self._tz_note()

    def _tz_note(self) -> str:
        return "" if self.timezone == "UTC" else f" ({self.timezone})"

    def _slots_after(self, after: datetime) -> Iterator[datetime]:
        after = ensure_aware(after)
        if self.kind == "cron":
            yield from self._cron_slots_after(after)
        elif self.kind == "every":
            assert self.every is not None and self.anchor is not None
            k = (after - self.anchor) // self.every + 1
            while True:
                yield self.anchor + k * self.every
                k += 1
        elif self.kind == "once":
            assert self.at is not None
            if self.at > after:
                yield self.at

    def _cron_slots_after(self, after: datetime) -> Iterator[datetime]:
        assert self.cron is not None
        last = after
        for local in CronSim(self.cron, after.astimezone(_zone(self.timezone))):
            slot = local.astimezone(UTC)
            # cronsim walks wall-clock time for fixed-time jobs, so in a repeated (fall-back) hour
            # it can hand back an instant at or before `after`; skipping those keeps "strictly
            # after" and still fires the repeated slot only once.
            if slot > last:
                last = slot
                yield slot


def parse_schedule(expression: str | None, timezone: str = "UTC", anchor: datetime | None = None) -> Schedule:
    """Parse schedule text; see the module docstring for the accepted forms.

    ``anchor`` only matters for ``@every`` (slots are ``anchor + k * period``); it defaults to
    the Unix epoch.
    """
    zone = validate_timezone(timezone)
    if anchor is not None:
        anchor = ensure_aware(anchor)
    text = " ".join((expression or "").split())
    keyword, _, argument = text.partition(" ")
    keyword = keyword.lower()

    if text.lower() in MANUAL:
        return Schedule(expression=None, timezone=timezone, kind="manual")
    if keyword in MACROS and not argument:
        return Schedule(expression=keyword, timezone=timezone, kind="cron", cron=MACROS[keyword])
    if keyword == "@every":
        every = _parse_duration(argument, text)
        return Schedule(
            expression=f"@every {argument}",
            timezone=timezone,
            kind="every",
            every=every,
            anchor=anchor or EPOCH,
        )
    if keyword == "@once":
        at = _parse_instant(argument, text, zone)
        return Schedule(expression=f"@once {argument}", timezone=timezone, kind="once", at=at)
    if text.startswith("@"):
        raise ScheduleError(f"unknown schedule {text!r}: {SCHEDULE_FORMATS}")
    _check_cron(text)
    return Schedule(expression=text, timezone=timezone, kind="cron", cron=_fix_single_value_ranges(text))


@lru_cache(maxsize=65536)
def cached_schedule(expression: str | None, timezone: str, anchor: datetime | None) -> Schedule:
    return parse_schedule(expression, timezone, anchor)


def schedule_of(task: Any) -> Schedule:
    """The schedule of a stored task: a ``ScheduledTask`` or a row of the ``scheduled_tasks`` table."""
    return cached_schedule(task.schedule, task.timezone or "UTC", task.schedule_anchor or task.created_at)


def first_slot(task: Any, now: datetime) -> datetime | None:
    """The next slot after ``now`` for a task being created, enabled or rescheduled."""
    return schedule_of(task).next_after(now)


def explain_schedule(
    expression: str | None,
    timezone: str = "UTC",
    count: int = 5,
    now: datetime | None = None,
    anchor: datetime | None = None,
) -> dict:
    """Describe a schedule for people: its meaning and the next ``count`` slots after ``now``.

    The slots are aware datetimes in the schedule's time zone.
    """
    schedule = parse_schedule(expression, timezone, anchor=anchor)
    now = utcnow() if now is None else ensure_aware(now)
    zone = _zone(schedule.timezone)
    upcoming = list(islice(schedule._slots_after(now), max(count, 0)))
    return {
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "kind": schedule.kind,
        "text": schedule.explain(),
        "next": [slot.astimezone(zone) for slot in upcoming],
    }


def _zone(name: str) -> tzinfo:
    # cronsim special-cases datetime.UTC (no DST handling needed, and much faster).
    return UTC if name == "UTC" else ZoneInfo(name)


def _check_cron(text: str) -> None:
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"invalid cron expression {text!r}: expected 5 fields, got {len(fields)} "
            f"({CRON_FORMAT}; seconds are not supported)"
        )
    try:
        CronSim(text, EPOCH)
    except CronSimError as exc:
        raise ScheduleError(f"invalid cron expression {text!r}: {_cron_problem(str(exc), fields)}") from None


def _cron_problem(message: str, fields: list[str]) -> str:
    """Turn cronsim's terse "Bad minute" into which field is wrong and what it accepts."""
    name = message.removeprefix("Bad ").strip()
    if name not in CRON_FIELDS:
        return f"{message} ({CRON_FORMAT})"
    value = fields[CRON_FIELD_ORDER.index(name)]
    return f"bad {name} {value!r}; {CRON_FIELDS[name]} ({CRON_FORMAT})"


def _fix_single_value_ranges(cron: str) -> str:
    """Rewrite a stepped one-value range such as ``20-20/5`` to ``20``.

    cronsim 2.x reads a stepped range holding a single value as ``start/step`` (``20-20/5`` becomes
    20,25,...,55), while Debian cron reads it as just that value. Found by the brute-force test.
    """
    names = [None, None, None, MONTH_NAMES, DOW_NAMES]

    def value(token: str, index: int) -> int | None:
        token = token.lower()
        if token.isdigit():
            return int(token)
        table = names[index]
        if table and token in table:
            return table.index(token) + (1 if table is MONTH_NAMES else 0)
        return None

    fields = cron.split()
    for index, field in enumerate(fields):
        terms = field.split(",")
        for position, term in enumerate(terms):
            match = STEPPED_RANGE_RE.fullmatch(term)
            if match:
                first, last = value(match[1], index), value(match[2], index)
                if first is not None and first == last:
                    terms[position] = match[1]
        fields[index] = ",".join(terms)
    return " ".join(fields)


def _parse_duration(argument: str, text: str) -> timedelta:
    match = DURATION_RE.fullmatch(argument.lower())
    if not argument or match is None:
        raise ScheduleError(
            f"invalid schedule {text!r}: cannot read duration {argument!r}; "
            "write @every with a duration such as 90s, 10m, 2h, 1d or 1h30m"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds  # Python ints: no overflow before the check
    if total < 1:
        raise ScheduleError(f"invalid schedule {text!r}: the @every period must be at least 1s, e.g. @every 10m")
    if total > MAX_EVERY_SECONDS:
        raise ScheduleError(
            f"invalid schedule {text!r}: the @every period must be at most {MAX_EVERY_SECONDS // 86400}d; "
            "for rarer work use a cron schedule or @once"
        )
    return timedelta(seconds=total)


def _parse_instant(argument: str, text: str, zone: ZoneInfo) -> datetime:
    try:
        at = datetime.fromisoformat(argument)
    except ValueError:
        raise ScheduleError(
            f"invalid schedule {text!r}: cannot read date/time {argument!r}; "
            "write @once with an ISO 8601 date-time such as 2026-12-01T03:00:00+01:00 "
            "(without an offset it is read in the schedule's time zone)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    return at.astimezone(UTC)


def _format_duration(every: timedelta) -> str:
    remaining = int(every.total_seconds())
    parts = []
    for unit, size in DURATION_UNITS:
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount} {unit}{'' if amount == 1 else 's'}")
    return " ".join(parts)


@lru_cache(maxsize=4096)  # a page of tasks explains each schedule; 10k tasks share few expressions
def _explain_cron(cron: str) -> str:
    """cronsim's explanation, but saying "or" when day-of-month and day-of-week are OR-ed."""
    text = cron_explain(cron)
    fields = cron.split()
    dom, dow = fields[2], fields[4]
    if dom.startswith("*") or dow.startswith("*"):
        return text
    # cronsim writes "<time> <day-of-month> and <day-of-week> <month>"; find the day-of-week
    # part by explaining it alone, then swap the "and" in front of it for "or".
    dow_text = cron_explain(f"0 0 * * {dow}").removeprefix("At 00:00 ")
    head, sep, tail = text.rpartition(f" and {dow_text}")
    if sep:
        text = f"{head} or {dow_text}{tail}"
    return f"{text} {OR_NOTE}"
