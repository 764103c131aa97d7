"""One DuckDB pass over all files of a target, then small queries over the aggregated rows.

The scan feeds a ``GROUPING SETS`` aggregation whose two sets are all the figures need:

1. ``(b, d, lv, sc, em)``: window bucket, UTC day, raw level, status code, normalised message of an
   in-window error candidate (see ``error_candidate_sql``; NULL for other records) -> counts,
   duration sum/max, one example message. Which raw levels really are errors is decided once per
   distinct level, after the scan, by ``normalise_level``: the one definition of an error level;
2. ``(b, dk)``: window bucket, duration key -> counts: the histogram of durations. With
   ``by_route`` it is ``(b, route, e5, dk)`` (route NULL for records that are no request, 5xx or
   not): per route figures, and summed over routes the same histogram.

Memory therefore grows with the number of *distinct* keys, never with the number of records, and
DuckDB spills its hash tables under ``memory_limit``. Percentiles come from the histograms with the
linear interpolation of numpy's default / ``statistics.quantiles(method="inclusive")``. A duration
key is the duration itself when it is a whole number of milliseconds below 10 s (exact percentiles,
the common case) and otherwise the duration rounded to 4 significant digits: at most 0.05 % off.
"""

from __future__ import annotations

import bisect
import math
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from upkeep.handlers.logs.parse.detect import FileInfo
from upkeep.handlers.logs.parse.levels import ERROR_LEVELS, error_candidate_sql, normalise_level
from upkeep.handlers.logs.parse.sql import quote_literal, source_select, truncate

if TYPE_CHECKING:  # duckdb is imported where it is used: loading the handlers must not load it
    import duckdb

BUCKETS = {0: "in_window", 1: "before_window", 2: "after_window", 3: "no_timestamp", 4: "malformed"}
DAY_SET = ("b", "d", "lv", "sc", "em")
DURATION_SET = ("b", "dk")
ROUTE_SET = ("b", "route", "e5", "dk")
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
DAY_MS = 86_400_000


@dataclass
class AnalysisOptions:
    """How to read and summarise; the handler's config maps onto this."""

    since: datetime | None = None
    until: datetime | None = None
    duration_unit: str = "auto"  # auto | ms | s | us | ns
    timezone: str = "UTC"  # for timestamps without an offset
    top_errors: int = 10
    top_routes: int = 10
    memory_limit: str = "256MB"
    threads: int | None = None
    by_route: bool = False  # per-route figures; off, the route field is not even read
    fields: dict[str, str | None] = field(default_factory=dict)


class _Ahead:
    """A DuckDB database opened in a thread before the analysis needs it (``open_ahead``)."""

    def __init__(self) -> None:
        self.connection: duckdb.DuckDBPyConnection | None = None
        self.thread = threading.Thread(target=self._open, name="duckdb-ahead", daemon=True)

    def _open(self) -> None:
        import duckdb

        try:
            self.connection = duckdb.connect()
        except Exception:  # the analysis opens its own, and says what is wrong
            self.connection = None


_ahead: _Ahead | None = None


def open_ahead() -> None:
    """Start opening the DuckDB database of the next analysis in a thread (``logs.analyze`` preloads
    this): a new database costs DuckDB tens of milliseconds, which a foreground worker then spends
    while the run is created and claimed instead of after."""
    global _ahead
    if _ahead is None:
        _ahead = _Ahead()
        _ahead.thread.start()


def connect(memory_limit: str, temp_directory: str) -> duckdb.DuckDBPyConnection:
    """A connection to a new in-memory database with these settings: the one opened ahead, once,
    else one opened now."""
    import duckdb

    global _ahead
    ahead, _ahead = _ahead, None
    con = None
    if ahead is not None:
        ahead.thread.join()
        con = ahead.connection
    if con is None:
        return duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": temp_directory})
    con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
    con.execute(f"SET temp_directory = {quote_literal(temp_directory)}")
    return con


