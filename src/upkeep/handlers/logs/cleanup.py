"""``logs.cleanup``: delete old ROTATED logs, report large files and sizes; emergency mode on a full disk.

The weekly runbook (seed 002): ``du -sh logs/``, list files over 100 MB, delete rotated logs older
than 7 days. Directories come from ``directories`` or, when empty, from the parent directories
of the inventory's ``targets.logs`` paths (``targets: [names]`` picks some).

- Only files whose names mark them as rotated are ever deleted (``rotation.looks_rotated``:
  compression suffix ``.gz/.zst/.xz/.bz2/.lz4``, date suffix ``-20261122``, numeric ``.1``, pm2's
  ``api-out__2025-11-18_10-00-00.log``, dated ``app-2026-11-22.log``). The active, un-suffixed log
  files are never touched, nor any file a process holds open (``/proc/*/fd`` scan; without root
  other users' processes cannot be inspected and are reported).
- Age is the file's mtime against the run's clock: rotated files older than ``max_age_days``
  (default 7) are deleted.
- Emergency mode: when the filesystem holding a directory is more than ``emergency_disk_percent``
  used (default 90), ``emergency_max_age_days`` applies there instead (default 1; 0 deletes every
  rotated file; never looser than ``max_age_days``). Still over the threshold afterwards: outcome
  critical; back under: warning.
- Reports every file over ``large_file_bytes`` (default 100M, active files included; warning) and,
  per directory, total / active / rotated bytes and disk usage.
- ``dry_run`` lists each file it would delete and deletes nothing.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pydantic import Field

from upkeep.bounds import MAX_BYTES, MAX_DAYS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError
from upkeep.handlers.findings import outcome_of
from upkeep.handlers.logs.rotation import ByteSize, OpenFiles, looks_rotated, scan_open_files

DAY = 86400.0


class LogsCleanupConfig(HandlerConfig):
    directories: list[str] = host_scoped(
        default_factory=list, description="Log directories (else targets.logs parents)"
    )
    targets: list[str] | None = Field(None, description="Only these targets.logs entries (default: all)")
    recursive: bool = Field(False, description="Also clean subdirectories")
    max_age_days: float = overridable(
        7.0, ge=0, le=MAX_DAYS, description="Delete rotated logs older than this many days"
    )
    large_file_bytes: ByteSize = Field(
        100 * 1024**2, ge=1, le=MAX_BYTES, description="Report files over this size (100M)"
    )
    emergency_disk_percent: float = Field(90.0, gt=0, le=100, description="Disk used % that triggers emergency")
    emergency_max_age_days: float = overridable(
        1.0, ge=0, le=MAX_DAYS, description="Retention in emergency mode (0: every rotated file)"
    )


@dataclass
class DirReport:
    path: str
    files: int = 0
    rotated_files: int = 0
    total_bytes: int = 0
    active_bytes: int = 0
    rotated_bytes: int = 0
    disk_percent: float | None = None
    emergency: bool = False
    max_age_days: float = 0.0
    deleted: int = 0
    freed_bytes: int = 0
    disk_percent_after: float | None = None
    candidates: list[tuple[Path, os.stat_result]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "candidates"}


def resolve_directories(ctx: RunContext, config: LogsCleanupConfig) -> list[Path]:
    patterns = list(config.directories)
    why = "directories in the task's config"
    if not patterns:
        names = config.targets if config.targets is not None else ctx.targets.names("logs")
        why = f"the directories of targets.logs {', '.join(names)}"
        for name in names:
            entry = ctx.targets.get("logs", name) or {}
            paths = entry.get("paths", [])
            paths = [paths] if isinstance(paths, str) else paths
            patterns += [os.path.dirname(os.path.expanduser(p)) for p in paths]
    if not patterns:
        raise ConfigError(
            "logs.cleanup has no directories", hint="set directories: [...] or define targets.logs in upkeep.yaml"
        )
    out: list[Path] = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if not os.path.isabs(pattern):
            raise ConfigError(f"logs.cleanup: directory {pattern!r} is relative", hint="use absolute paths")
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        out += [Path(os.path.abspath(m)) for m in matches]
    chosen = sorted(set(out))
    ctx.scope(chosen, why, what="log directories")
    return chosen


def walk_files(directory: Path, recursive: bool) -> list[tuple[Path, os.stat_result]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if path.is_file() and not path.is_symlink():
                found.append((path, st))
        if not recursive:
            dirnames.clear()
    return found


@handler("logs.cleanup", config=LogsCleanupConfig, destructive=True, aliases=["logs.clean"])
def cleanup_logs(ctx: RunContext, config: LogsCleanupConfig) -> dict:
    """Delete rotated logs past retention (tighter on a full disk); report large files and sizes."""
    now = ctx.now().timestamp()
    findings: list[dict[str, Any]] = []
    reports: list[DirReport] = []
    large: list[dict[str, Any]] = []
    for directory in resolve_directories(ctx, config):
        ctx.check_cancelled()
        if not directory.is_dir():
            findings.append({"severity": "warning", "item": str(directory), "message": "directory does not exist"})
            continue
        rep = DirReport(str(directory))
        rep.disk_percent = psutil.disk_usage(str(directory)).percent
        rep.emergency = rep.disk_percent > config.emergency_disk_percent
        rep.max_age_days = (
            min(config.emergency_max_age_days, config.max_age_days) if rep.emergency else config.max_age_days
        )
        if rep.emergency:
            ctx.warning(
                "emergency",
                f"{directory}: disk {rep.disk_percent:.1f}% used > {config.emergency_disk_percent:g}%: "
                f"keeping rotated logs {rep.max_age_days:g} days only",
            )
        for path, st in walk_files(directory, config.recursive):
            rotated = looks_rotated(path.name)
            rep.files += 1
            rep.total_bytes += st.st_size
            if rotated:
                rep.rotated_files += 1
                rep.rotated_bytes += st.st_size
            else:
                rep.active_bytes += st.st_size
            if st.st_size > config.large_file_bytes:
                large.append({"path": str(path), "size": st.st_size, "rotated": rotated})
            cutoff = now - rep.max_age_days * DAY
            if rotated and (st.st_mtime < cutoff or (rep.emergency and rep.max_age_days == 0)):
                rep.candidates.append((path, st))
        reports.append(rep)

    opened = OpenFiles()
    if any(r.candidates for r in reports):  # read-only: a dry run's plan skips open files too
        opened = scan_open_files()
    deleted: list[dict[str, Any]] = []
    skipped_open: list[dict[str, Any]] = []
    for rep in reports:
        for path, st in rep.candidates:
            ctx.check_cancelled()
            age = round((now - st.st_mtime) / DAY, 2)
            item = {"path": str(path), "size": st.st_size, "age_days": age, "emergency": rep.emergency}
            pids = opened.pids_holding(path)
            if pids:
                skipped_open.append({**item, "pids": sorted(pids)})
                ctx.info("skip_open", f"{path} is still open by pid {', '.join(map(str, sorted(pids)))}: kept")
                continue
            if ctx.dry_run:
                ctx.info("plan", f"would delete {path} ({st.st_size} bytes, {age:g} days old)", action="delete", **item)
            else:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                ctx.info("delete", f"deleted {path} ({st.st_size} bytes, {age:g} days old)", **item)
            deleted.append(item)
            rep.deleted += 1
            rep.freed_bytes += st.st_size
        if rep.emergency:
            rep.disk_percent_after = psutil.disk_usage(rep.path).percent
            still = rep.disk_percent_after > config.emergency_disk_percent and not ctx.dry_run
            findings.append(
                {
                    "severity": "critical" if still else "warning",
                    "item": rep.path,
                    "message": f"disk {rep.disk_percent:.1f}% used (> {config.emergency_disk_percent:g}%): "
                    f"emergency retention {rep.max_age_days:g} days, freed {rep.freed_bytes} bytes"
                    + (f", still {rep.disk_percent_after:.1f}% used" if still else ""),
                }
            )
    for entry in large:
        findings.append(
            {
                "severity": "warning",
                "item": entry["path"],
                "message": f"{entry['size'] / 1024**2:.1f} MiB, over {config.large_file_bytes / 1024**2:g} MiB",
            }
        )
    if opened.uninspectable > 0:
        findings.append(
            {
                "severity": "info",
                "item": "open-file check",
                "message": f"{opened.uninspectable} processes of other users could not be inspected",
            }
        )
    outcome = outcome_of(findings)
    freed = sum(r.freed_bytes for r in reports)
    verb = "would delete" if ctx.dry_run else "deleted"
    summary = (
        f"{'dry run: ' if ctx.dry_run else ''}{verb} {len(deleted)} rotated logs ({freed} bytes) in "
        f"{len(reports)} directories; {len(large)} files over {config.large_file_bytes} bytes"
        + (f"; emergency in {sum(r.emergency for r in reports)}" if any(r.emergency for r in reports) else "")
    )
    return {
        "outcome": outcome,
        "summary": summary,
        "dry_run": ctx.dry_run,
        "directories": [r.as_dict() for r in reports],
        "deleted": deleted,
        "freed_bytes": freed,
        "skipped_open": skipped_open,
        "large_files": large,
        "uninspectable_processes": max(opened.uninspectable, 0),
        "findings": findings,
    }
