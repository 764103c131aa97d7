"""Building blocks of log rotation: sizes, rotated-file naming, time triggers and open-file checks.

Naming (one log ``/d/app.log``):

- ``dateext`` (the default): ``app.log`` + ``strftime(dateformat)``, e.g. ``app.log-20261122``; a
  second rotation that would produce a name already taken (same day with the default
  ``-%Y%m%d``) gets ``.1``, ``.2``, ... appended: ``app.log-20261122.1``. logrotate skips that
  rotation instead; upkeep never overwrites and never skips. Compressed: ``app.log-20261122.1.gz``.
  Ordering (newest first, for ``rotate N``) is by the date parsed from the name, then the
  sequence number, then mtime.
- numeric (``dateext: false``): ``app.log.1`` (newest), ``app.log.2``, ... shifted by one on each
  rotation, as logrotate does.

Open files: ``scan_open_files()`` reads ``/proc/*/fd`` and keeps the (device, inode) of every open
file. Limitation: without root, the descriptors of other users' processes cannot be read; those
processes are counted in ``OpenFiles.uninspectable`` and reported, and a file they hold open is
not detected. Memory maps are not inspected (log writers append through descriptors).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from upkeep.handlers.logs.compress import SUFFIXES

COMPRESSED_SUFFIXES = (*SUFFIXES.values(), ".xz", ".bz2", ".lz4")

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> Any:
    """``100M`` / ``1.5G`` / ``512k`` / ``100MB`` / an int -> bytes (binary units as logrotate)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"size {value!r} is not a number of bytes")
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"size {value!r} is not a number of bytes or a size like 100M, 1G, 512k")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return value


ByteSize = Annotated[int, BeforeValidator(parse_size)]

# --- naming ---------------------------------------------------------------------------------

_FORMAT_PARTS = {
    "Y": r"\d{4}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "S": r"\d{2}",
    "V": r"\d{2}",
    "s": r"\d+",
}


def check_dateformat(fmt: str) -> str:
    """Only the specifiers logrotate allows (%Y %m %d %H %M %S %V %s), so names can be parsed back."""
    for spec in re.findall(r"%(.)", fmt):
        if spec not in _FORMAT_PARTS and spec != "%":
            raise ValueError(f"dateformat {fmt!r}: %{spec} is not supported (use %Y %m %d %H %M %S %V %s)")
    if not re.search(r"%[YmdHMSVs]", fmt):
        raise ValueError(f"dateformat {fmt!r} has no date specifier")
    if "/" in fmt:
        raise ValueError(f"dateformat {fmt!r} must not contain '/'")
    return fmt


def dateformat_regex(fmt: str) -> str:
    out = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            out.append("%" if spec == "%" else f"({_FORMAT_PARTS[spec]})" if spec == "s" else _FORMAT_PARTS[spec])
            i += 2
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return "".join(out)


@dataclass
class RotatedFile:
    """One rotated version of a log: where it is and how it sorts."""

    path: Path
    stamp: float  # seconds since the epoch parsed from the name (or mtime); numeric scheme: -number
    seq: int = 0  # same-stamp sequence (``.1``, ``.2``); numeric scheme: the number
    compressed: str | None = None  # suffix (".gz", ".zst", ...) or None
    mtime: float | None = None


@dataclass
class Naming:
    """How the rotated versions of one log are named (see the module docstring)."""

    log: Path
    dateext: bool = True
    dateformat: str = "-%Y%m%d"
    _regex: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        comp = "|".join(re.escape(s) for s in COMPRESSED_SUFFIXES)
        base = re.escape(self.log.name)
        if self.dateext:
            self._regex = re.compile(
                rf"^{base}(?P<date>{dateformat_regex(self.dateformat)})(?:\.(?P<seq>\d+))?(?P<comp>{comp})?$"
            )
        else:
            self._regex = re.compile(rf"^{base}\.(?P<num>\d+)(?P<comp>{comp})?$")

    def parse(self, path: Path) -> RotatedFile | None:
        match = self._regex.match(path.name)
        if not match:
            return None
        comp = match.group("comp")
        if not self.dateext:
            number = int(match.group("num"))
            return RotatedFile(path, stamp=-number, seq=number, compressed=comp, mtime=_mtime(path))
        try:
            stamp = datetime.strptime(match.group("date"), self.dateformat).timestamp()
        except ValueError:
            try:
                stamp = path.lstat().st_mtime
            except FileNotFoundError:
                stamp = 0.0
        return RotatedFile(path, stamp=stamp, seq=int(match.group("seq") or 0), compressed=comp, mtime=_mtime(path))

    def list(self) -> list[RotatedFile]:
        """Existing rotated versions, newest first."""
        directory = self.log.parent
        found = []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        prefix = self.log.name
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name != prefix and entry.is_file(follow_symlinks=False):
                item = self.parse(Path(entry.path))
                if item is not None:
                    found.append(item)
        return sort_newest_first(found)

    def dated_name(self, when: datetime, taken: Iterable[Path]) -> Path:
        """The next free date-suffixed name for a rotation at ``when`` (see the collision rule)."""
        taken_plain = {_strip_compression(p.name) for p in taken}
        base = self.log.name + when.strftime(self.dateformat)
        seq = 0
        while True:
            name = base if seq == 0 else f"{base}.{seq}"
            if name not in taken_plain and not any(
                (self.log.parent / (name + s)).exists() for s in ("", *COMPRESSED_SUFFIXES)
            ):
                return self.log.parent / name
            seq += 1

    def numbered(self, number: int, compressed: str | None = None) -> Path:
        return self.log.parent / f"{self.log.name}.{number}{compressed or ''}"