def grouping_sets(by_route: bool) -> dict[str, tuple[str, ...]]:
    """The two grouping sets of the scan: per day and level, and the durations (per route if asked)."""
    return {"day": DAY_SET, "duration": ROUTE_SET if by_route else DURATION_SET}


def _keys(sets: dict[str, tuple[str, ...]]) -> list[str]:
    return list(dict.fromkeys(key for keys in sets.values() for key in keys))


def _grouping_id(keys: Sequence[str], all_keys: Sequence[str]) -> int:
    """DuckDB's GROUPING(...) value: a bit per argument (first = highest), set when not grouped."""
    value = 0
    for key in all_keys:
        value = (value << 1) | (0 if key in keys else 1)
    return value


def _duration_key(dur: str) -> str:
    return (
        f"CASE WHEN {dur} = trunc({dur}) AND abs({dur}) < 10000 THEN {dur} WHEN {dur} = 0 THEN 0 "
        f"ELSE round({dur}, 3 - CAST(floor(log10(abs({dur}))) AS INTEGER)) END"
    )


def _message_key(msg: str) -> str:
    """An error message with numbers, uuids and hex ids replaced and whitespace runs collapsed.

    It runs once per error record, so the cheap forms matter (measured on 2.2M messages): the uuid
    pattern only where a '-' is (0.36 -> 0.08 s), and whitespace replaced only where it is not a
    single space already, the same result as ``\\s+`` -> ' ' (1.8 -> 0.6 s).
    """
    uuid = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    text = truncate(msg, 300)
    expr = f"CASE WHEN contains({text}, '-') THEN regexp_replace({text}, '{uuid}', '<uuid>', 'g') ELSE {text} END"
    expr = f"regexp_replace({expr}, '0x[0-9a-fA-F]+|\\b[0-9a-fA-F]{{12,}}\\b', '<hex>', 'g')"
    expr = f"regexp_replace({expr}, '[0-9]+([.,][0-9]+)?', '<n>', 'g')"
    return f"trim(regexp_replace({expr}, '\\s\\s+|[^\\S ]', ' ', 'g'))"


def build_query(sources: list[str], since_ms: float | None, until_ms: float | None, by_route: bool = False) -> str:
    """The one scan. Keys are not masked per record by the window bucket ``b``: ``b`` is a key of
    both sets, so records outside the window land in groups of their own that ``_fill`` only counts;
    only the error-message key, the one costly expression, is computed for in-window errors alone."""
    union = "\nUNION ALL\n".join(sources)
    before = f"ts < {since_ms!r}" if since_ms is not None else "false"
    after = f"ts > {until_ms!r}" if until_ms is not None else "false"
    sets = grouping_sets(by_route)
    keys = _keys(sets)
    err = f"b = 0 AND {error_candidate_sql('lv')}"
    route = ""
    if by_route:
        route = (
            "CASE WHEN st IS NOT NULL THEN coalesce(route, '(none)') END AS route, "
            "CASE WHEN st IS NOT NULL THEN st >= 500 END AS e5,"
        )
    return f"""
WITH raw AS ({union}),
n AS (
  SELECT CASE WHEN bad THEN 4 WHEN ts IS NULL THEN 3 WHEN {before} THEN 1 WHEN {after} THEN 2 ELSE 0 END AS b,
         ts, lv, CASE WHEN st BETWEEN 100 AND 599 THEN st END AS st, (CASE WHEN isfinite(dur) THEN dur END) AS dur,
         route, msg
  FROM raw
),
k AS (
  SELECT b, CAST(floor(ts / {DAY_MS}) AS BIGINT) AS d, lv, st AS sc, {route}
    {_duration_key("dur")} AS dk,
    CASE WHEN {err} THEN {_message_key("coalesce(msg, '')")} END AS em,
    dur,
    CASE WHEN {err} THEN {truncate("msg", 300)} END AS example
  FROM n
)
SELECT GROUPING({", ".join(keys)}) AS g, {", ".join(keys)},
       count(*) AS c, count(dur) AS nd, sum(dur) AS sd, max(dur) AS md, min(example) AS example
FROM k
GROUP BY GROUPING SETS ({", ".join("(" + ", ".join(keys) + ")" for keys in sets.values())})
"""


