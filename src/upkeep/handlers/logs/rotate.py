"""``logs.rotate``: logrotate's semantics, with names that never collide and no compression of live files.

(About 500 lines, 80 of them this reference: the steps of a rule share ``RuleRun``'s state and its
dry-run plan; naming, open-file scans, compression and rule parsing live in their own modules.)

Rules come from the task config (``rules: [...]``) or, when it has none, from the inventory
``targets.logs``; ``targets: [names]`` picks some::

    targets:
      logs:
        api:
          paths: ["/srv/app/logs/api-out*.log*"]   # shared with logs.analyze / logs.cleanup
          rotation: {frequency: daily, rotate: 14, compress_method: zstd, pidfile: /run/api.pid}

Rule options go under ``rotation:`` (validated strictly, as every ``targets.logs`` entry is at
``upkeep apply``: ``paths``, ``rotation`` and ``logs.analyze``'s fields). Files a
glob matches whose names mark them as rotated (``app.log-20261122``, ``.gz``, ``app.log.1``,
``api-out__2025-11-18_10-00-00.log``) are never rotated again: only the active files are.

Per rule (every option of ``RotateRule``, in ``rules``, is documented on its field):

1. **Trigger.** ``size`` (bytes or ``100M``) rotates as soon as the file reaches it, whatever the
   time. ``frequency`` (hourly/daily/weekly/monthly/yearly, logrotate's calendar rules, local time
   of ``timezone``) compares with the last rotation time kept in records domain ``logs.rotate``
   (key: absolute path) -- never the file's mtime; ``minsize`` gates it. With neither, ``daily``.
   A file seen for the first time has no last rotation: its state is recorded and it is not
   rotated by time (as logrotate does); ``force: true`` rotates regardless. ``notifempty`` skips
   empty files, ``missingok`` accepts patterns that match nothing (otherwise a warning finding).
2. **Rotate.** ``mode: rename`` (default) renames the file to its rotated name and ``create``s an
   empty one with the same mode/owner (or ``create_mode``/``create_owner``/``create_group``);
   then, once per rule, runs ``postrotate`` (an argv list, through the run's deadline) or sends
   ``signal`` (default HUP) to the pid in ``pidfile`` so the writer reopens its file.
   ``mode: copytruncate`` copies the file then truncates it in place, for writers that cannot
   reopen. Its loss window: bytes appended between the end of the copy and the truncation are
   lost. The handler measures the growth between the copy's last read and the truncation
   (``bytes_possibly_lost`` per file, and in total): those bytes are certainly lost, so the figure
   is a lower bound; writes landing between that ``fstat`` and ``ftruncate`` (``truncate_window_us``,
   microseconds unless the host preempts the run) escape it. A writer without ``O_APPEND`` keeps
   its offset and leaves a sparse hole after truncation. Prefer rename mode with a signal.
3. **Compress.** ``compress`` with ``compress_method`` gzip|zstd and ``compress_level``; with
   ``delaycompress`` the newest rotated file stays plain until the next run. A rotated file that
   any process still holds open (``/proc/*/fd`` scan, waiting up to ``open_wait_seconds`` after a
   rotation for writers to reopen) is left uncompressed and compressed on a later run; a file
   that changes while being compressed is left as it was. Without root, other users' processes
   cannot be inspected: their number is reported as ``uninspectable_processes``.
4. **Retention** (every run): rotated versions beyond the newest ``rotate`` and those whose mtime
   is older than ``maxage`` days are deleted.

Names: see ``upkeep.handlers.logs.rotation`` -- ``app.log-20261122``, then ``app.log-20261122.1``,
``.2`` for further rotations under the same date (logrotate would skip those rotations).

``dry_run`` lists every action (rename, create, copy, truncate, postrotate, signal, compress,
delete) and changes nothing: no file, no rotation state.
"""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from upkeep.engine.context import CommandFailed, RunContext
from upkeep.engine.registry import (
    handler,
)
from upkeep.handlers.findings import outcome_of
from upkeep.handlers.logs.compress import compress_file, suffix_for
from upkeep.handlers.logs.rotation import (
    COMPRESSED_SUFFIXES,
    Naming,
    OpenFiles,
    RotatedFile,
    copy_truncate,
    due_by_frequency,
    looks_rotated,
    scan_open_files,
    sort_newest_first,
)
from upkeep.handlers.logs.rules import LogsRotateConfig, RotateRule, parse_signal, resolve_rules

