"""Turning analysed crontab jobs into upkeep.yaml entries: a ``shell.run`` task each, or a
heartbeat monitor plus the crontab line that pings it; and adding them to upkeep.yaml's text
without disturbing what is there (comments and layout stay).
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml

from upkeep.cronimport import meaning
from upkeep.cronimport.analysis import Analysis
from upkeep.heartbeats.spec import format_duration
from upkeep.yamlload import ShallowLoader

CURL = "curl -fsS -m 10 --retry 3 -o /dev/null"
WRAPPERS = {"nice", "ionice", "nohup", "timeout", "flock", "sudo", "env", "chronic", "run-one", "setlock"}
SCRIPT_EXT = re.compile(r"\.(sh|bash|py|pl|rb|php|js)$")
NOT_ENV = ("MAILTO", "MAILFROM", "SHELL", "CRON_TZ", "CONTENT_TYPE", "CONTENT_TRANSFER_ENCODING")


@dataclass
class Options:
    timezone: str
    heartbeats: bool = False  # every job a monitor (else a task)
    heartbeat_lines: set[int] = field(default_factory=set)  # these lines as monitors
    fix: bool = False  # use the schedule the comment asks for, where it differs
    user: str | None = None  # whose crontab it is (runs the tasks as this user)


@dataclass
class Entry:
    analysis: Analysis
    kind: str  # task | heartbeat | skipped
    name: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    crontab_line: str | None = None  # a heartbeat's job line, pinging its monitor
    existing: bool = False  # upkeep.yaml has it already

    @property
    def line(self) -> int:
        return self.analysis.job.line


def slug(command: str) -> str:
    """A task name from the program a command runs: ``/opt/maintenance.sh --daily`` -> ``maintenance-daily``."""
    words = command.replace("&&", " ").replace(";", " ").split()
    program, flag = None, None
    for i, word in enumerate(words):
        if program is None:
            if ("=" in word and not word.startswith("/")) or word in WRAPPERS or word.startswith("-"):
                continue
            if word in ("cd", "[", "test", "[[") or re.fullmatch(r"\d+[smhd]?", word):
                continue
            program = SCRIPT_EXT.sub("", os.path.basename(word.strip("'\"")))
            continue
        if word.startswith(("--", "-")) and len(word) > 2 and flag is None and i > 0:
            flag = word.lstrip("-")
        elif word.startswith((">", "2>", "|", "<")) or word in ("&&", "||"):
            break
    name = "-".join(p for p in (program or "cron-job", flag) if p)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.").lower()
    return name or "cron-job"


def _home(user: str | None, env: dict[str, str]) -> str | None:
    if env.get("HOME"):
        return env["HOME"]
    if user:
        try:
            return pwd.getpwnam(user).pw_dir
        except KeyError:
            return None
    return None


def _grace(fields: list[str]) -> str:
    """A quarter of the shortest gap between runs, at least 5 minutes and at most an hour."""
    times = meaning.times(fields)
    gaps = [(b.hour * 60 + b.minute) - (a.hour * 60 + a.minute) for a, b in zip(times, times[1:], strict=False)] or [
        1440
    ]
    gap = timedelta(minutes=min(gaps))
    return format_duration(min(timedelta(hours=1), max(timedelta(minutes=5), gap / 4)).total_seconds())


def _shell_command(command: str, stdin: str | None) -> str:
    if stdin is None:
        return command
    return f"{command} <<'UPKEEP_STDIN'\n{stdin}UPKEEP_STDIN"


def task_spec(entry_name: str, analysis: Analysis, options: Options) -> dict[str, Any]:
    job = analysis.job
    use_fix = options.fix and analysis.fix is not None
    schedule = analysis.fix if use_fix else analysis.schedule
    command = _shell_command(analysis.fix_command if use_fix else analysis.command, analysis.stdin)
    shell = job.env.get("SHELL")
    config: dict[str, Any] = (
        {"command": [shell, "-c", command]} if shell and shell != "/bin/sh" else {"command": command, "shell": True}
    )
    env = {k: v for k, v in job.env.items() if k not in NOT_ENV}
    user = job.user or options.user
    if env:
        config["env"] = env
    cwd = _home(user, job.env)
    if cwd:
        config["cwd"] = cwd  # cron runs a job in its user's home directory
    if user:
        config["user"] = user
    spec: dict[str, Any] = {"name": entry_name, "type": "shell.run"}
    if job.comment:
        spec["description"] = job.comment
    spec.update(schedule=schedule, timezone=job.env.get("CRON_TZ", options.timezone), config=config)
    return spec


def heartbeat_spec(entry_name: str, analysis: Analysis, options: Options) -> dict[str, Any]:
    job = analysis.job
    schedule = analysis.fix if options.fix and analysis.fix is not None else analysis.schedule
    assert schedule is not None
    spec: dict[str, Any] = {"name": entry_name}
    if job.comment:
        spec["description"] = job.comment
    spec.update(
        schedule=schedule,
        timezone=job.env.get("CRON_TZ", options.timezone),
        grace=_grace(meaning.cron_fields(schedule)),
    )
    return spec


def _cron_escape(text: str) -> str:
    return text.replace("%", "\\%")


def wrapped_line(analysis: Analysis, url: str, options: Options) -> str:
    """The job's crontab line, pinging ``url`` with the exit status when the command ends (and
    only on the days a date test lets it run)."""
    job = analysis.job
    command, stdin, _ = job.decoded
    guard = meaning.guard_of(command)
    ping = f"{CURL} {url}/$?"
    if guard is not None:
        body = f"{_cron_escape(guard.test)} && {{ {_cron_escape(guard.rest)}; {ping}; }}"
    else:
        body = f"{_cron_escape(command)}; {ping}"
    if stdin is not None:
        body += "%" + "%".join(stdin.rstrip("\n").split("\n"))
    schedule = job.schedule
    if options.fix and analysis.crontab_fix:
        schedule = " ".join(analysis.crontab_fix.split()[:5])
    user = f" {job.user}" if job.user else ""
    return f"{schedule}{user} {body}"


def propose(
    analyses: list[Analysis],
    options: Options,
    existing: dict[str, dict[str, dict[str, Any]]],
    urls: dict[str, str],
) -> list[Entry]:
    """One entry per job. ``existing``: upkeep.yaml's tasks and heartbeats by name (an identical
    one is not added again); ``urls``: the ping URLs of monitors the store has."""
    taken = set(existing.get("tasks", {})) | set(existing.get("heartbeats", {}))
    out: list[Entry] = []
    for analysis in analyses:
        if not analysis.importable:
            out.append(Entry(analysis, "skipped"))
            continue
        kind = "heartbeat" if options.heartbeats or analysis.job.line in options.heartbeat_lines else "task"
        section = "tasks" if kind == "task" else "heartbeats"
        base = slug(analysis.command)
        name, n = base, 1
        while True:
            build = task_spec if kind == "task" else heartbeat_spec
            spec = build(name, analysis, options)
            if existing.get(section, {}).get(name) == spec:
                entry = Entry(analysis, kind, name, spec, existing=True)
                break
            if name not in taken:
                entry = Entry(analysis, kind, name, spec)
                taken.add(name)
                break
            n += 1
            name = f"{base}-{n}"
        if kind == "heartbeat":
            url = urls.get(name, f"<the ping URL of {name}>")
            entry.crontab_line = wrapped_line(analysis, url, options)
        out.append(entry)
    return out


# --- upkeep.yaml's text ---------------------------------------------------------------------------


def render_items(entries: list[Entry]) -> str:
    """The entries as YAML list items, each under comments saying where it came from and what was found."""
    blocks = []
    for entry in entries:
        analysis = entry.analysis
        lines = [f"# crontab line {entry.line}: {analysis.job.text.strip()}"]
        lines += [f"# ! {w}" for w in analysis.warnings]
        lines += [f"# {n}" for n in analysis.notes]
        dumped = yaml.safe_dump([entry.spec], sort_keys=False, allow_unicode=True, width=1000)
        blocks.append("\n".join(lines) + "\n" + dumped)
    return "".join(blocks)


def indent(block: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in block.splitlines(keepends=True))


def add_to_config(text: str, section: str, items: str) -> str:
    """``text`` (upkeep.yaml) with ``items`` (YAML list items) appended to its top-level ``section``
    list: after its last item, at its indentation; a missing or empty section is written out."""
    if not items:
        return text
    root = yaml.compose(text, Loader=ShallowLoader) if text.strip() else None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    node = None
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) == section:
                node = (key, value)
    if node is None:
        return "".join(lines) + ("\n" if lines else "") + f"{section}:\n" + indent(items, 2)
    key, value = node
    if isinstance(value, yaml.SequenceNode) and value.value and not value.flow_style:
        last = value.value[-1].end_mark
        at = last.line if last.column == 0 else last.line + 1
        while at > value.start_mark.line + 1 and (not lines[at - 1].strip() or lines[at - 1].lstrip().startswith("#")):
            at -= 1  # blank lines and comments after the last item belong to what follows
        return "".join(lines[:at]) + indent(items, value.start_mark.column) + "".join(lines[at:])
    # `section:` with nothing, `section: []` or a flow list: write the list out in block style
    current = [] if isinstance(value, yaml.ScalarNode) else yaml.safe_load(yaml.serialize(value)) or []
    existing = yaml.safe_dump(current, sort_keys=False, allow_unicode=True, width=1000) if current else ""
    last = value.end_mark.line if value.end_mark.column > 0 else value.end_mark.line - 1
    rewritten = f"{section}:\n" + indent(existing, 2) + indent(items, 2)
    return "".join(lines[: key.start_mark.line]) + rewritten + "".join(lines[max(last, key.start_mark.line) + 1 :])
