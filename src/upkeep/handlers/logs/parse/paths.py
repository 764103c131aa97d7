"""Which files, over which window: glob expansion, window parsing and :func:`analyze_paths`.

The library entry point of the log analysis, used by ``logs.analyze`` and by the handlers that
report log figures (health.report, performance.review, capacity.plan). It imports neither the
handler registry nor DuckDB, so a caller pays only for the analysis itself.
"""

from __future__ import annotations

import glob
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from upkeep.errors import ConfigError
from upkeep.handlers.logs.parse.detect import inspect_file
from upkeep.handlers.logs.parse.engine import AnalysisOptions, analyze_files

WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$")
WINDOW_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(
    window: str | None, now: datetime, since: datetime | None = None, until: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``"24h"`` -> (now - 24 h, now); ``"all"`` -> (None, None); explicit since/until win."""
    if now.tzinfo is None:
        raise ConfigError("now must be time-zone aware")
    start: datetime | None = None
    end: datetime | None = now
    text = (window or "all").strip().lower()
    if text in ("all", "none", ""):
        start, end = None, None
    else:
        match = WINDOW_RE.match(text)
        if not match:
            raise ConfigError(
                f"window {window!r} is not a duration",
                hint="use e.g. '30m', '24h', '7d', '2w' or 'all'",
                field="window",
            )
        start = now - timedelta(**{WINDOW_UNITS[match.group(2)]: float(match.group(1))})
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ConfigError(f"{name} {value.isoformat()} has no time zone", hint="add Z or +00:00", field=name)
    if since is not None:
        start = since
        end = until or (now if end is None else end)
    if until is not None:
        end = until
    if start is not None and end is not None and start > end:
        raise ConfigError("the window starts after it ends", hint="check since/until", field="since")
    return start, end


def expand(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """Files matching the globs (sorted, unique) and the patterns that matched nothing."""
    files: dict[str, Path] = {}
    missing = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
        else:
            matches = [pattern] if os.path.exists(pattern) else []
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            missing.append(pattern)
        for m in matches:
            files.setdefault(os.path.realpath(m), Path(m))
    return list(files.values()), missing


def analyze_paths(
    paths: list[str] | str,
    *,
    window: str | None = "24h",
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    format: str = "auto",
    duration_field: str | None = None,
    duration_unit: str = "auto",
    timezone: str = "UTC",
    fields: dict[str, str | None] | None = None,
    top_errors: int = 10,
    top_routes: int = 10,
    by_route: bool = False,
    memory_limit: str = "256MB",
) -> dict[str, Any]:
    """Analyse the log files matching ``paths`` (globs) over a window; the figures of ``logs.analyze``.

    Returns ``records`` (total, in_window, before_window, after_window, no_timestamp, malformed),
    ``levels``, ``errors``, ``warnings``, ``top_errors``, ``requests`` (total, status_classes,
    status_codes, 5xx, rate_5xx, per_day), ``duration`` (count, avg/p50/p95/p99/max in ms), ``routes``
    (the ``top_routes`` busiest, only with ``by_route``: otherwise the route field is not read),
    ``files`` and ``missing`` (patterns that matched nothing). Never raises for missing or unreadable
    files; a bad window or field name raises ``ConfigError``.
    """
    now = now or datetime.now(UTC)
    start, end = parse_window(window, now, since, until)
    overrides = dict(fields or {})
    if duration_field:
        overrides["duration"] = duration_field
    files, missing = expand([paths] if isinstance(paths, str) else list(paths))
    infos = [inspect_file(f, format, overrides) for f in files]
    options = AnalysisOptions(
        since=start,
        until=end,
        duration_unit=duration_unit,
        timezone=timezone,
        top_errors=top_errors,
        top_routes=top_routes,
        by_route=by_route,
        memory_limit=memory_limit,
        fields=overrides,
    )
    result = analyze_files(infos, options)
    result["files"] = [
        {
            "path": i.path,
            "size": i.size,
            "format": i.format,
            "compression": i.compression,
            "fields": i.fields,
            **({"error": i.error} if i.error else {}),
        }
        for i in infos
    ]
    result["missing"] = missing
    return result