STATE_DOMAIN = "logs.rotate"


# --- reporting --------------------------------------------------------------------------------


@dataclass
class Report:
    ctx: RunContext
    actions: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    left_uncompressed: list[dict[str, Any]] = field(default_factory=list)
    uninspectable: int = 0

    def act(self, action: str, path: Path, message: str, **data: Any) -> None:
        """Record one action; in dry-run it is only planned (the caller skips doing it)."""
        entry = {
            "action": action,
            "path": str(path),
            **{k: str(v) if isinstance(v, Path) else v for k, v in data.items()},
        }
        entry["done"] = not self.ctx.dry_run
        self.actions.append(entry)
        if self.ctx.dry_run:
            self.ctx.info("plan", f"would {message}", **entry)
        else:
            self.ctx.info(action, message, **entry)

    def finding(self, severity: str, item: str, message: str) -> None:
        self.findings.append({"severity": severity, "item": item, "message": message})
        self.ctx.log("info" if severity == "info" else "warning", "finding", f"{item}: {message}")

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a["action"] == action)


# --- one rule ---------------------------------------------------------------------------------


@dataclass
class LogState:
    path: Path
    naming: Naming
    listing: list[RotatedFile]
    rotated_to: Path | None = None


class RuleRun:
    def __init__(self, ctx: RunContext, rule: RotateRule, config: LogsRotateConfig, report: Report, zone):
        self.ctx, self.rule, self.config, self.report = ctx, rule, config, report
        self.state = ctx.records(STATE_DOMAIN)
        self.now = ctx.now()
        self.now_local = self.now.astimezone(zone)
        self.zone = zone

    def run(self) -> None:
        logs = self.expand()
        self.ctx.scope(logs, f"the active files matching {', '.join(self.rule.paths)}", what=f"rule {self.rule.label}")
        states = []
        for path in logs:
            self.ctx.check_cancelled()
            naming = Naming(path, self.rule.dateext, self.rule.dateformat)
            item = LogState(path, naming, naming.list())
            states.append(item)
            entry = {"rule": self.rule.label, "path": str(path)}
            self.report.files.append(entry)
            entry["rotated"] = False
            try:
                rotate, reason = self.decide(path)
                entry["reason"] = reason
                if not rotate:
                    self.ctx.info("kept", f"not rotating {path}: {reason}", path=str(path))
                if rotate:
                    entry.update(self.rotate_one(item))
                    entry["rotated"] = item.rotated_to is not None
            except FileNotFoundError:
                entry["reason"] = "vanished during the run"
            except OSError as exc:
                entry["reason"] = f"failed: {exc}"
                self.report.finding("critical", str(path), f"cannot rotate: {exc}")
        if any(s.rotated_to for s in states):
            self.after_rotation()
        if self.rule.compress:
            self.compress_pending(states)
        for item in states:
            self.prune(item)

    # -- selection and triggers --

    def expand(self) -> list[Path]:
        found: list[Path] = []
        for pattern in self.rule.paths:
            pattern = os.path.expanduser(pattern)
            matches = [Path(p) for p in sorted(glob.glob(pattern)) if os.path.isfile(p) and not os.path.islink(p)]
            if glob.has_magic(pattern):  # a glob also matches rotated versions: only active files rotate
                matches = [p for p in matches if not looks_rotated(p.name)]
            if not matches:
                if not self.rule.missingok:
                    self.report.finding("warning", pattern, "no log file matches (set missingok to accept this)")
                continue
            found.extend(Path(os.path.abspath(p)) for p in matches)
        unique = sorted(set(found))
        return [p for p in unique if not self._is_rotated_version(p, unique)]

    def _is_rotated_version(self, path: Path, candidates: list[Path]) -> bool:
        if path.name.endswith(COMPRESSED_SUFFIXES):
            return True
        for other in candidates:
            if (
                other != path
                and other.parent == path.parent
                and path.name.startswith(other.name)
                and Naming(other, self.rule.dateext, self.rule.dateformat).parse(path) is not None
            ):
                return True
        return False

    def decide(self, path: Path) -> tuple[bool, str]:
        size = path.stat().st_size
        rule = self.rule
        if size == 0 and rule.notifempty:
            return False, "empty (notifempty)"
        if self.config.force:
            return True, "forced"
        if rule.size is not None and size >= rule.size:
            return True, f"size {size} >= {rule.size}"
        frequency = rule.frequency or ("daily" if rule.size is None else None)
        if frequency is None:
            return False, f"size {size} < {rule.size}"
        record = self.state.get(str(path))
        if not record or not record.get("last_rotated"):
            if not self.ctx.dry_run:
                self.state.put(
                    str(path), {"last_rotated": self.now.isoformat(), "rule": rule.label, "first_seen": True}
                )
            return False, "first seen: rotation time recorded, rotates from the next period"
        last = datetime.fromisoformat(record["last_rotated"]).astimezone(self.zone)
        if not due_by_frequency(frequency, last, self.now_local):
            return False, f"not due ({frequency}, last rotated {last.isoformat()})"
        if rule.minsize is not None and size < rule.minsize:
            return False, f"{frequency} due but size {size} < minsize {rule.minsize}"
        return True, f"{frequency} (last rotated {last.isoformat()})"

    # -- rotation --

    def rotate_one(self, item: LogState) -> dict[str, Any]:
        rule, path = self.rule, item.path
        st = path.stat()
        if rule.dateext:
            target = item.naming.dated_name(self.now_local, [r.path for r in item.listing])
            seq = 0 if target.name == path.name + self.now_local.strftime(rule.dateformat) else int(target.suffix[1:])
            new = RotatedFile(target, stamp=self.now_local.timestamp(), seq=seq, mtime=st.st_mtime)
        else:
            self.shift_numbered(item)
            target = item.naming.numbered(1)
            new = RotatedFile(target, stamp=-1, seq=1, mtime=st.st_mtime)
        result: dict[str, Any] = {"rotated_to": str(target), "size": st.st_size}
        if rule.mode == "rename":
            self.report.act("rename", path, f"rename {path} to {target.name}", target=target, size=st.st_size)
            if not self.ctx.dry_run:
                if target.exists():  # a race with another rotator: never overwrite
                    self.report.finding("warning", str(path), f"{target} appeared meanwhile; not rotated")
                    return result
                os.rename(path, target)
            if rule.create:
                self.create(path, st)
        else:
            self.report.act("copy", path, f"copy {path} to {target.name}", target=target)
            self.report.act("truncate", path, f"truncate {path} in place")
            if not self.ctx.dry_run:
                copied, lost, window = copy_truncate(path, target)
                result.update(copied=copied, bytes_possibly_lost=lost, truncate_window_us=round(window * 1e6, 1))
                if lost:
                    self.report.finding(
                        "warning",
                        str(path),
                        f"copytruncate: {lost} bytes written during the copy may be lost",
                    )
        item.rotated_to = target
        item.listing = sort_newest_first([new, *item.listing])
        if not self.ctx.dry_run:
            self.state.put(
                str(path),
                {"last_rotated": self.now.isoformat(), "rule": rule.label, "rotated_to": str(target)},
            )
        return result

    def shift_numbered(self, item: LogState) -> None:
        """Numeric scheme: drop versions that would pass ``rotate``, then N -> N+1 (oldest first)."""
        keep = max(self.rule.rotate, 1)
        shifted = []
        for r in sorted(item.listing, key=lambda r: r.seq, reverse=True):
            if self.rule.rotate == 0 or r.seq >= keep:
                self.delete(r, "beyond rotate count")
                continue
            target = item.naming.numbered(r.seq + 1, r.compressed)
            self.report.act("rename", r.path, f"rename {r.path.name} to {target.name}", target=target)
            if not self.ctx.dry_run:
                os.rename(r.path, target)
            shifted.append(
                RotatedFile(target, stamp=-(r.seq + 1), seq=r.seq + 1, compressed=r.compressed, mtime=r.mtime)
            )
        item.listing = sort_newest_first(shifted)

    def create(self, path: Path, old: os.stat_result) -> None:
        rule = self.rule
        mode = int(rule.create_mode, 8) if rule.create_mode else old.st_mode & 0o7777
        uid, gid = old.st_uid, old.st_gid
        try:
            uid = pwd.getpwnam(rule.create_owner).pw_uid if rule.create_owner else uid
            gid = grp.getgrnam(rule.create_group).gr_gid if rule.create_group else gid
        except KeyError as exc:
            self.report.finding("critical", str(path), f"create: unknown user or group {exc}; kept the old owner")
        self.report.act("create", path, f"create empty {path} (mode {mode:04o}, uid {uid}, gid {gid})")
        if self.ctx.dry_run:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:  # the writer reopened first (WatchedFileHandler does): keep its file
            self.ctx.info("create", f"{path} was already recreated by its writer", path=str(path))
            return
        try:
            os.fchmod(fd, mode)
            if (uid, gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, uid, gid)
        finally:
            os.close(fd)

    def after_rotation(self) -> None:
        rule = self.rule
        if rule.postrotate:
            self.report.act(
                "postrotate",
                Path(rule.postrotate[0]),
                f"run {' '.join(rule.postrotate)}",
                argv=rule.postrotate,
            )
            if not self.ctx.dry_run:
                try:
                    result = self.ctx.run_command(rule.postrotate, check=False)
                except CommandFailed as exc:
                    self.report.finding("critical", rule.label, f"postrotate could not run: {exc}")
                else:
                    if result.returncode != 0:
                        self.report.finding(
                            "critical", rule.label, f"postrotate exited {result.returncode}: {result.tail(3)}"
                        )
        if rule.pidfile:
            sig = parse_signal(rule.signal)
            pidfile = Path(rule.pidfile)
            try:
                pid = int(pidfile.read_text().split()[0])
            except (FileNotFoundError, IndexError, ValueError):
                self.report.finding("warning", str(pidfile), f"no valid pid in {pidfile}: writer not signalled")
                return
            self.report.act("signal", pidfile, f"send {sig.name} to pid {pid}", pid=pid, signal=sig.name)
            if not self.ctx.dry_run:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    self.report.finding("warning", str(pidfile), f"pid {pid} is not running: writer not signalled")

    # -- compression --

    def compress_pending(self, states: list[LogState]) -> None:
        rule = self.rule
        suffix = suffix_for(rule.compress_method)
        todo: list[tuple[LogState, RotatedFile]] = []
        for item in states:
            kept = item.listing[: rule.rotate]  # versions beyond the count are deleted, not compressed
            plain = [r for r in kept if r.compressed is None]
            if rule.delaycompress and item.listing and item.listing[0].compressed is None:
                plain = [r for r in plain if r is not item.listing[0]]
            todo.extend((item, r) for r in plain)
        if not todo:
            return
        opened = OpenFiles()
        if not self.ctx.dry_run:
            fresh = any(r.path == item.rotated_to for item, r in todo)
            opened = self.wait_released([r.path for _, r in todo], rule.open_wait_seconds if fresh else 0.0)
        for item, r in todo:
            self.ctx.check_cancelled()
            target = r.path.with_name(r.path.name + suffix)
            if not self.ctx.dry_run:
                pids = opened.pids_holding(r.path)
                if pids:
                    self.leave(r, f"still open by pid {', '.join(map(str, sorted(pids)))}")
                    continue
            self.report.act(
                "compress",
                r.path,
                f"compress {r.path.name} to {target.name} ({rule.compress_method})",
                target=target,
            )
            if self.ctx.dry_run:
                self._mark_compressed(item, r, target, suffix)
                continue
            try:
                before = r.path.stat()
                result = compress_file(r.path, target, rule.compress_method, rule.compress_level)
                after = r.path.stat()
            except OSError as exc:
                self.report.finding("critical", str(r.path), f"cannot compress: {exc}")
                continue
            if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
                target.unlink()
                self.leave(r, "it changed while being compressed (a writer still appends)")
                continue
            r.path.unlink()
            self.ctx.debug("compressed", f"{r.path.name}: {result.bytes_in} -> {result.bytes_out} bytes")
            self._mark_compressed(item, r, target, suffix)

    def _mark_compressed(self, item: LogState, r: RotatedFile, target: Path, suffix: str) -> None:
        r.path, r.compressed = target, suffix

    def leave(self, r: RotatedFile, why: str) -> None:
        self.report.left_uncompressed.append({"path": str(r.path), "reason": why})
        self.ctx.info(
            "compress_deferred",
            f"left {r.path} uncompressed: {why}; compressed on a later run",
            path=str(r.path),
        )

    def wait_released(self, paths: list[Path], wait: float) -> OpenFiles:
        deadline = time.monotonic() + wait
        while True:
            opened = scan_open_files()
            self.report.uninspectable = max(self.report.uninspectable, opened.uninspectable)
            if not any(opened.pids_holding(p) for p in paths) or time.monotonic() >= deadline:
                return opened
            self.ctx.check_cancelled()
            time.sleep(0.05)

    # -- retention --

    def prune(self, item: LogState) -> None:
        rule = self.rule
        listing = sort_newest_first(item.listing)
        drop = listing[rule.rotate :]
        if rule.maxage is not None:
            limit = (self.now - timedelta(days=rule.maxage)).timestamp()
            drop += [r for r in listing[: rule.rotate] if r.mtime is not None and r.mtime < limit]
        for r in drop:
            self.delete(
                r,
                "beyond rotate count" if r in listing[rule.rotate :] else f"older than {rule.maxage:g} days",
            )
        item.listing = [r for r in listing if r not in drop]

    def delete(self, r: RotatedFile, why: str) -> None:
        self.report.act("delete", r.path, f"delete {r.path.name} ({why})", reason=why)
        if not self.ctx.dry_run:
            try:
                r.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.report.finding("critical", str(r.path), f"cannot delete: {exc}")