def _ms_to_iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def empty_result(options: AnalysisOptions) -> dict:
    return {
        "window": {"since": _ms_to_iso(options.since), "until": _ms_to_iso(options.until)},
        "records": {"total": 0, **{name: 0 for name in BUCKETS.values()}},
        "levels": {},
        "errors": 0,
        "warnings": 0,
        "top_errors": [],
        "requests": {"total": 0, "status_classes": {}, "status_codes": {}, "5xx": 0, "rate_5xx": 0.0, "per_day": {}},
        "duration": {"count": 0, "avg_ms": None, "max_ms": None, **{f"{k}_ms": None for k in QUANTILES}},
        "routes": [],
    }


def analyze_files(infos: list[FileInfo], options: AnalysisOptions) -> dict:
    """Aggregate the readable, non-empty files in ``infos`` (already inspected) into one result."""

    result = empty_result(options)
    groups: dict[tuple, list[FileInfo]] = defaultdict(list)
    for info in infos:
        if info.error is None and info.format in ("json", "combined", "text"):
            groups[info.signature()].append(info)
    if not groups:
        return result
    sources = [
        source_select(members[0], [m.path for m in members], options.duration_unit, by_route=options.by_route)
        for members in groups.values()
    ]
    since_ms = options.since.timestamp() * 1000 if options.since else None
    until_ms = options.until.timestamp() * 1000 if options.until else None
    spill = tempfile.mkdtemp(prefix="upkeep-logs-")
    con = connect(options.memory_limit, spill)
    try:
        # DuckDB draws a progress bar on stdout for queries over 2 s: into a worker's or the CLI's output
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET TimeZone = {quote_literal(options.timezone)}")
        if options.threads:
            con.execute(f"SET threads = {int(options.threads)}")
        con.execute(f"CREATE TEMP TABLE agg AS {build_query(sources, since_ms, until_ms, options.by_route)}")
        _fill(con, result, options)
    finally:
        _close_behind(con, spill)
    return result


def _close_behind(con: duckdb.DuckDBPyConnection, spill: str) -> None:
    """Close the database, then remove its spill directory, in a thread: DuckDB frees the memory of
    the scan on close (7-9 ms after a 1M-line log, measured) with the interpreter lock released, so
    the figures go out meanwhile. Not a daemon thread: a process that ends waits for it."""

    def close() -> None:
        try:
            con.close()
        finally:
            shutil.rmtree(spill, ignore_errors=True)

    threading.Thread(target=close, name="duckdb-close").start()


def _quantiles(histogram: Sequence[tuple[float, int]]) -> dict[str, float]:
    """Percentiles of (value, count) pairs sorted by value: numpy's default linear interpolation
    between the ranks."""
    cumulative, total = [], 0
    for _, count in histogram:
        total += count
        cumulative.append(total)
    out = {}
    for name, p in QUANTILES.items():
        h = (total - 1) * p
        lo = histogram[bisect.bisect_right(cumulative, math.floor(h))][0]
        hi = histogram[bisect.bisect_right(cumulative, math.ceil(h))][0]
        out[name] = lo + (h - math.floor(h)) * (hi - lo)
    return out


