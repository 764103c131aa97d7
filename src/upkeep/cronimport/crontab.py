"""Reading a crontab as cron reads it (crontab(5), Debian and Vixie cron).

A line is blank, a comment (``#`` first), an environment setting (``NAME=value``, spaces around
``=`` allowed, the value optionally quoted), or a job: five time fields (or ``@reboot``,
``@daily``, ...), a user name in the system format (``/etc/crontab``, ``/etc/cron.d/*``), and the
command. In the command an unescaped ``%`` ends the command: what follows is its standard input,
each further ``%`` a newline; ``\\%`` is a literal ``%``. Comments must be on lines of their own:
a ``#`` inside a job line belongs to the command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MACROS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
ENV_RE = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z_][A-Za-z0-9_]*))\s*=\s*(.*?)\s*$""")
MINUTE_RE = re.compile(r"^[0-9*,/-]+$")  # a job's first field; anything else is a setting


@dataclass
class Job:
    line: int  # 1-based
    text: str  # the line as written
    schedule: str  # "0 3 * * 0" or a macro such as "@daily"
    command: str  # the command as written (escapes and % included)
    user: str | None = None  # the system format's user field
    comment: str = ""  # the comment lines right above the job, joined
    env: dict[str, str] = field(default_factory=dict)  # the environment set by lines above it

    @property
    def fields(self) -> list[str]:
        return self.schedule.split()

    @property
    def decoded(self) -> tuple[str, str | None, bool]:
        """``(command, stdin, had_percent)``: the command cron runs and its standard input."""
        return decode_percent(self.command)


@dataclass
class Problem:
    line: int
    text: str
    message: str


@dataclass
class Crontab:
    jobs: list[Job] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # every setting, the last value of each
    problems: list[Problem] = field(default_factory=list)


def decode_percent(command: str) -> tuple[str, str | None, bool]:
    """Split a command at its first unescaped ``%``: cron runs the part before and feeds the rest
    (with each further unescaped ``%`` a newline) to it as standard input."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(command):
        char = command[i]
        if char == "\\" and i + 1 < len(command) and command[i + 1] == "%":
            current.append("%")
            i += 2
            continue
        if char == "%":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    if len(parts) == 1:
        return parts[0], None, False
    return parts[0], "\n".join(parts[1:]) + "\n", True


def _env(line: str) -> tuple[str, str] | None:
    match = ENV_RE.match(line)
    if match is None:
        return None
    name = match.group(1) if match.group(1) is not None else match.group(2) or match.group(3)
    value = match.group(4)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return name, value


def parse_crontab(text: str, *, system: bool = False) -> Crontab:
    """Every job, environment setting and unreadable line of a crontab (``system``: with a user field)."""
    out = Crontab()
    comment: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            comment = []
            continue
        if line.startswith("#"):
            comment.append(line.lstrip("#").strip())
            continue
        first = line.split(None, 1)[0]
        if not first.startswith("@") and not MINUTE_RE.match(first):
            setting = _env(line)
            if setting is None:
                out.problems.append(Problem(number, raw, "neither a job, an environment setting nor a comment"))
            else:
                out.env[setting[0]] = setting[1]
            comment = []
            continue
        job = _job(number, raw, line, system)
        if isinstance(job, Problem):
            out.problems.append(job)
        else:
            job.comment = " ".join(comment)
            job.env = dict(out.env)
            out.jobs.append(job)
        comment = []
    return out


def _job(number: int, raw: str, line: str, system: bool) -> Job | Problem:
    head = 1 if line.startswith("@") else 5
    parts = line.split(None, head + (1 if system else 0))
    if line.startswith("@") and parts[0].lower() not in MACROS:
        return Problem(number, raw, f"unknown schedule {parts[0]!r} (cron knows {', '.join(MACROS)})")
    need = head + (1 if system else 0) + 1
    if len(parts) < need:
        what = "a user and a command" if system else "a command"
        return Problem(number, raw, f"expected {head} schedule field(s), then {what}")
    schedule = " ".join(parts[:head])
    if head == 1:
        schedule = schedule.lower()
    user = parts[head] if system else None
    return Job(line=number, text=raw, schedule=schedule, command=parts[-1], user=user)
