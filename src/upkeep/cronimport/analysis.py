"""One crontab job, analysed: what it runs, when it really runs, and what its comment promises.

``analyse(job, timezone)`` gives the schedule an upkeep task or monitor should have to run when
the line runs now (a recognised date test folded into the schedule when a plain cron expression
says the same), the schedule the comment asks for when that differs (``fix``), and the findings,
each one sentence for the person importing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from upkeep.cronimport import meaning
from upkeep.cronimport.crontab import Job


@dataclass
class Analysis:
    job: Job
    schedule: str | None  # what upkeep runs it on (None: it cannot be a schedule)
    command: str  # what it runs (without a test the schedule now carries)
    stdin: str | None = None
    fix: str | None = None  # the schedule the comment asks for, when it differs
    fix_command: str | None = None  # the command to go with it
    crontab_fix: str | None = None  # the same fix in a form cron itself reads (no '#'), if any
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def importable(self) -> bool:
        return self.schedule is not None


def analyse(job: Job, timezone: str) -> Analysis:
    command, stdin, had_percent = job.decoded
    if job.schedule == "@reboot":
        return Analysis(
            job,
            None,
            command,
            warnings=[
                "@reboot runs once when cron starts, which no upkeep schedule can say: keep it in cron "
                "(or make it a systemd unit); it is not imported"
            ],
        )
    out = Analysis(job, job.schedule, command, stdin)
    if had_percent:
        out.notes.append(
            "an unescaped % ends cron's command: the text after it is the command's standard input "
            "(kept as a here-document); write \\% for a literal percent sign"
        )
    fields = meaning.cron_fields(job.schedule)
    start = meaning.today_in(timezone)
    guard = meaning.guard_of(command)
    actual = meaning.firing(fields, start, guard)
    either = meaning.or_reading(fields)
    if either:
        out.warnings.append(
            f"cron reads {' '.join(fields[2:])!r} (day-of-month {fields[2]}, day-of-week {fields[4]}) as "
            f"{either}: it runs on every one of them"
        )
    effective = meaning.equivalent(fields, actual, start, guard) if actual.days else None
    if guard is not None and not actual.days:
        out.warnings.append(f"the shell test {guard.test} is never true on the days cron picks: the job never runs")
    elif guard is not None and effective is not None:
        out.schedule, out.command = effective, guard.rest
        out.notes.append(f"the shell test {guard.test} is folded into the schedule {effective}")
    elif guard is not None:
        out.notes.append(f"the shell test {guard.test} stays in the command (no cron expression says the same)")
    read = meaning.intent(job.comment, fields) if job.comment else None
    if read is None or not actual.days:
        return out
    wanted_fields, phrases = read
    wanted = " ".join(wanted_fields)
    if meaning.firing(wanted_fields, start) == actual:
        out.notes.append(f"runs as its comment says ({', '.join(phrases)})")
        return out
    promised = meaning.days_phrase(wanted)
    runs = meaning.days_phrase(effective) if effective else "other days"
    if guard is not None and meaning.times(wanted_fields) == actual.times:
        out.warnings.append(
            f"the shell test {guard.test} then keeps {runs}, rather than {promised} that the comment promises"
        )
    else:
        does = meaning.describe(effective) if effective else f"on {runs}"
        says = f"{', '.join(phrases)} ({meaning.describe(wanted)})"
        out.warnings.append(f"the comment says {says}, but cron runs it {does[0].lower()}{does[1:]}")
    out.fix, out.fix_command = wanted, guard.rest if guard is not None else command
    out.crontab_fix = _crontab_form(wanted_fields, job, guard)
    hint = f"; in a crontab: {out.crontab_fix}" if out.crontab_fix and out.crontab_fix != wanted else ""
    out.notes.append(f"proposed: {wanted} ({meaning.describe(wanted)}) as the comment says; --fix uses it{hint}")
    return out


def _crontab_form(fields: list[str], job: Job, guard: meaning.Guard | None) -> str | None:
    """The fix as cron itself can say it (Debian cron has no '#' or 'L'): the first Sunday is
    days 1-7 with the weekday test kept."""
    dow = fields[4]
    if "#" not in dow and "L" not in dow:
        return " ".join(fields)
    if "#" in dow and guard is not None:
        weekday, nth = dow.split("#")
        first = 7 * (int(nth) - 1) + 1
        test = guard.test.replace("%", "\\%")  # cron's escape
        return f"{fields[0]} {fields[1]} {first}-{first + 6} {fields[3]} * {test} && ..."
    return None