def sort_newest_first(items: list[RotatedFile]) -> list[RotatedFile]:
    return sorted(items, key=lambda r: (r.stamp, r.seq, r.path.name), reverse=True)


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return None


def _strip_compression(name: str) -> str:
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- time triggers --------------------------------------------------------------------------

FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "yearly")


def due_by_frequency(frequency: str, last: datetime, now: datetime) -> bool:
    """logrotate's calendar rules, in the local time of ``now``/``last`` (both aware, same zone).

    hourly: another hour; daily: another calendar day; weekly: the weekday (Sunday first) went
    back, or 7 days passed; monthly: another month; yearly: another year.
    """
    if frequency == "hourly":
        return (now.date(), now.hour) != (last.date(), last.hour)
    if frequency == "daily":
        return now.date() != last.date()
    if frequency == "weekly":
        wday_now, wday_last = (now.weekday() + 1) % 7, (last.weekday() + 1) % 7
        return wday_now < wday_last or (now - last) >= timedelta(days=7)
    if frequency == "monthly":
        return (now.year, now.month) != (last.year, last.month)
    if frequency == "yearly":
        return now.year != last.year
    raise ValueError(f"unknown frequency {frequency!r}")


# --- open files -----------------------------------------------------------------------------


@dataclass
class OpenFiles:
    """Which (device, inode) pairs some process holds open, and by which pids."""

    holders: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    uninspectable: int = 0

    def pids_holding(self, path: Path) -> set[int]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return set()
        return self.holders.get((st.st_dev, st.st_ino), set())


def scan_open_files(proc: str = "/proc") -> OpenFiles:
    """Every file open in a process we may inspect (``/proc/<pid>/fd``). See the module doc."""
    result = OpenFiles()
    try:
        pids = [e.name for e in os.scandir(proc) if e.name.isdigit()]
    except FileNotFoundError:  # not Linux: nothing can be verified
        result.uninspectable = -1
        return result
    for pid in pids:
        try:
            fds = list(os.scandir(f"{proc}/{pid}/fd"))
        except PermissionError:
            result.uninspectable += 1
            continue
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue
        for fd in fds:
            try:
                st = os.stat(fd.path)
            except OSError:
                continue
            result.holders.setdefault((st.st_dev, st.st_ino), set()).add(int(pid))
    return result


# --- recognising rotated files (for cleanup) ---------------------------------------------------

_ROTATED_PATTERNS = [
    re.compile(r"__\d{4}-?\d{2}-?\d{2}"),  # pm2-logrotate: api-out__2025-11-18_10-00-00.log
    re.compile(r"[-_.]\d{8}(?:\d{2}|\d{4}|\d{6})?(?:\.\d+)?$"),  # dateext: app.log-20261122(.1)
    re.compile(r"[-_.]\d{4}-\d{2}-\d{2}(?:[T_.-]\d{2}[-:]?\d{2}(?:[-:]?\d{2})?)?(?:\.\d+)?$"),  # app.log.2026-11-22
    re.compile(r"[-_.]\d{4}-?\d{2}-?\d{2}(?:[T_.-]?\d{2}[-:]?\d{2}(?:[-:]?\d{2})?)?\.log$"),  # app-2026-11-22.log
    re.compile(r"\.\d{1,3}$"),  # numeric: app.log.1, syslog.2
]


def looks_rotated(name: str) -> bool:
    """Whether a file name is a rotated log by its naming (compression suffix, date or number suffix).

    Recognised: ``.gz .zst .xz .bz2 .lz4``; date suffixes (``app.log-20261122``, ``.1`` after it,
    ``app.log.2026-11-22``, with an optional time); dated files (``app-2026-11-22.log``); pm2's
    ``name__YYYY-MM-DD_HH-mm-ss.log``; numeric suffixes (``app.log.1``). Anything else is active.
    """
    if name.endswith(COMPRESSED_SUFFIXES):
        return True
    return any(p.search(name) for p in _ROTATED_PATTERNS)


COPY_BLOCK = 1 << 20


def copy_truncate(path: Path, target: Path) -> tuple[int, int, float]:
    """Copy ``path`` to a new ``target``, then truncate it: (copied, bytes_possibly_lost, window seconds).

    ``bytes_possibly_lost`` is what the file grew between the copy's last read and the truncation
    (measured by ``fstat``); ``window`` is the unmeasured time between that ``fstat`` and the end of
    ``ftruncate``, in which further appends are lost too.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        st = os.fstat(fd)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, st.st_mode & 0o7777)
        try:
            copied = 0
            while True:
                chunk = os.read(fd, COPY_BLOCK)
                if not chunk:
                    break
                os.write(out, chunk)
                copied += len(chunk)
            measured = time.perf_counter()
            size_at_truncate = os.fstat(fd).st_size
            os.ftruncate(fd, 0)
            window = time.perf_counter() - measured
            os.fsync(out)
            with contextlib.suppress(PermissionError):
                os.fchown(out, st.st_uid, st.st_gid)
        finally:
            os.close(out)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)
    return copied, max(0, size_at_truncate - copied), window
