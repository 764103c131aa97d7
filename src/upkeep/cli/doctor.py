"""``upkeep doctor``: check the setup and say how to fix what fails (exit 2 when anything fails).

Checks: the config file parses and every task validates; the store is reachable and its schema
current; the binaries the configured tasks' handlers need (``HandlerSpec.requires``) are on PATH;
the data directory is writable by upkeep and not world-writable, ``admin.key`` is mode 600;
time-zone data is available (``zoneinfo``) for every time zone the tasks use.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import typer

from upkeep.cli.common import echo, print_json, state
from upkeep.errors import UserError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    level: str = ""  # "ok" | "warn" | "fail"

    def __post_init__(self) -> None:
        if not self.level:
            self.level = "ok" if self.ok else "fail"


def _config_checks(st) -> tuple[list[Check], list[dict], object]:
    from upkeep.app.silence_file import validate as validate_silences
    from upkeep.config_file import find_config, load_config, validate_targets, validate_tasks

    path = find_config(st.config, must_exist=True)  # none found: exit 2 before anything is created
    try:
        loaded = load_config(path)
        validate_targets(loaded)
        tasks = validate_tasks(loaded)
        validate_silences(loaded)
    except UserError as exc:
        return [Check("config", False, str(exc), "fix the file, then `upkeep apply --dry-run`")], [], None
    try:
        settings = st.settings
    except UserError as exc:
        return [Check("config", False, str(exc), "fix the server: section or the UPKEEP_* variables")], tasks, None
    return [Check("config", True, f"{path}: {len(tasks)} task(s) valid")], tasks, settings


def _store_checks(settings) -> list[Check]:
    from upkeep.app.schema import schema_state
    from upkeep.errors import ConfigError

    try:
        info = schema_state(settings)
    except ConfigError as exc:
        return [Check("store", False, str(exc), "fix UPKEEP_DATABASE_URL / server.database_url")]
    except UserError as exc:
        return [Check("store", False, exc.message, exc.hint or "")]
    current, head = info["current"], info["head"]
    checks = [Check("store", True, f"{info['database']} reachable")]
    if info["up_to_date"]:
        checks.append(Check("migrations", True, f"schema at {head} (current)"))
    else:
        checks.append(
            Check("migrations", False, f"schema at {current or '(empty)'}, newest is {head}", "run `upkeep db upgrade`")
        )
    return checks


def _binary_checks(tasks: list[dict]) -> list[Check]:
    from upkeep.app.terms import REGISTRY

    needed: dict[str, list[str]] = {}
    for task in tasks:
        if not task.get("enabled", True):
            continue
        for binary in REGISTRY.get(task["type"]).requires:
            needed.setdefault(binary, []).append(task["name"])
    checks = []
    for binary, users in sorted(needed.items()):
        found = shutil.which(binary)
        if found:
            checks.append(Check(f"binary {binary}", True, found))
        else:
            checks.append(
                Check(
                    f"binary {binary}",
                    False,
                    f"not on PATH; needed by {', '.join(users)}",
                    f"install it (e.g. `apt-get install {_package_hint(binary)}`) or add its directory to PATH",
                )
            )
    if not needed:
        checks.append(Check("binaries", True, "the configured tasks need no external binaries"))
    return checks


def _package_hint(binary: str) -> str:
    if binary.startswith("pg_") or binary in ("psql", "pg_dumpall"):
        return "postgresql-client"
    if binary.startswith("redis"):
        return "redis-tools"
    return binary


def _permission_checks(data_dir: Path) -> list[Check]:
    checks = []
    if not data_dir.exists():
        return [Check("data directory", False, f"{data_dir} does not exist", "run `upkeep init`")]
    mode = data_dir.stat().st_mode
    if not os.access(data_dir, os.W_OK | os.X_OK):
        checks.append(
            Check(
                "data directory",
                False,
                f"{data_dir} is not writable by this user",
                f"chown the directory to the user upkeep runs as: `chown -R $USER {data_dir}`",
            )
        )
    elif mode & stat.S_IWOTH:
        checks.append(
            Check(
                "data directory",
                False,
                f"{data_dir} is world-writable (mode {stat.S_IMODE(mode):o})",
                f"chmod 700 {data_dir}",
            )
        )
    else:
        checks.append(Check("data directory", True, f"{data_dir} writable, mode {stat.S_IMODE(mode):o}"))
    from upkeep.private import ADMIN_KEY_FILE

    key = data_dir / ADMIN_KEY_FILE
    if key.exists():
        key_mode = stat.S_IMODE(key.stat().st_mode)
        if key_mode & 0o077:
            checks.append(Check("admin.key", False, f"{key} is mode {key_mode:o}", f"chmod 600 {key}"))
        else:
            checks.append(Check("admin.key", True, f"mode {key_mode:o}"))
    return checks


def _timezone_checks(tasks: list[dict]) -> list[Check]:
    from zoneinfo import ZoneInfo, available_timezones

    zones = sorted({t.get("timezone") or "UTC" for t in tasks} | {"Europe/Zagreb"})
    try:
        for zone in zones:
            ZoneInfo(zone)
        count = len(available_timezones())
    except Exception as exc:
        return [
            Check(
                "time zones",
                False,
                f"time-zone data missing: {exc}",
                "install the tzdata package (`apt-get install tzdata` or `pip install tzdata`)",
            )
        ]
    if count == 0:
        return [
            Check(
                "time zones",
                False,
                "no time-zone data found",
                "install the tzdata package (`apt-get install tzdata` or `pip install tzdata`)",
            )
        ]
    return [Check("time zones", True, f"{count} zones available")]


def run_checks(st) -> list[Check]:
    checks, tasks, settings = _config_checks(st)
    if settings is None:
        try:
            from upkeep.config_file import find_config
            from upkeep.settings import Settings

            settings = Settings(
                config=find_config(st.config), **({"database_url": st.database_url} if st.database_url else {})
            )
        except Exception:
            settings = None
    if settings is not None:
        checks += _store_checks(settings)
        checks += _permission_checks(settings.resolved_data_dir)
    checks += _binary_checks(tasks)
    checks += _timezone_checks(tasks)
    return checks


def doctor(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    checks = run_checks(state(ctx))
    failed = [c for c in checks if c.level == "fail"]
    if as_json:
        print_json({"ok": not failed, "checks": [c.__dict__ for c in checks]})
    else:
        for check in checks:
            mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[check.level]
            echo(f"{mark} {check.name}: {check.detail}")
            if check.level != "ok" and check.fix:
                echo(f"     fix: {check.fix}")
        echo(f"{len(failed)} problem(s) found" if failed else "everything looks fine")
    if failed:
        raise typer.Exit(2)
