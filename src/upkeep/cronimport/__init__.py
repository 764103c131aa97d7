"""``upkeep cron import``: a crontab turned into upkeep.yaml entries, each line checked on the way.

Per job line, either a ``shell.run`` task (the default) or a heartbeat monitor plus the crontab
line that pings it (``--heartbeat LINE`` or ``--as heartbeat``). Every line is checked: cron's
OR of day-of-month and day-of-week, a date test in the command, the comment above it, ``%`` in the
command, ``@reboot``. The proposal is printed as YAML and as a diff of upkeep.yaml; nothing is
written without ``--write``, and nothing is ever applied (``upkeep apply`` does that).

``crontab`` reads the file, ``meaning`` and ``analysis`` judge each line, ``proposal`` builds the
entries and edits upkeep.yaml's text.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from upkeep.cronimport.analysis import analyse
from upkeep.cronimport.crontab import parse_crontab
from upkeep.cronimport.proposal import Entry, Options, add_to_config, indent, propose, render_items
from upkeep.engine.schedules import ScheduleError, parse_schedule, validate_timezone
from upkeep.yamlload import ShallowLoader


@dataclass
class ImportResult:
    entries: list[Entry]
    notes: list[str]  # about the whole crontab: MAILTO, the time zone, unreadable lines
    yaml: str  # the new entries, as upkeep.yaml sections
    config_text: str  # upkeep.yaml with them
    diff: str
    crontab: str | None  # the crontab after the import: tasks' lines commented out, monitored lines pinging
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (line, text, why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "notes": self.notes,
            "lines": [
                {
                    "line": e.line,
                    "text": e.analysis.job.text,
                    "kind": e.kind,
                    "name": e.name or None,
                    "already_in_config": e.existing,
                    "warnings": e.analysis.warnings,
                    "notes": e.analysis.notes,
                    "proposed_fix": e.analysis.fix,
                    "spec": e.spec or None,
                    "crontab_line": e.crontab_line,
                }
                for e in self.entries
            ],
            "invalid": [{"line": n, "text": t, "problem": why} for n, t, why in self.invalid],
            "yaml": self.yaml,
            "diff": self.diff,
            "crontab": self.crontab,
        }


def host_timezone(environ: dict[str, str] | None = None) -> str | None:
    """The zone cron reads schedules in: ``TZ``, ``/etc/timezone``, or where ``/etc/localtime`` points."""
    env = os.environ if environ is None else environ
    candidates = [env.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                validate_timezone(name)
                return name
            except ScheduleError:
                continue
    return None


def _existing(config_text: str) -> dict[str, dict[str, dict[str, Any]]]:
    data = yaml.load(config_text, Loader=ShallowLoader) if config_text.strip() else None  # noqa: S506
    data = data if isinstance(data, dict) else {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for section in ("tasks", "heartbeats"):
        items = data.get(section) or []
        out[section] = {i["name"]: i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}
    return out


def import_crontab(
    text: str,
    *,
    options: Options,
    config_text: str = "",
    config_name: str = "upkeep.yaml",
    system: bool = False,
    urls: dict[str, str] | None = None,
    timezone_note: str | None = None,
) -> ImportResult:
    crontab = parse_crontab(text, system=system)
    notes = [timezone_note] if timezone_note else []
    if "MAILTO" in crontab.env:
        to = crontab.env["MAILTO"]
        notes.append(
            f"MAILTO={to}: cron mailed each job's output there; upkeep alerts through channels instead: "
            f'add `channels: {{mail: {{url: "mailtos://USER:${{env:SMTP_PASSWORD}}@SMTP_HOST?to={to}"}}}}` '
            "and `notify: {channels: [mail]}` to the tasks"
            if to
            else "MAILTO is empty: cron mailed nothing; upkeep keeps each run's output in its history"
        )
    invalid = [(p.line, p.text, p.message) for p in crontab.problems]
    analyses = []
    for job in crontab.jobs:
        try:
            parse_schedule(job.schedule if job.schedule != "@reboot" else "manual", options.timezone)
        except ScheduleError as exc:
            invalid.append((job.line, job.text, exc.message))
            continue
        analyses.append(analyse(job, job.env.get("CRON_TZ", options.timezone)))
    if any(a.job.user for a in analyses) or options.user:
        notes.append("tasks run as the crontab's user (config.user): upkeep must run as root for that")
    entries = propose(analyses, options, _existing(config_text), urls or {})
    new = [e for e in entries if e.kind != "skipped" and not e.existing]
    sections = {
        "tasks": render_items([e for e in new if e.kind == "task"]),
        "heartbeats": render_items([e for e in new if e.kind == "heartbeat"]),
    }
    rendered = "".join(f"{name}:\n" + indent(items, 2) for name, items in sections.items() if items)
    updated = config_text
    for name, items in sections.items():
        updated = add_to_config(updated, name, items)
    diff = "".join(
        difflib.unified_diff(
            config_text.splitlines(keepends=True),
            updated.splitlines(keepends=True),
            fromfile=config_name,
            tofile=f"{config_name} (with the import)",
        )
    )
    replaced = {e.line: _crontab_line(e) for e in entries if e.kind != "skipped"}
    wrapped = None
    if replaced:
        lines = text.splitlines()
        wrapped = "\n".join(replaced.get(n, line) for n, line in enumerate(lines, 1)) + "\n"
    return ImportResult(entries, notes, rendered, updated, diff, wrapped, invalid)


def _crontab_line(entry: Entry) -> str:
    """A monitored job pings its heartbeat; a job that became a task must leave cron (or it runs twice)."""
    if entry.crontab_line:
        return entry.crontab_line
    return f"# imported into upkeep as task {entry.name}: {entry.analysis.job.text.strip()}"