def _fill(con: duckdb.DuckDBPyConnection, result: dict, options: AnalysisOptions) -> None:
    """The figures from the aggregated rows. They are few (a group per day, level, status and error
    message; a histogram bucket per duration), so they are read once and summed here: a DuckDB
    query per figure cost more than the Python (measured: 6 ms against 1 ms after a 1M-line log)."""
    sets = grouping_sets(options.by_route)
    gid = {name: _grouping_id(keys, _keys(sets)) for name, keys in sets.items()}
    records = result["records"]
    levels: dict[str, int] = defaultdict(int)
    codes: dict[int, int] = defaultdict(int)
    per_day: dict[int, int] = defaultdict(int)
    messages: dict[str, list] = {}  # normalised error message -> [count, least example]
    count_dur, sum_dur, max_dur = 0, 0.0, None
    for b, d, lv, sc, em, c, nd, sd, md, example in con.execute(
        "SELECT b, d, lv, sc, em, c, nd, sd, md, example FROM agg WHERE g = ?", [gid["day"]]
    ).fetchall():
        records[BUCKETS[b]] += c
        records["total"] += c
        if b != 0:
            continue
        level = normalise_level(lv)
        levels[level] += c
        if level in ERROR_LEVELS and em is not None:  # the scan keys every error candidate by message
            entry = messages.setdefault(em, [0, None])
            entry[0] += c
            if example is not None and (entry[1] is None or example < entry[1]):
                entry[1] = example
        if sc is not None:
            codes[sc] += c
            per_day[d] += c
        if nd:
            count_dur += nd
            sum_dur += sd
            max_dur = md if max_dur is None else max(max_dur, md)
    result["levels"] = dict(sorted(levels.items(), key=lambda kv: -kv[1]))
    result["errors"] = sum(levels.get(name, 0) for name in ERROR_LEVELS)
    result["warnings"] = levels.get("warn", 0)
    requests = result["requests"]
    requests["total"] = sum(codes.values())
    classes: dict[str, int] = defaultdict(int)
    for code, c in codes.items():
        classes[f"{code // 100}xx"] += c
    requests["status_classes"] = dict(sorted(classes.items()))
    requests["status_codes"] = {str(k): v for k, v in sorted(codes.items())}
    requests["5xx"] = classes.get("5xx", 0)
    requests["rate_5xx"] = requests["5xx"] / requests["total"] if requests["total"] else 0.0
    requests["per_day"] = {
        datetime.fromtimestamp(day * 86400, UTC).date().isoformat(): c for day, c in sorted(per_day.items())
    }
    duration = result["duration"]
    duration["count"] = count_dur
    if count_dur:
        duration["avg_ms"] = sum_dur / count_dur
        duration["max_ms"] = max_dur
        histogram = con.execute(
            "SELECT dk, sum(c) FROM agg WHERE g = ? AND b = 0 AND dk IS NOT NULL GROUP BY dk ORDER BY dk",
            [gid["duration"]],
        ).fetchall()
        for name, value in _quantiles(histogram).items():
            duration[f"{name}_ms"] = value
    if options.by_route:
        result["routes"] = _routes(con, gid["duration"], options.top_routes)
    top = sorted(messages.items(), key=lambda item: (-item[1][0], item[0]))[: options.top_errors]
    result["top_errors"] = [{"message": em, "count": c, "example": example} for em, (c, example) in top]


def _routes(con: duckdb.DuckDBPyConnection, gid: int, top: int) -> list[dict]:
    rows = con.execute(
        f"""
        SELECT route, sum(c) AS requests, sum(c) FILTER (WHERE e5) AS e5, sum(c) FILTER (WHERE dk IS NOT NULL) AS nd,
               sum(sd) AS sd
        FROM agg WHERE g = {gid} AND b = 0 AND route IS NOT NULL
        GROUP BY route ORDER BY requests DESC, route LIMIT {int(top)}
        """
    ).fetchall()
    if not rows:
        return []
    names = ", ".join(quote_literal(r[0]) for r in rows)
    histograms: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for route, dk, c in con.execute(
        f"SELECT route, dk, sum(c) FROM agg WHERE g = {gid} AND b = 0 AND dk IS NOT NULL AND route IN ({names}) "
        "GROUP BY route, dk ORDER BY route, dk"
    ).fetchall():
        histograms[route].append((dk, c))
    quantiles = {route: _quantiles(histogram) for route, histogram in histograms.items()}
    out = []
    for route, requests, e5, nd, sd in rows:
        q = quantiles.get(route, {})
        out.append(
            {
                "route": route,
                "requests": int(requests),
                "5xx": int(e5 or 0),
                "rate_5xx": (e5 or 0) / requests if requests else 0.0,
                "avg_ms": sd / nd if nd else None,
                "p95_ms": q.get("p95"),
                "with_duration": int(nd or 0),
            }
        )
    return out