# --- the handler ------------------------------------------------------------------------------


def _kept_text(files: list[dict[str, Any]], most: int = 3) -> str:
    """Why files were not rotated, for the one-line summary (the run's events list every file)."""
    kept = [f for f in files if not f.get("rotated") and not f.get("rotated_to")]
    if not kept:
        return ""
    text = "; ".join(f"{Path(f['path']).name}: {f.get('reason') or '?'}" for f in kept[:most])
    return f"; not rotated: {text}" + (f" (and {len(kept) - most} more)" if len(kept) > most else "")


@handler(
    "logs.rotate",
    config=LogsRotateConfig,
    destructive=True,
    aliases=["logs.logrotate"],
)
def rotate_logs(ctx: RunContext, config: LogsRotateConfig) -> dict:
    """Rotate log files with logrotate's semantics: triggers, collision-free names, safe compression."""
    zone = ZoneInfo(config.timezone) if config.timezone else None
    rules = resolve_rules(ctx, config)
    report = Report(ctx)
    for index, rule in enumerate(rules):
        ctx.check_cancelled()
        ctx.progress(index / len(rules), f"rule {rule.label}")
        RuleRun(ctx, rule, config, report, zone).run()
    ctx.progress(1.0, "done")
    rotated = [f for f in report.files if f.get("rotated") or (ctx.dry_run and f.get("rotated_to"))]
    if report.uninspectable:
        report.finding(
            "info",
            "open-file check",
            f"{report.uninspectable} processes of other users could not be inspected (root sees them)",
        )
    outcome = outcome_of(report.findings)
    verb = "would rotate" if ctx.dry_run else "rotated"
    summary = (
        f"{'dry run: ' if ctx.dry_run else ''}{verb} {len(rotated)} of {len(report.files)} log files, "
        f"compress {report.count('compress')}, delete {report.count('delete')}"
        + (f", {len(report.left_uncompressed)} left uncompressed (still open)" if report.left_uncompressed else "")
        + _kept_text(report.files)
    )
    lost = sum(f.get("bytes_possibly_lost", 0) for f in report.files)
    return {
        "outcome": outcome,
        "summary": summary,
        "dry_run": ctx.dry_run,
        "rules": [r.label for r in rules],
        "files": report.files,
        "actions": report.actions,
        "rotated": len(rotated),
        "compressed": report.count("compress"),
        "deleted": report.count("delete"),
        "left_uncompressed": report.left_uncompressed,
        "bytes_possibly_lost": lost,
        "uninspectable_processes": report.uninspectable,
        "findings": report.findings,
    }
